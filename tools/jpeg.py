"""JPEG artifact removal: blocking, ringing and smeared colour.

* ``jpeg_dncnn3``: DnCNN-3 (one grayscale network trained for denoising, SR and
  deblocking) on the luminance, followed by the chroma refinement below.
* ``jpeg_deblock``: a classical, weight-free filter of our own design:

  1. luminance: translation-invariant 8×8 DCT shrinkage. The 8×8 DCT is taken on
     all 64 shifted block grids; each coefficient is shrunk with a Wiener-like
     gain ``d²/(d² + (t·Q)²)`` where ``Q`` is the JPEG quantisation step of that
     frequency at the image's quality; the 64 results are averaged. On the
     encoder's own grid real coefficients are multiples of ``Q`` and survive,
     whereas block edges and ringing look like small coefficients on the shifted
     grids and are removed.
  2. chroma: JPEG stores colour at half resolution with coarse steps, leaving
     blurred, blocky colour edges. A guided filter re-fits Cb/Cr locally as a
     linear function of the restored luminance, so colour edges follow the
     luminance edges again.

:func:`estimate_jpeg_quality` recovers the (libjpeg-scale) quality from the pixels:
it finds the 8×8 grid offset where high-frequency DCT coefficients are exactly
zero most often, then the quality whose quantisation steps best explain the
periodicity of the low-frequency coefficients.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
from pydantic import Field

from .base import RestorationTool, ToolArgs, ToolSpec
from .registry import register
from .tiling import tiled
from .torch_tool import TorchTool

if TYPE_CHECKING:
    import torch

__all__ = ["estimate_jpeg_quality", "saved_quality", "JpegDnCNN3", "JpegDeblock"]

# Luminance quantisation table of the JPEG standard (ITU-T T.81 Annex K.1), which
# libjpeg (Pillow, OpenCV, most software) scales by the quality setting.
_LUMA_TABLE = np.array(
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


def _quant_table(quality: int) -> np.ndarray:
    """libjpeg's quality scaling of the standard luminance table."""
    q = min(max(int(quality), 1), 100)
    scale = 5000 / q if q < 50 else 200 - 2 * q
    return np.clip(np.floor((_LUMA_TABLE * scale + 50) / 100), 1, 255).astype(np.float32)


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
    return min(range(1, 101), key=lambda q: float(np.abs(_quant_table(q) - luma).sum()))


def _dct_matrix(n: int = 8) -> np.ndarray:
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    m = np.sqrt(2.0 / n) * np.cos(np.pi * (2 * i + 1) * k / (2 * n))
    m[0] /= np.sqrt(2.0)
    return m.astype(np.float32)


_DCT = _dct_matrix()
_ONE = np.ones(1, np.float32)  # the identity kernel of a one-directional separable pass


def _luma(rgb: np.ndarray) -> np.ndarray:
    """The Y of :func:`_rgb_to_ycc` alone."""
    r, g, b = (rgb[..., k].astype(np.float32) for k in range(3))
    return 0.299 * r + 0.587 * g + 0.114 * b


