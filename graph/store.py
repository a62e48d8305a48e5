"""Content-addressed artifact store: the only place pixels live.

The graph state carries image ids (``img-<16 hex>``), never arrays. An id is the
hash of the image's 16-bit content, so the same image is stored once and ids
are stable across runs. Files are written to a temp name and renamed, so two
threads or processes writing the same image cannot corrupt it.

A store may also keep its latest images in memory (:class:`OpenStores` does, for the runs in
progress): the graph reads the image a tool has just written, and the one it works on, several
times per step, and decoding a 16-bit PNG of a 12 MP photo takes seconds.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from collections import OrderedDict
from pathlib import Path

import cv2
import numpy as np

from restoreagent.tools.util.files import atomic_write

_ID = re.compile(r"^img-[0-9a-f]{16}$")


class UnknownImageId(KeyError):
    """An id that is malformed or not in this store (tools reject it)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


def _keep_latest(items: OrderedDict, key: str, value: object, limit: int) -> None:
    """Set ``items[key]`` as the latest entry and drop the oldest beyond ``limit``."""
    items[key] = value
    items.move_to_end(key)
    while len(items) > limit:
        items.popitem(last=False)


class ArtifactStore:
    """Images on disk under ``root``, addressed by content hash."""

    def __init__(self, root: str | os.PathLike, keep: int = 0) -> None:
        """``keep``: how many of the latest images put or read to also hold in memory (16-bit, as stored)."""
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._keep = keep
        self._recent: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def _remember(self, image_id: str, q: np.ndarray) -> None:
        if self._keep:
            with self._lock:
                _keep_latest(self._recent, image_id, q, self._keep)

    @staticmethod
    def _quantize(rgb: np.ndarray) -> np.ndarray:
        return (np.clip(rgb, 0.0, 1.0) * 65535.0 + 0.5).astype(np.uint16)

    def path(self, image_id: str) -> Path:
        if not isinstance(image_id, str) or not _ID.match(image_id):
            raise UnknownImageId(f"{image_id!r} is not an image id (expected img-<16 hex digits>)")
        p = self.root / f"{image_id}.png"
        if not p.is_file():
            raise UnknownImageId(f"unknown image id {image_id!r}")
        return p

    def put(self, rgb: np.ndarray) -> str:
        """Store an H×W×3 float image in [0, 1]; return its id."""
        q = self._quantize(rgb)
        digest = hashlib.sha256(str(q.shape).encode() + q.tobytes()).hexdigest()[:16]
        image_id = f"img-{digest}"
        target = self.root / f"{image_id}.png"
        if not target.exists():
            ok, buf = cv2.imencode(".png", np.ascontiguousarray(q[..., ::-1]), [cv2.IMWRITE_PNG_COMPRESSION, 1])
            if not ok:
                raise OSError("could not encode image for the artifact store")
            atomic_write(target, buf.tobytes())
        self._remember(image_id, q)
        return image_id

    def get(self, image_id: str) -> np.ndarray:
        """The stored image as H×W×3 float32 in [0, 1] (a new array: callers may change it)."""
        path = self.path(image_id)
        with self._lock:
            q = self._recent.get(image_id)
        if q is None:
            bgr = cv2.imdecode(np.fromfile(path, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
            if bgr is None:
                raise UnknownImageId(f"image {image_id!r} is unreadable in the store")
            q = bgr[..., ::-1]
        self._remember(image_id, q)
        return q.astype(np.float32) / 65535.0

    def __contains__(self, image_id: str) -> bool:
        try:
            self.path(image_id)
        except UnknownImageId:
            return False
        return True


class OpenStores:
    """The stores of the runs in progress, by run folder, each holding its ``keep`` latest images in
    memory; at most ``runs`` are held (a run that failed midway is let go once newer ones start)."""

    def __init__(self, runs: int = 4, keep: int = 3) -> None:
        self._runs = runs
        self._keep = keep
        self._stores: OrderedDict[str, ArtifactStore] = OrderedDict()
        self._lock = threading.Lock()

    def __call__(self, run_dir: str | os.PathLike) -> ArtifactStore:
        key = str(run_dir)
        with self._lock:
            store = self._stores.get(key) or ArtifactStore(key, keep=self._keep)
            _keep_latest(self._stores, key, store, self._runs)
            return store

    def close(self, run_dir: str | os.PathLike) -> None:
        """Let go of a run's images in memory (its files stay; a later turn reads them again)."""
        with self._lock:
            self._stores.pop(str(run_dir), None)
