"""Low-light enhancement tools.

Two learned curve estimators and two classical, weight-free fallbacks:

* ``lowlight_zero_dce`` – Zero-DCE (8 per-step RGB curve maps), non-commercial weights.
* ``lowlight_zero_dce_pp`` – Zero-DCE++ (one shared curve map estimated on a
  downscaled copy; cheap at any resolution), non-commercial weights.
* ``lowlight_gamma`` – adaptive gamma that maps the mean luminance towards a target.
* ``lowlight_clahe`` – the same brightness lift plus CLAHE on the Lab L channel,
  for unevenly lit scenes where a global curve leaves dark corners.

The Zero-DCE networks were trained towards a fixed exposure level (about 0.6),
so on moderately dark images they often overshoot. Their defaults reproduce the
published networks; ``iterations`` and ``strength`` let the agent tone them down.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
from pydantic import Field

from restoreagent.tools.base import RestorationTool, ToolArgs, ToolSpec
from restoreagent.tools.nets import CURVE_STEPS
from restoreagent.tools.registry import register
from restoreagent.tools.torch_tool import TorchTool, load_state_dict

if TYPE_CHECKING:
    import torch

_LUMA = np.array([0.2126, 0.7152, 0.0722], np.float32)  # Rec.709 weights

# Mean luma that the classical tools aim for; the best single value on Kodak24
# darkened with gamma 0.5 and 0.6 (Kodak24's own mean luma is 0.44).
DEFAULT_TARGET = 0.45
# The adaptive exponent is clamped to [MIN_GAMMA, 1]: never darken, never blow up noise in black areas.
MIN_GAMMA = 0.3


def luma(rgb: np.ndarray) -> np.ndarray:
    """Rec.709 luma of an H×W×3 image (on the gamma-encoded values)."""
    return rgb @ _LUMA


def adaptive_gamma(rgb: np.ndarray, target: float) -> float:
    """The exponent ``g`` with ``mean_luma ** g == target``, clamped to [MIN_GAMMA, 1].

    Under the power-law darkening x → x^(1/γ) this estimates γ directly; an
    image already at or above ``target`` gets g = 1 (unchanged).
    """
    m = float(np.clip(luma(rgb).mean(), 1e-4, 1.0 - 1e-4))
    return float(np.clip(np.log(target) / np.log(m), MIN_GAMMA, 1.0))


def lift_brightness(rgb: np.ndarray, target: float, preserve_color: bool) -> np.ndarray:
    """Apply the adaptive gamma per channel, or to the HSV value keeping RGB ratios."""
    g = adaptive_gamma(rgb, target)
    if g >= 1.0:
        return rgb.copy()
    if not preserve_color:
        # Per channel: the exact inverse of a power-law darkening, which also
        # undoes the saturation boost that such darkening causes.
        return np.power(rgb, g, dtype=np.float32)
    v = rgb.max(axis=2, keepdims=True)
    gain = np.power(v, g) / np.maximum(v, 1e-6)  # ≥ 1 and max channel stays ≤ 1: no clipping
    return (rgb * gain).astype(np.float32)


# -- learned: Zero-DCE and Zero-DCE++ -----------------------------------------------------


class ZeroDCEArgs(ToolArgs):
    iterations: int = Field(
        CURVE_STEPS,
        ge=1,
        le=CURVE_STEPS,
        description="How many of the 8 learned curve steps to apply (8 = the published network). "
        "Fewer steps brighten less; 5 suits moderately dark images.",
    )
    strength: float = Field(
        1.0,
        ge=0.0,
        le=1.0,
        description="Blend between the input (0) and the enhanced result (1); lower it when the output is too bright.",
    )


@register
class ZeroDCETool(TorchTool):
    spec = ToolSpec(
        name="lowlight_zero_dce",
        task="low_light",
        model="Zero-DCE (Guo et al., CVPR 2020)",
        license="CC-BY-NC-4.0",
        commercial=False,
        weights=("zero_dce",),
        learned=True,
        cost=6.5,
        description="Brightens dark images with 8 learned pixel-wise curves; keeps highlights and colours. "
        "Trained towards a fairly bright exposure, so it may overshoot on mildly dark images "
        "(then lower iterations or strength). Does not remove noise.",
    )
    Args = ZeroDCEArgs

    def build(self, weights: dict[str, Path]) -> torch.nn.Module:
        from restoreagent.tools.nets.zerodce import ZeroDCE

        net = ZeroDCE()
        net.load_state_dict(load_state_dict(weights["zero_dce"]), strict=True)
        return net

    def forward(self, x: torch.Tensor, args: ZeroDCEArgs) -> torch.Tensor:  # type: ignore[override]
        from restoreagent.tools.nets.zerodce import apply_curves

        y = apply_curves(x, self.net.curve_maps(x)[: args.iterations])
        return x + args.strength * (y - x)


class ZeroDCEPPArgs(ToolArgs):
    iterations: int = Field(
        CURVE_STEPS,
        ge=1,
        le=2 * CURVE_STEPS,
        description="How often the shared curve is applied (8 = the published network); fewer brighten less.",
    )
    strength: float = Field(
        1.0,
        ge=0.0,
        le=1.0,
        description="Blend between the input (0) and the enhanced result (1); lower it when the output is too bright.",
    )
    scale_factor: int = Field(
        12,
        ge=1,
        le=32,
        description="The curve map is estimated on a copy downscaled by this factor (12 as published); "
        "1 estimates it at full resolution (slower, slightly more local).",
    )


@register
class ZeroDCEPPTool(TorchTool):
    spec = ToolSpec(
        name="lowlight_zero_dce_pp",
        task="low_light",
        model="Zero-DCE++ (Li et al., TPAMI 2021)",
        license="CC-BY-NC-4.0",
        commercial=False,
        weights=("zero_dce_pp",),
        learned=True,
        cost=0.1,
        description="Fast learned low-light curve (one shared curve map from a downscaled copy). "
        "Tends to brighten strongly; lower iterations or strength if the result looks washed out. "
        "Does not remove noise.",
    )
    Args = ZeroDCEPPArgs

    def build(self, weights: dict[str, Path]) -> torch.nn.Module:
        from restoreagent.tools.nets.zerodce import ZeroDCEPP

        net = ZeroDCEPP()
        net.load_state_dict(load_state_dict(weights["zero_dce_pp"]), strict=True)
        return net

    def forward(self, x: torch.Tensor, args: ZeroDCEPPArgs) -> torch.Tensor:  # type: ignore[override]
        # Keep the downscaled copy at least 16 px on its short side, so tiny images
        # (or thin tiles) still give the network some context.
        from restoreagent.tools.nets.zerodce import apply_curves

        s = max(1, min(args.scale_factor, min(x.shape[-2:]) // 16))
        r = self.net.curve_map(x, float(s))
        y = apply_curves(x, [r] * args.iterations)
        return x + args.strength * (y - x)


# -- classical, weight-free ----------------------------------------------------------------


class GammaArgs(ToolArgs):
    target_brightness: float = Field(
        DEFAULT_TARGET,
        ge=0.2,
        le=0.7,
        description="Mean luminance (0–1) the image is brought to, approximately. "
        "Images already this bright are left unchanged; raise it for a brighter result.",
    )
    preserve_color: bool = Field(
        False,
        description="Apply the curve to the HSV value and scale R, G, B by one common factor per pixel: "
        "keeps hue and saturation exactly (suits linear under-exposure) but lands below the target, "
        "since the value exceeds the luminance. Default False applies the gamma per channel, which also "
        "undoes the over-saturation of gamma-type darkening (measured better on synthetic low light).",
    )


@register
class GammaTool(RestorationTool):
    spec = ToolSpec(
        name="lowlight_gamma",
        task="low_light",
        model="adaptive gamma (ours)",
        license="Apache-2.0",
        commercial=True,
        learned=False,
        cost=0.01,
        description="Global adaptive gamma curve that lifts the mean brightness to a target. "
        "Weight-free, fast, smooth, never darkens; cannot fix uneven lighting or noise.",
    )
    Args = GammaArgs

    def process(self, image: np.ndarray, args: GammaArgs) -> np.ndarray:  # type: ignore[override]
        return lift_brightness(image, args.target_brightness, args.preserve_color)


class ClaheArgs(ToolArgs):
    target_brightness: float = Field(
        DEFAULT_TARGET,
        ge=0.2,
        le=0.7,
        description="Mean luminance (0–1) of the global brightness lift applied before CLAHE.",
    )
    clip_limit: float = Field(
        1.5,
        ge=0.5,
        le=8.0,
        description="CLAHE contrast clip limit; higher gives stronger local contrast (and more noise).",
    )
    grid: int = Field(8, ge=2, le=32, description="CLAHE tiles per side.")
    strength: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="How much of CLAHE's lightness change is applied (0: brightness lift only).",
    )


@register
class ClaheTool(RestorationTool):
    spec = ToolSpec(
        name="lowlight_clahe",
        task="low_light",
        model="adaptive gamma + CLAHE on Lab L (ours)",
        license="Apache-2.0",
        commercial=True,
        learned=False,
        cost=0.03,
        description="Brightness lift plus contrast-limited adaptive histogram equalisation of lightness. "
        "Brings out detail in unevenly lit scenes (dark corners, backlight); changes local contrast, "
        "so it scores lower than lowlight_gamma on uniformly dark images.",
    )
    Args = ClaheArgs

    def process(self, image: np.ndarray, args: ClaheArgs) -> np.ndarray:  # type: ignore[override]
        lifted = lift_brightness(image, args.target_brightness, preserve_color=False)
        lab = cv2.cvtColor(lifted, cv2.COLOR_RGB2Lab)  # float32: L in [0, 100]
        lightness = lab[..., 0] * 2.55
        # CLAHE on 8 bits: OpenCV's 16-bit CLAHE spreads a tile over 65536 bins,
        # which makes any clip limit collapse to full equalisation. Adding the
        # 8-bit mapping's change to the float L keeps the input's precision.
        quantized = np.clip(lightness + 0.5, 0, 255).astype(np.uint8)
        clahe = cv2.createCLAHE(clipLimit=args.clip_limit, tileGridSize=(args.grid, args.grid))
        delta = clahe.apply(quantized).astype(np.float32) - quantized
        lab[..., 0] = np.clip(lightness + args.strength * delta, 0, 255) / 2.55
        return cv2.cvtColor(lab, cv2.COLOR_Lab2RGB)