def _rgb_to_ycc(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """JFIF (full-range BT.601) YCbCr, the space the JPEG codec works in."""
    r, g, b = (rgb[..., k].astype(np.float32) for k in range(3))
    cb = -0.168736 * r - 0.331264 * g + 0.5 * b
    cr = 0.5 * r - 0.418688 * g - 0.081312 * b
    return _luma(rgb), cb, cr


def _ycc_to_rgb(y: np.ndarray, cb: np.ndarray, cr: np.ndarray) -> np.ndarray:
    return np.stack([y + 1.402 * cr, y - 0.344136 * cb - 0.714136 * cr, y + 1.772 * cb], axis=-1)


def _block_dct(plane: np.ndarray, oy: int, ox: int) -> np.ndarray:
    """8×8 DCT of the blocks of ``plane`` on the grid starting at (oy, ox): (n, m, 8, 8)."""
    p = plane[oy:, ox:]
    h, w = p.shape[0] // 8 * 8, p.shape[1] // 8 * 8
    blocks = p[:h, :w].reshape(h // 8, 8, w // 8, 8).transpose(0, 2, 1, 3)
    return _DCT @ blocks @ _DCT.T


# Low frequencies: large steps, many nonzero coefficients, so their periodicity is clear.
_PROBE = ((0, 1), (1, 0), (1, 1), (0, 2), (2, 0), (1, 2), (2, 1), (2, 2))
_QUALITIES = np.arange(1, 100)
# Per probe: its distinct quantisation steps over the qualities, and which step each quality uses.
_PROBE_STEPS = tuple(np.unique(np.stack([_quant_table(int(q)) for q in _QUALITIES])[:, u, v], return_inverse=True)
                     for u, v in _PROBE)


def estimate_jpeg_quality(rgb: np.ndarray, max_side: int = 512) -> int | None:
    """The libjpeg quality (1–100) the image was last saved with, or None if no JPEG grid is found.

    Works on the luminance of a central crop of at most ``max_side`` pixels. None is
    returned for images that were never JPEG-compressed, were resized or rotated
    after compression, or were saved at very high quality (above about 90).
    Measured on the test crops: exact to ±2 for qualities 5–90, also on crops
    whose block grid does not start at (0, 0).
    """
    h, w = rgb.shape[:2]
    if min(h, w) < 32:
        return None
    cy, cx = max((h - max_side) // 2, 0), max((w - max_side) // 2, 0)
    y = _luma(rgb[cy : cy + max_side, cx : cx + max_side]) * 255.0 - 128.0
    # Grid offset (relative to the crop): on the encoder's grid most high-frequency
    # coefficients were quantised to zero and stay within rounding error of it.
    # The high-frequency DCT coefficients of the 8×8 block at every pixel position (separable
    # filters: each horizontal pass serves five vertical ones), then read on each of the 64
    # candidate grids. Every position a grid reads has its whole block inside the image.
    hh, ww = y.shape
    zeros = np.zeros((hh, ww), np.uint8)  # per position: how many of the 25 coefficients are near zero
    for v in range(3, 8):
        rows = cv2.sepFilter2D(y, cv2.CV_32F, _DCT[v], _ONE, anchor=(0, 0), borderType=cv2.BORDER_CONSTANT)
        for u in range(3, 8):
            coeff = cv2.sepFilter2D(rows, cv2.CV_32F, _ONE, _DCT[u], anchor=(0, 0), borderType=cv2.BORDER_CONSTANT)
            zeros += np.abs(coeff) < 1.0
    zero_frac = np.zeros((8, 8))
    for oy in range(8):
        for ox in range(8):
            n, m = (hh - oy) // 8, (ww - ox) // 8
            zero_frac[oy, ox] = zeros[oy : oy + 8 * n : 8, ox : ox + 8 * m : 8].mean()
    oy, ox = np.unravel_index(int(np.argmax(zero_frac)), zero_frac.shape)
    coeffs = _block_dct(y, int(oy), int(ox))

    # Periodicity of each probe for every quality: mean cos(2π·d/Q) over the coefficients
    # above Q/2 (1 if all are multiples of Q); a quality's score is the mean over the probes
    # with at least 20 such coefficients. Qualities sharing a step share the computation.
    total, count = np.zeros(len(_QUALITIES)), np.zeros(len(_QUALITIES))
    for (u, v), (steps, which) in zip(_PROBE, _PROBE_STEPS):
        d = coeffs[..., u, v].ravel().astype(np.float32)
        kept = np.abs(d)[None, :] > steps[:, None] / 2  # (distinct steps, coefficients)
        n = kept.sum(axis=1)
        # float32 cos is vectorised (about 20× faster than float64) and ample for a mean over ≥ 20 terms
        cos = np.cos(np.float32(2 * np.pi) * d[None, :] / steps[:, None])
        mean_cos = np.where(kept, cos, 0.0).sum(axis=1, dtype=np.float64) / np.maximum(n, 1)
        ok = (n >= 20)[which]
        total[ok] += mean_cos[which][ok]
        count[ok] += 1
    scores = np.where(count > 0, total / np.maximum(count, 1), 0.0)
    best = float(scores.max())
    if best < 0.3:  # measured: JPEGs up to q90 score ≥ 0.45, unaligned or clean images ≤ 0.15
        return None
    # Steps Q/2, Q/3 ... explain multiples of Q equally well: take the coarsest that fits.
    return int(_QUALITIES[scores >= 0.8 * best].min())


def _wiener_sdct(plane: np.ndarray, table: np.ndarray, t: float) -> np.ndarray:
    """Translation-invariant 8×8 DCT shrinkage of a 0–255 plane (see the module docstring)."""
    h, w = plane.shape
    # Pad by a block on every side, so every pixel is covered by all 64 grids.
    padded = np.pad(plane, ((8, 8 + (-h) % 8), (8, 8 + (-w) % 8)), mode="reflect").astype(np.float32)
    acc = np.zeros_like(padded)
    thr2 = (t * table) ** 2
    for dy in range(8):
        for dx in range(8):
            d = _block_dct(padded, dy, dx)
            dc = d[..., 0, 0].copy()
            d = d * (d * d / (d * d + thr2))
            d[..., 0, 0] = dc  # keep block means: shrinking them would shift brightness
            n, m = d.shape[:2]
            rec = (_DCT.T @ d @ _DCT).transpose(0, 2, 1, 3).reshape(n * 8, m * 8)
            acc[dy : dy + n * 8, dx : dx + m * 8] += rec
    return acc[8 : 8 + h, 8 : 8 + w] / 64.0


def _box(x: np.ndarray, r: int) -> np.ndarray:
    return cv2.boxFilter(x, -1, (2 * r + 1, 2 * r + 1), borderType=cv2.BORDER_REFLECT)


def _guided_filter(guide: np.ndarray, src: np.ndarray, r: int, eps: float) -> np.ndarray:
    """He et al.'s guided filter: ``src`` re-fitted as a local linear function of ``guide``."""
    mg, ms = _box(guide, r), _box(src, r)
    a = (_box(guide * src, r) - mg * ms) / (_box(guide * guide, r) - mg * mg + eps)
    b = ms - a * mg
    return _box(a, r) * guide + _box(b, r)


def _chroma_radius(quality: int | None) -> int:
    # Measured on q 10/20/30/50: coarser chroma needs a wider window; too wide bleeds colour.
    if quality is None:
        return 2
    return 4 if quality <= 15 else 3 if quality <= 35 else 2


def _refine_chroma(rgb: np.ndarray, quality: int | None) -> np.ndarray:
    """Guided-filter Cb/Cr on the (already restored) luminance of ``rgb``."""
    y, cb, cr = _rgb_to_ycc(rgb)
    r = _chroma_radius(quality)
    eps = 1e-4  # (2.5/255)²: below this luminance variance a window is treated as flat
    cb, cr = _guided_filter(y, cb, r, eps), _guided_filter(y, cr, r, eps)
    return np.clip(_ycc_to_rgb(y, cb, cr), 0, 1).astype(np.float32)


# spec.cost values: measured on a 512×512 photo, 2 CPU cores, torch with one thread.


# --- DnCNN-3 ---------------------------------------------------------------------------------------
class JpegDnCNN3Args(ToolArgs):
    """DnCNN-3 is blind: it needs no quality setting."""


@register
class JpegDnCNN3(TorchTool):
    """DnCNN-3 on the luminance (its training space, MATLAB's studio-range Y), then chroma refinement."""

    spec = ToolSpec(
        name="jpeg_dncnn3",
        task="jpeg",
        model="DnCNN-3 (Zhang et al. 2017) on luminance + guided chroma filter",
        license="unspecified",
        commercial=False,
        weights=("dncnn3",),
        learned=True,
        cost=12.0,
        description=(
            "Blind JPEG artifact removal (blocking, ringing) for any quality; the strongest "
            "deblocker here; research weights without a licence."
        ),
    )
    Args = JpegDnCNN3Args

    def build(self, weights: dict[str, Path]) -> torch.nn.Module:
        from .nets.dncnn import load_dncnn

        return load_dncnn(weights["dncnn3"], channels=1)

    def forward(self, x: torch.Tensor, args: JpegDnCNN3Args) -> torch.Tensor:  # type: ignore[override]
        y = 0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]
        studio = (16.0 + 219.0 * y) / 255.0  # DnCNN-3 was trained on MATLAB rgb2ycbcr's Y
        delta = (self.net(studio) - studio) * (255.0 / 219.0)
        # Adding the same amount to R, G and B changes Y only (Cb/Cr rows sum to zero).
        return x + delta

    def process(self, image: np.ndarray, args: JpegDnCNN3Args) -> np.ndarray:  # type: ignore[override]
        out = super().process(image, args)
        return _refine_chroma(out, estimate_jpeg_quality(image))


# --- classical deblocking --------------------------------------------------------------------------
class JpegDeblockArgs(ToolArgs):
    """Strength follows the JPEG quality: lower quality, stronger filtering."""

    quality: int | None = Field(
        None,
        ge=1,
        le=100,
        description="JPEG quality the image was saved with (libjpeg scale); null: estimate it from the pixels.",
    )


@register
class JpegDeblock(RestorationTool):
    """Shifted-DCT shrinkage on luminance plus guided chroma (see the module docstring)."""

    spec = ToolSpec(
        name="jpeg_deblock",
        task="jpeg",
        model="Translation-invariant DCT shrinkage + guided chroma filter (classical)",
        license="MIT",
        commercial=True,
        weights=(),
        learned=False,
        cost=0.7,
        description=(
            "Classical JPEG artifact reducer (no weights, permissive): removes blocking and "
            "ringing and sharpens smeared colour; pass the quality if known, else it is estimated."
        ),
    )
    Args = JpegDeblockArgs

    # t = 0.3 was best for q 10/20/30 (tried 0.2–0.5; 0.2 and 0.4 are within 0.05 dB).
    SHRINK = 0.3
    # Used when no JPEG grid is found (resized, or already filtered): a mild setting.
    FALLBACK_QUALITY = 50

    def process(self, image: np.ndarray, args: JpegDeblockArgs) -> np.ndarray:  # type: ignore[override]
        quality = args.quality if args.quality is not None else estimate_jpeg_quality(image)
        table = _quant_table(quality if quality is not None else self.FALLBACK_QUALITY)

        def run(patch: np.ndarray) -> np.ndarray:
            y, cb, cr = _rgb_to_ycc(patch)
            y = _wiener_sdct(y * 255.0 - 128.0, table, self.SHRINK) / 255.0 + 128.0 / 255.0
            return _ycc_to_rgb(y, cb, cr).astype(np.float32)

        # All 64 grid shifts are averaged, so tiles need no block alignment.
        out = tiled(run, image, tile=self.context.tile_size, overlap=self.context.tile_overlap)
        return _refine_chroma(np.clip(out, 0, 1), quality)


# --- our colour JPEG model (jpeg_ours) ---------------------------------------------------------------
def deblock_classical(image: np.ndarray, quality: int | None = None) -> np.ndarray:
    """``jpeg_deblock``'s filter on a whole (small) image, untiled: the hint and starting point
    of ``jpeg_ours`` (also used to make its training inputs)."""
    if quality is None:
        quality = estimate_jpeg_quality(image)
    table = _quant_table(quality if quality is not None else JpegDeblock.FALLBACK_QUALITY)
    y, cb, cr = _rgb_to_ycc(image)
    y = _wiener_sdct(y * 255.0 - 128.0, table, JpegDeblock.SHRINK) / 255.0 + 128.0 / 255.0
    return _refine_chroma(np.clip(_ycc_to_rgb(y, cb, cr), 0, 1).astype(np.float32), quality)


from .deblur import RestorerTool  # noqa: E402  (below the classical tools it builds on)


@register
class JpegOurs(RestorerTool):
    """Our compact colour U-Net refining ``jpeg_deblock``'s result (it sees both the JPEG and
    the deblocked image and predicts a correction to the latter, in RGB)."""

    spec = ToolSpec(
        name="jpeg_ours",
        task="jpeg",
        model="RestoreAgent compact gated U-Net over DCT deblocking (ours, 0.44 M parameters)",
        license="MIT",
        commercial=True,
        weights=(),
        learned=True,
        cost=2.7,
        description=(
            "Colour JPEG artifact removal (blocking, ringing, colour bleeding) for qualities ~5-40 by a "
            "small network of ours on top of the classical deblocker; ships with the package, MIT."
        ),
    )
    Args = JpegDeblockArgs
    CHECKPOINT = "jpeg_color.pt"

    def hint(self, image: np.ndarray, args: JpegDeblockArgs) -> np.ndarray:  # type: ignore[override]
        quality = args.quality if args.quality is not None else estimate_jpeg_quality(image)
        return JpegDeblock(self.context).process(image, args.model_copy(update={"quality": quality}))


__all__ += ["deblock_classical", "JpegOurs"]
