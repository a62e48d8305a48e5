"""Finding, verifying and (optionally) downloading pretrained weights.

Resolution order for a manifest id:
1. the configured local directory (``RESTOREAGENT_WEIGHTS_DIR``, laid out like
   ``../shared/weights``);
2. the user cache (``~/.cache/restoreagent/weights``);
3. a download from the entry's pinned upstream URL, only when downloads are
   allowed; it verifies the sha256 and writes atomically into the cache.

Every file is checked against its sha256 before use; a mismatch is reported in
one line and the tool that needed it becomes unavailable (the agent falls back).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
import urllib.request
from importlib import resources
from pathlib import Path

from pydantic import BaseModel

from .base import ToolUnavailable


class WeightsEntry(BaseModel):
    id: str
    file: str
    sha256: str
    size: int
    task: str
    architecture: str
    license: str
    commercial: bool
    url: str | None = None
    note: str = ""


def load_manifest(path: Path | None = None) -> dict[str, WeightsEntry]:
    """Read the weights manifest (default: the one shipped in ``checkpoints/``)."""
    if path is None:
        text = resources.files("restoreagent.checkpoints").joinpath("weights.json").read_text()
    else:
        text = Path(path).read_text()
    return {e["id"]: WeightsEntry.model_validate(e) for e in json.loads(text)["weights"]}


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "restoreagent" / "weights"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class WeightsResolver:
    """Maps manifest ids to verified local files."""

    def __init__(
        self,
        weights_dir: Path | None = None,
        cache_dir: Path | None = None,
        allow_download: bool = False,
        manifest: dict[str, WeightsEntry] | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.weights_dir = Path(weights_dir) if weights_dir else None
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
        self.allow_download = allow_download
        self.manifest = manifest if manifest is not None else load_manifest()
        self.timeout = timeout
        self._verified: dict[tuple[str, int, int], bool] = {}
        self._lock = threading.Lock()

    def entry(self, weights_id: str) -> WeightsEntry:
        try:
            return self.manifest[weights_id]
        except KeyError:
            raise ToolUnavailable(f"unknown weights id {weights_id!r}") from None

    def resolve(self, weights_id: str) -> Path:
        """A verified local path for ``weights_id``, or :class:`ToolUnavailable`."""
        entry = self.entry(weights_id)
        candidates = [d / entry.file for d in (self.weights_dir, self.cache_dir) if d is not None]
        for path in candidates:
            if path.is_file():
                self._verify(path, entry)
                return path
        if self.allow_download and entry.url:
            return self.download(weights_id)
        if entry.url is None:
            hint = "no public download; set RESTOREAGENT_WEIGHTS_DIR to a folder that has it"
        else:
            hint = "set RESTOREAGENT_WEIGHTS_DIR, or allow downloads (RESTOREAGENT_ALLOW_DOWNLOAD=1)"
        raise ToolUnavailable(f"weights {entry.file} not found ({hint})")

    def _verify(self, path: Path, entry: WeightsEntry) -> None:
        st = path.stat()
        key = (str(path), st.st_size, st.st_mtime_ns)
        with self._lock:
            ok = self._verified.get(key)
        if ok is None:
            ok = st.st_size == entry.size and sha256_file(path) == entry.sha256
            with self._lock:
                self._verified[key] = ok
        if not ok:
            raise ToolUnavailable(f"weights {path} fail their sha256 check (corrupt or wrong file)")

    def download(self, weights_id: str) -> Path:
        """Fetch ``weights_id`` from its URL into the cache, verifying its sha256."""
        entry = self.entry(weights_id)
        if not entry.url:
            raise ToolUnavailable(f"weights {entry.file} have no public download")
        target = self.cache_dir / entry.file
        target.parent.mkdir(parents=True, exist_ok=True)
        h = hashlib.sha256()
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".part-")
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(entry.url, timeout=self.timeout) as resp:
                for chunk in iter(lambda: resp.read(1 << 20), b""):
                    h.update(chunk)
                    out.write(chunk)
            if h.hexdigest() != entry.sha256:
                raise ToolUnavailable(f"download of {entry.file} from {entry.url} failed its sha256 check")
            os.chmod(tmp, 0o644)
            os.replace(tmp, target)
        except ToolUnavailable:
            raise
        except OSError as exc:  # URLError is an OSError: offline, DNS, HTTP errors
            raise ToolUnavailable(f"cannot download {entry.file} from {entry.url}: {exc}") from None
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return target
