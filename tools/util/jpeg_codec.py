"""The JPEG codec's arithmetic: quantisation tables, the 8×8 DCT and the YCbCr transform.

Shared by the JPEG tools (:mod:`restoreagent.tools.jpeg`) and the quality estimate
(:mod:`restoreagent.tools.perception.jpeg_quality`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

# Luminance quantisation table of the JPEG standard (ITU-T T.81 Annex K.1), which
# libjpeg (Pillow, OpenCV, most software) scales by the quality setting.
LUMA_TABLE = np.array(
    [
        [16, 11, 10, 16, 24, 40, 51, 61],
        [12, 12, 14, 19, 26, 58, 60, 55],
        [14, 13, 16, 24, 40, 57, 69, 56],
        [14, 17, 22, 29, 51, 87, 80, 62],
        [18, 22, 37, 56, 68, 109, 103, 77],
        [24, 35, 55, 64, 81, 104, 113, 92],
        [49, 64, 78, 87, 103, 121, 120, 101],
        [72, 92, 95, 98, 112, 100, 103, 99],
    ],
    dtype=np.float32,
)


def quant_table(quality: int) -> np.ndarray:
    """libjpeg's quality scaling of the standard luminance table."""
    q = min(max(int(quality), 1), 100)
    scale = 5000 / q if q < 50 else 200 - 2 * q
    return np.clip(np.floor((LUMA_TABLE * scale + 50) / 100), 1, 255).astype(np.float32)


def saved_quality(path: str | Path) -> int | None:
    """The quality a JPEG file was last saved with, read from its own luminance quantisation table:
    the libjpeg quality whose scaled standard table is nearest (exact for files libjpeg wrote).
    None for a file that is not a JPEG. Unlike :func:`estimate_jpeg_quality` it needs the file, not
    the pixels, and it says nothing of compressions before the last one."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            tables = getattr(im, "quantization", None) if im.format == "JPEG" else None
    except (OSError, UnidentifiedImageError):
        return None
    if not tables or 0 not in tables or len(tables[0]) != 64:
        return None
    luma = np.asarray(tables[0], np.float32).reshape(8, 8)  # Pillow gives natural (row-major) order
    return min(range(1, 101), key=lambda q: float(np.abs(quant_table(q) - luma).sum()))


def dct_matrix(n: int = 8) -> np.ndarray:
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    m = np.sqrt(2.0 / n) * np.cos(np.pi * (2 * i + 1) * k / (2 * n))
    m[0] /= np.sqrt(2.0)
    return m.astype(np.float32)


DCT = dct_matrix()

ONE = np.ones(1, np.float32)  # the identity kernel of a one-directional separable pass


def luma(rgb: np.ndarray) -> np.ndarray:
    """The Y of :func:`rgb_to_ycc` alone."""
    r, g, b = (rgb[..., k].astype(np.float32) for k in range(3))
    return 0.299 * r + 0.587 * g + 0.114 * b


def rgb_to_ycc(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """JFIF (full-range BT.601) YCbCr, the space the JPEG codec works in."""
    r, g, b = (rgb[..., k].astype(np.float32) for k in range(3))
    cb = -0.168736 * r - 0.331264 * g + 0.5 * b
    cr = 0.5 * r - 0.418688 * g - 0.081312 * b
    return luma(rgb), cb, cr


def ycc_to_rgb(y: np.ndarray, cb: np.ndarray, cr: np.ndarray) -> np.ndarray:
    return np.stack([y + 1.402 * cr, y - 0.344136 * cb - 0.714136 * cr, y + 1.772 * cb], axis=-1)


def block_dct(plane: np.ndarray, oy: int, ox: int) -> np.ndarray:
    """8×8 DCT of the blocks of ``plane`` on the grid starting at (oy, ox): (n, m, 8, 8)."""
    p = plane[oy:, ox:]
    h, w = p.shape[0] // 8 * 8, p.shape[1] // 8 * 8
    blocks = p[:h, :w].reshape(h // 8, 8, w // 8, 8).transpose(0, 2, 1, 3)
    return DCT @ blocks @ DCT.T
