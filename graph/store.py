"""Content-addressed artifact store: the only place pixels live.

The graph state carries image ids (``img-<16 hex>``), never arrays. An id is the
hash of the image's 16-bit content, so the same image is stored once and ids
are stable across runs. Files are written to a temp name and renamed, so two
threads or processes writing the same image cannot corrupt it.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import cv2
import numpy as np

from ..tools.files import atomic_write

_ID = re.compile(r"^img-[0-9a-f]{16}$")


class UnknownImageId(KeyError):
    """An id that is malformed or not in this store (tools reject it)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class ArtifactStore:
    """Images on disk under ``root``, addressed by content hash."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

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
        return image_id

    def get(self, image_id: str) -> np.ndarray:
        """The stored image as H×W×3 float32 in [0, 1]."""
        data = np.fromfile(self.path(image_id), dtype=np.uint8)
        q = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
        if q is None:
            raise UnknownImageId(f"image {image_id!r} is unreadable in the store")
        return q[..., ::-1].astype(np.float32) / 65535.0

    def __contains__(self, image_id: str) -> bool:
        try:
            self.path(image_id)
        except UnknownImageId:
            return False
        return True
