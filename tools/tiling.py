"""Tiled inference with overlap, so memory stays bounded on large photos.

Tiles overlap by ``overlap`` pixels and are blended with a separable ramp
window, which hides seams that a plain crop-and-paste would leave.
"""

from __future__ import annotations

from typing import Callable

import numpy as np


def _starts(length: int, tile: int, step: int) -> list[int]:
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, step))
    starts.append(length - tile)
    return starts


def _ramp(n: int, overlap: int) -> np.ndarray:
    w = np.ones(n, np.float32)
    if overlap > 0 and n > 2 * overlap:
        r = (np.arange(overlap, dtype=np.float32) + 0.5) / overlap
        w[:overlap] = r
        w[-overlap:] = r[::-1]
    return w


def tiled(
    fn: Callable[[np.ndarray], np.ndarray],
    image: np.ndarray,
    tile: int = 512,
    overlap: int = 32,
    scale: int = 1,
) -> np.ndarray:
    """Apply ``fn`` (H×W×C → sH×sW×C) tile by tile and blend the results.

    Images no larger than ``tile`` in both directions go through in one piece.
    """
    h, w, c = image.shape
    if h <= tile and w <= tile:
        return fn(image)
    overlap = min(overlap, tile // 4)
    step = tile - overlap
    out = np.zeros((h * scale, w * scale, c), np.float32)
    weight = np.zeros((h * scale, w * scale, 1), np.float32)
    for y in _starts(h, tile, step):
        for x in _starts(w, tile, step):
            patch = image[y : y + tile, x : x + tile]
            res = fn(patch)
            ph, pw = res.shape[:2]
            win = np.outer(_ramp(ph, overlap * scale), _ramp(pw, overlap * scale))[..., None]
            ys, xs = y * scale, x * scale
            out[ys : ys + ph, xs : xs + pw] += res * win
            weight[ys : ys + ph, xs : xs + pw] += win
    return out / np.maximum(weight, 1e-8)
