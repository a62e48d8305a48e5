"""Resumable, verified downloads (HTTP Range) written atomically.

A download goes to ``<target>.part`` next to the target; an interrupted one resumes from where it
stopped when the server honours ``Range`` (else it starts again). Only a file whose size and sha256
match is renamed into place, so a reader never sees a partial or wrong file. A lock file keeps two
processes from writing the same ``.part`` at once.
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable, Mapping

from filelock import FileLock

GITHUB_RAW = "https://raw.githubusercontent.com"
PYPI_FILES = "https://files.pythonhosted.org"

Progress = Callable[[int, int], None]  # (bytes so far, total bytes)


class DownloadError(OSError):
    """A download that failed or did not match its checksum (one line, says why)."""


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def mirrored(url: str, mirrors: Mapping[str, str]) -> str:
    """``url`` with its host prefix replaced by a mirror's (the rest of the path stays)."""
    for prefix, base in mirrors.items():
        if base and url.startswith(prefix + "/"):
            return base.rstrip("/") + url[len(prefix):]
    return url


def _open(url: str, start: int, timeout: float):
    request = urllib.request.Request(url, headers={"Range": f"bytes={start}-"} if start else {})
    return urllib.request.urlopen(request, timeout=timeout)


def fetch(url: str, target: Path, sha256: str, size: int, timeout: float = 30.0,
          on_progress: Progress | None = None) -> Path:
    """Download ``url`` to ``target`` (resuming ``<target>.part``) and check its size and sha256;
    a ``target`` that is already there and matches is used as it is (a file put there by hand, offline)."""
    if target.is_file() and target.stat().st_size == size and sha256_file(target) == sha256:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    with FileLock(str(target.with_name(target.name + ".lock"))):
        have = part.stat().st_size if part.exists() else 0
        if have > size:  # not a prefix of this file: start again
            part.unlink()
            have = 0
        if have < size:
            try:
                with _open(url, have, timeout) as resp:
                    mode = "ab" if have and resp.status == 206 else "wb"  # 200: the server ignored Range
                    done = have if mode == "ab" else 0
                    with open(part, mode) as out:
                        for chunk in iter(lambda: resp.read(1 << 18), b""):
                            out.write(chunk)
                            done += len(chunk)
                            if on_progress is not None:
                                on_progress(done, size)
            except urllib.error.HTTPError as exc:
                raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}") from None
            except (OSError, ValueError) as exc:  # URLError, timeouts, resets; the .part is kept to resume
                reason = getattr(exc, "reason", exc)
                raise DownloadError(f"{url}: {reason}") from None
        got = part.stat().st_size
        if got != size or sha256_file(part) != sha256:
            part.unlink()
            raise DownloadError(f"{url}: the file received ({got} bytes) does not match its recorded sha256; "
                                "it was discarded")
        os.chmod(part, 0o644)
        os.replace(part, target)
    return target
