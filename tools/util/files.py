"""Atomic file writes: a temp file in the target folder, then a rename.

A reader never sees a half-written file, and a crash leaves the old file (or
nothing) in place. Files get ordinary 0644 permissions, not mkstemp's 0600.
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

from PIL import Image


def atomic_write(path: str | os.PathLike, data: bytes | str, overwrite: bool = True) -> Path:
    """Write ``data`` to ``path`` atomically; refuse an existing file unless ``overwrite``."""
    p = Path(path)
    if not overwrite and p.exists():
        raise FileExistsError(f"{p} exists; pass --overwrite (overwrite=True) to replace it")
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".part")
    except PermissionError:  # name the user's path, not our temp file
        raise PermissionError(f"cannot write {p}: permission denied") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, p)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return p


def atomic_save_image(image: Image.Image, path: str | os.PathLike, **params) -> Path:
    """Save a Pillow image atomically, in the format its suffix names (``params``: Pillow's save options)."""
    buf = io.BytesIO()
    image.save(buf, format=Image.registered_extensions()[Path(path).suffix.lower()], **params)
    return atomic_write(path, buf.getvalue())
