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

Both read the photo's JPEG quality from its pixels
(:func:`~restoreagent.tools.perception.jpeg_quality.estimate_jpeg_quality`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
from pydantic import Field

from restoreagent.tools.base import RestorationTool, ToolArgs, ToolSpec
from restoreagent.tools.perception.jpeg_quality import estimate_jpeg_quality
from restoreagent.tools.registry import register
from restoreagent.tools.torch_tool import RestorerTool, TorchTool
from restoreagent.tools.util.jpeg_codec import DCT, block_dct, quant_table, rgb_to_ycc, ycc_to_rgb
from restoreagent.tools.util.tiling import tiled

if TYPE_CHECKING:
    import torch

__all__ = ["JpegDnCNN3", "JpegDeblock", "deblock_classical", "JpegOurs"]


def _wiener_sdct(plane: np.ndarray, table: np.ndarray, t: float) -> np.ndarray:
    """Translation-invariant 8×8 DCT shrinkage of a 0–255 plane (see the module docstring)."""
    h, w = plane.shape
    # Pad by a block on every side, so every pixel is covered by all 64 grids.
    padded = np.pad(plane, ((8, 8 + (-h) % 8), (8, 8 + (-w) % 8)), mode="reflect").astype(np.float32)
    acc = np.zeros_like(padded)
    thr2 = (t * table) ** 2
    for dy in range(8):
        for dx in range(8):
            d = block_dct(padded, dy, dx)
            dc = d[..., 0, 0].copy()
            d = d * (d * d / (d * d + thr2))
            d[..., 0, 0] = dc  # keep block means: shrinking them would shift brightness
            n, m = d.shape[:2]
            rec = (DCT.T @ d @ DCT).transpose(0, 2, 1, 3).reshape(n * 8, m * 8)
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
    y, cb, cr = rgb_to_ycc(rgb)
    r = _chroma_radius(quality)
    eps = 1e-4  # (2.5/255)²: below this luminance variance a window is treated as flat
    cb, cr = _guided_filter(y, cb, r, eps), _guided_filter(y, cr, r, eps)
    return np.clip(ycc_to_rgb(y, cb, cr), 0, 1).astype(np.float32)


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
        from restoreagent.tools.nets.dncnn import load_dncnn

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
        table = quant_table(quality if quality is not None else self.FALLBACK_QUALITY)

        def run(patch: np.ndarray) -> np.ndarray:
            y, cb, cr = rgb_to_ycc(patch)
            y = _wiener_sdct(y * 255.0 - 128.0, table, self.SHRINK) / 255.0 + 128.0 / 255.0
            return ycc_to_rgb(y, cb, cr).astype(np.float32)

        # All 64 grid shifts are averaged, so tiles need no block alignment.
        out = tiled(run, image, tile=self.context.tile_size, overlap=self.context.tile_overlap)
        return _refine_chroma(np.clip(out, 0, 1), quality)


# --- our colour JPEG model (jpeg_ours) ---------------------------------------------------------------
def deblock_classical(image: np.ndarray, quality: int | None = None) -> np.ndarray:
    """``jpeg_deblock``'s filter on a whole (small) image, untiled: the hint and starting point
    of ``jpeg_ours`` (also used to make its training inputs)."""
    if quality is None:
        quality = estimate_jpeg_quality(image)
    table = quant_table(quality if quality is not None else JpegDeblock.FALLBACK_QUALITY)
    y, cb, cr = rgb_to_ycc(image)
    y = _wiener_sdct(y * 255.0 - 128.0, table, JpegDeblock.SHRINK) / 255.0 + 128.0 / 255.0
    return _refine_chroma(np.clip(ycc_to_rgb(y, cb, cr), 0, 1).astype(np.float32), quality)



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


