"""Reading photos into float RGB arrays and writing results safely.

Reading applies the EXIF orientation, converts an embedded ICC profile to sRGB
(so results are always written as plain sRGB PNGs), converts every mode
(palette, grayscale, 16-bit, CMYK, alpha) to RGB float32 in [0, 1] and keeps
the alpha channel aside so that it can be put back on the restored image.
Multi-frame files (GIF, TIFF pages) give their first frame, with a note. Writing is atomic: a temp
file in the target folder, then a rename; an existing file is only replaced
when asked.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from restoreagent.tools.util.files import atomic_write

#: Default cap on pixels per image (Pillow's own bomb limit); ``load_image(max_pixels=...)`` changes it.
MAX_PIXELS = 178_956_970
#: The still-image files the loaders and the folder scans pick up.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
#: Smaller sides are refused: the assessor and the tools need a neighbourhood to work on.
MIN_SIDE = 8


class ImageError(ValueError):
    """An input that is not a readable image (one-line message for the user)."""


@dataclass
class LoadedImage:
    rgb: np.ndarray  # H×W×3 float32 in [0, 1]
    alpha: np.ndarray | None  # H×W float32 in [0, 1], or None
    mode: str  # the file's original mode
    notes: list[str]


def _to_float(arr: np.ndarray) -> np.ndarray:
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / 255.0
    if arr.dtype == np.uint16:
        return arr.astype(np.float32) / 65535.0
    if arr.dtype in (np.int32, np.uint32):  # Pillow's "I" mode: 16-bit PNGs usually land here
        return np.clip(arr.astype(np.float32) / 65535.0, 0, 1)
    if np.issubdtype(arr.dtype, np.floating):
        return np.clip(arr.astype(np.float32), 0, 1)
    return arr.astype(np.float32) / float(np.iinfo(arr.dtype).max)


def load_image(path: str | os.PathLike, max_pixels: int = MAX_PIXELS) -> LoadedImage:
    """Read ``path`` as RGB float32; raise :class:`ImageError` with a clear reason.

    ``max_pixels`` guards against decompression bombs: larger images are refused
    before any pixel is decoded.
    """
    p = _existing_file(path)
    notes: list[str] = []
    try:
        with Image.open(p) as im:
            _check_size(p, *im.size, max_pixels)
            if getattr(im, "n_frames", 1) > 1:
                notes.append(f"{getattr(im, 'n_frames')} frames: using the first")
            im.seek(0)
            im = ImageOps.exif_transpose(im)
            im.load()
            im = _to_srgb(im, notes)
            return _convert(im, notes)
    except ImageError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageError(f"{p}: too many pixels ({exc})") from None
    except UnidentifiedImageError:
        raise ImageError(f"{p}: not an image Pillow can read") from None
    except Exception as exc:  # Pillow's decoders raise many types on malformed files (found by fuzzing)
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ImageError(f"{p}: corrupt or truncated image ({detail})") from None


def read_size(path: str | os.PathLike, max_pixels: int = MAX_PIXELS) -> tuple[int, int]:
    """(width, height) from the file's header only, with the same refusals as :func:`load_image`."""
    p = _existing_file(path)
    try:
        with Image.open(p) as im:
            return _check_size(p, *im.size, max_pixels)
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(f"{p}: not an image Pillow can read") from None
    except Exception as exc:
        raise ImageError(f"{p}: corrupt image header ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None


def _existing_file(path: str | os.PathLike) -> Path:
    p = Path(path)
    if not p.exists():
        raise ImageError(f"{p}: no such file")
    if p.is_dir():
        raise ImageError(f"{p}: is a folder, not an image")
    if p.stat().st_size == 0:
        raise ImageError(f"{p}: file is empty")
    return p


def _check_size(p: Path, w: int, h: int, max_pixels: int) -> tuple[int, int]:
    if w * h > max_pixels:
        raise ImageError(
            f"{p}: {w}×{h} = {w * h:,} pixels exceeds the limit of {max_pixels:,} "
            "(raise max_pixels / --max-pixels if you trust this file)"
        )
    if min(w, h) < MIN_SIDE:
        raise ImageError(f"{p}: {w}×{h} px is too small to restore (each side needs at least {MIN_SIDE} px)")
    return w, h


def _to_srgb(im: Image.Image, notes: list[str]) -> Image.Image:
    """Convert an embedded ICC profile to sRGB; keep alpha; never fail on a bad profile."""
    icc = im.info.get("icc_profile")
    if not icc or im.mode not in ("RGB", "RGBA", "CMYK"):
        return im
    try:
        src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        dst = ImageCms.createProfile("sRGB")
        alpha = im.getchannel("A") if im.mode == "RGBA" else None
        rgb = ImageCms.profileToProfile(im.convert("RGB") if alpha else im, src, dst, outputMode="RGB")
        notes.append("ICC profile converted to sRGB")
        if alpha is not None:
            rgb.putalpha(alpha)
        return rgb
    except (ImageCms.PyCMSError, OSError, ValueError):
        notes.append("ICC profile unreadable: colours taken as sRGB")
        return im


def _convert(im: Image.Image, notes: list[str]) -> LoadedImage:
    mode = im.mode
    alpha = None
    if mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    elif mode == "CMYK":
        im = im.convert("RGB")
        notes.append("CMYK converted to RGB")
    elif mode in ("LA", "PA"):
        im = im.convert("RGBA")
    if im.mode == "RGBA":
        arr = np.asarray(im)
        alpha = arr[..., 3].astype(np.float32) / 255.0
        rgb = arr[..., :3].astype(np.float32) / 255.0
    elif im.mode == "RGB":
        rgb = np.asarray(im).astype(np.float32) / 255.0
    elif im.mode in ("L", "1", "I", "I;16", "I;16B", "I;16L", "F"):
        gray = _to_float(np.asarray(im.convert("L") if im.mode == "1" else im))
        rgb = np.repeat(gray[..., None], 3, axis=2)
    else:
        rgb = np.asarray(im.convert("RGB")).astype(np.float32) / 255.0
    return LoadedImage(np.ascontiguousarray(rgb, dtype=np.float32), alpha, mode, notes)


#: The opaque part of a photo as fractions of its height and width: (top, bottom, left, right).
Box = tuple[float, float, float, float]


def opaque_box(alpha: np.ndarray | None) -> Box | None:
    """The bounding box of the opaque pixels (alpha ≥ 0.5), or None to judge the whole image.

    Transparent letterboxing (thumbnails, cut-outs) is not part of the photo: left in, its
    black pixels read as low light and its hard edges as content. None when there is no alpha,
    or when almost nothing is opaque (a few pixels say nothing about the photo).
    """
    if alpha is None:
        return None
    ys, xs = np.nonzero(alpha >= 0.5)
    if len(ys) == 0 or min(ys.max() + 1 - ys.min(), xs.max() + 1 - xs.min()) < 16:
        return None
    h, w = alpha.shape[:2]
    return float(ys.min() / h), float((ys.max() + 1) / h), float(xs.min() / w), float((xs.max() + 1) / w)


def crop_box(rgb: np.ndarray, box: Box | Sequence[float] | None) -> np.ndarray:
    """``rgb`` cut to ``box`` (fractions, so it follows a step that changed the size)."""
    if box is None:
        return rgb
    h, w = rgb.shape[:2]
    top, bottom, left, right = box
    return rgb[round(top * h) : round(bottom * h), round(left * w) : round(right * w)]


def visible_part(rgb: np.ndarray, alpha: np.ndarray | None) -> np.ndarray:
    """The opaque part of ``rgb`` (:func:`opaque_box` of ``alpha``, which may have another size)."""
    return crop_box(rgb, opaque_box(alpha))


def to_uint8(rgb: np.ndarray) -> np.ndarray:
    return (np.clip(rgb, 0, 1) * 255.0 + 0.5).astype(np.uint8)


def save_png(
    rgb: np.ndarray, path: str | os.PathLike, overwrite: bool = False, alpha: np.ndarray | None = None
) -> Path:
    """Write an 8-bit PNG atomically. Refuses to replace a file unless ``overwrite``."""
    arr = to_uint8(rgb)
    if alpha is not None and alpha.shape == arr.shape[:2]:
        arr = np.dstack([arr, to_uint8(alpha)])
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return atomic_write(path, buf.getvalue(), overwrite=overwrite)
