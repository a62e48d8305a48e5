"""Dehazing tools (atmospheric scattering: ``I = J·t + A·(1 − t)``).

Three tools, so that a permissive-only agent still covers haze:

* ``dehaze_gcanet``: GCANet (gated context aggregation), the strongest here,
  research-only weights;
* ``dehaze_aodnet``: AOD-Net, a 1 761-parameter network, MIT, very fast but
  leaves a good part of dense haze;
* ``dehaze_dcp``: the dark channel prior (He et al., CVPR 2009) with an
  airlight estimate and a guided-filter-refined transmission; ours, weight-free.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
from pydantic import Field

from restoreagent.tools.base import RestorationTool, ToolArgs, ToolSpec
from restoreagent.tools.registry import register
from restoreagent.tools.torch_tool import TorchTool, load_state_dict

if TYPE_CHECKING:
    import torch

__all__ = ["DehazeAODNet", "DehazeGCANet", "DehazeDCP", "dark_channel", "guided_filter", "dehaze_dark_channel"]

_STRENGTH_DOC = "Blend between the input (0) and the full result (1); lower keeps some haze."


# spec.cost: CPU seconds per megapixel, torch and OpenCV with one thread, measured on a 512×512
# eval image on a shared 2-core machine (quiet → busy): DCP 0.13–0.2, AOD-Net 0.17–0.5,
# GCANet 5–14.


# --- AOD-Net ----------------------------------------------------------------------------------
class AODNetArgs(ToolArgs):
    strength: float = Field(1.0, ge=0, le=1, description=_STRENGTH_DOC)


@register
class DehazeAODNet(TorchTool):
    """AOD-Net: one map K folds transmission and airlight; J = ReLU(K·I − K + 1)."""

    spec = ToolSpec(
        name="dehaze_aodnet",
        task="haze",
        model="AOD-Net (Li et al., ICCV 2017)",
        license="MIT",
        commercial=True,
        weights=("aodnet",),
        learned=True,
        cost=0.3,
        description=(
            "Tiny, very fast learned dehazer (MIT licence). Removes light to moderate haze and "
            "darkens slightly; leaves part of dense haze (dehaze_gcanet or dehaze_dcp remove more)."
        ),
    )
    Args = AODNetArgs

    def build(self, weights: dict[str, Path]) -> torch.nn.Module:
        from restoreagent.tools.nets.aodnet import AODNet

        net = AODNet()
        net.load_state_dict(load_state_dict(weights["aodnet"]), strict=True)
        return net

    def forward(self, x: torch.Tensor, args: AODNetArgs) -> torch.Tensor:  # type: ignore[override]
        y = self.net(x)
        return y if args.strength >= 1.0 else x + args.strength * (y - x)


# --- GCANet -----------------------------------------------------------------------------------
class GCANetArgs(ToolArgs):
    strength: float = Field(1.0, ge=0, le=1, description=_STRENGTH_DOC)


@register
class DehazeGCANet(TorchTool):
    """GCANet dehazing model: predicts a residual from the image plus its edge map.

    Input convention (the published one, and the best of those we tried on MiO haze):
    RGB and edge map on the 0–255 scale minus 128; output added to the input.
    Without the −128 shift the gain halves, without the edge map it drops by 2 dB,
    and reading the output as the image (not a residual) is far worse than the input.
    """

    spec = ToolSpec(
        name="dehaze_gcanet",
        task="haze",
        model="GCANet (Chen et al., WACV 2019), dehazing weights",
        license="research-only",
        commercial=False,
        weights=("gcanet_dehaze",),
        learned=True,
        cost=8.0,
        description=(
            "Strong learned dehazer (gated context aggregation network); removes moderate to dense "
            "haze with faithful colours. Research-only weights; slower than dehaze_aodnet/dehaze_dcp."
        ),
    )
    Args = GCANetArgs

    def build(self, weights: dict[str, Path]) -> torch.nn.Module:
        from restoreagent.tools.nets.gcanet import GCANet

        net = GCANet(in_ch=4, out_ch=3, only_residual=True)
        net.load_state_dict(load_state_dict(weights["gcanet_dehaze"]), strict=True)
        return net

    def forward(self, x: torch.Tensor, args: GCANetArgs) -> torch.Tensor:  # type: ignore[override]
        from restoreagent.tools.nets.gcanet import run_gcanet

        y = run_gcanet(self.net, x)  # type: ignore[arg-type]
        return y if args.strength >= 1.0 else x + args.strength * (y - x)


# --- dark channel prior (classical) -------------------------------------------------------------
def _box(x: np.ndarray, r: int) -> np.ndarray:
    return cv2.boxFilter(x, -1, (2 * r + 1, 2 * r + 1), borderType=cv2.BORDER_REFLECT)


def guided_filter(guide: np.ndarray, src: np.ndarray, r: int, eps: float) -> np.ndarray:
    """Edge-preserving smoothing of ``src`` steered by the grey ``guide`` (He et al. 2010)."""
    guide = guide.astype(np.float32)
    src = src.astype(np.float32)
    mean_i, mean_p = _box(guide, r), _box(src, r)
    cov = _box(guide * src, r) - mean_i * mean_p
    var = _box(guide * guide, r) - mean_i * mean_i
    a = cov / (var + eps)
    b = mean_p - a * mean_i
    return _box(a, r) * guide + _box(b, r)


def dark_channel(rgb: np.ndarray, patch: int) -> np.ndarray:
    """Minimum over the colour channels and a ``patch``×``patch`` neighbourhood."""
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (patch, patch))
    return cv2.erode(rgb.min(axis=2).astype(np.float32), kernel, borderType=cv2.BORDER_REFLECT)


def estimate_airlight(rgb: np.ndarray, dark: np.ndarray, top: float = 0.001, neutral: bool = True) -> np.ndarray:
    """The mean colour of the ``top`` fraction of pixels with the haziest dark channel."""
    n = max(1, int(top * dark.size))
    idx = np.argpartition(dark.ravel(), -n)[-n:]
    a = rgb.reshape(-1, 3)[idx].mean(axis=0)
    if neutral:
        a = np.full(3, a.mean())
    return np.maximum(a, 0.05).astype(np.float32)


def dehaze_dark_channel(
    rgb: np.ndarray,
    omega: float = 0.95,
    t0: float = 0.1,
    patch: int = 15,
    neutral_airlight: bool = True,
    radius: int | None = None,
    eps: float = 1e-3,
) -> np.ndarray:
    """Dark-channel-prior dehazing: ``J = (I − A) / max(t, t0) + A``.

    The transmission ``t = 1 − ω·dark(I / A)`` is refined by a guided filter on the
    grey image (radius ``radius``, default 8 % of the short side, 8–60 px).
    """
    img = np.asarray(rgb, np.float32)
    h, w = img.shape[:2]
    air = estimate_airlight(img, dark_channel(img, patch), neutral=neutral_airlight)
    t = 1.0 - omega * dark_channel(img / air, patch)
    r = radius if radius is not None else int(np.clip(round(0.08 * min(h, w)), 8, 60))
    grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    t = np.clip(guided_filter(grey, t, r, eps), t0, 1.0)[..., None]
    return ((img - air) / t + air).astype(np.float32)


class DCPArgs(ToolArgs):
    omega: float = Field(
        0.95, ge=0.5, le=1.0,
        description="Fraction of the haze removed (1 = all; 0.95 keeps a trace so distance still reads).",
    )
    t0: float = Field(
        0.1, ge=0.02, le=0.5,
        description="Lower bound of the transmission; raise it if dense-haze areas come out noisy or too dark.",
    )
    patch: int = Field(15, ge=3, le=51, description="Side of the dark-channel window in pixels (odd).")
    neutral_airlight: bool = Field(
        True,
        description="Assume colourless (grey) haze light: avoids colour casts from bright coloured objects. "
        "Set False for tinted haze (smog, sunset).",
    )


@register
class DehazeDCP(RestorationTool):
    """Dark channel prior with guided-filter transmission refinement (ours, weight-free)."""

    spec = ToolSpec(
        name="dehaze_dcp",
        task="haze",
        model="dark channel prior + guided filter (He et al.; our implementation)",
        license="MIT",
        commercial=True,
        learned=False,
        cost=0.2,
        description=(
            "Classical dehazer (dark channel prior): estimates the haze light and a per-pixel "
            "transmission, then inverts the haze model. Fast, weight-free, strong on moderate to dense "
            "haze; can over-darken large white or sky areas."
        ),
    )
    Args = DCPArgs

    def process(self, image: np.ndarray, args: DCPArgs) -> np.ndarray:  # type: ignore[override]
        # Whole-image: the airlight is a global estimate and every step is O(pixels).
        patch = args.patch | 1
        return dehaze_dark_channel(image, args.omega, args.t0, patch, args.neutral_airlight)
