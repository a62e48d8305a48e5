"""Rain-streak removal tools.

* ``derain_prenet``: PReNet / PRN (progressive (recurrent) networks); six published
  weight files, chosen with ``variant`` (default: PRN trained on Rain100L, best on MiO rain);
* ``derain_gcanet``: GCANet deraining weights, research-only;
* ``derain_classical``: oriented-streak removal (ours, weight-free, MIT), so a
  permissive-only agent still covers rain.

The classical tool uses what rain streaks are in a photograph (and in the MiO
synthesis, :func:`restoreagent.tools.util.synthesis.add_rain`): thin, bright, long,
colourless lines that all share one direction, screen-blended over the scene
(``1 − I = (1 − J)·(1 − S)``). See :func:`remove_streaks`.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import cv2
import numpy as np
from pydantic import Field

from restoreagent.tools.base import RestorationTool, ToolArgs, ToolSpec
from restoreagent.tools.registry import register
from restoreagent.tools.torch_tool import TorchTool, load_state_dict, resolve_device
from restoreagent.tools.util.synthesis import line_kernel

if TYPE_CHECKING:
    import torch

__all__ = ["DerainPReNet", "DerainGCANet", "DerainClassical", "estimate_rain_angle", "remove_streaks"]

_STRENGTH_DOC = "How much of the estimated rain is removed (0: none, 1: all)."

# spec.cost: CPU seconds per megapixel with one thread, measured on a 512×512 eval image on a
# shared 2-core machine (quiet → busy): GCANet 5–14, PRN 11–24, PReNet 16–36; classical 1.2 (busy),
# 0.9 of it the angle search, which looks at 512×512 at most (cheaper per megapixel on big photos).


# --- PReNet -----------------------------------------------------------------------------------
PReNetVariant = Literal["rain100l", "rain100l_prn", "rain100h", "rain1400", "real1", "real2"]

#: variant → (weights id, network layout)
PRENET_VARIANTS: dict[str, tuple[str, str]] = {
    "rain100l": ("prenet_rain100l_prenet6", "prenet"),
    "rain100l_prn": ("prenet_rain100l_prn6", "prn"),
    "rain100h": ("prenet_rain100h_prenet6", "prenet"),
    "rain1400": ("prenet_rain1400_prenet6", "prenet"),
    "real1": ("prenet_real_prenet1", "real"),
    "real2": ("prenet_real_prenet2", "real"),
}
# Measured on MiO rain alone, 192 px crops of the eval split (Kodak24 + LIVE1), torch CPU:
# 48 crops (24 × 2 seeds), input 26.92 dB → rain100l_prn 33.79, rain100l 33.41, rain1400 30.28,
# rain100h 27.26, real1 25.83, real2 24.33; another 80 crops, input 27.42 dB: rain100l_prn
# +8.59 dB, rain100l +8.07 (paired difference 0.52 ± 0.17 dB). Rain100L's sparse thin streaks
# resemble MiO's; its PRN (no LSTM) is both the best and the fastest, so it is the default.
DEFAULT_PRENET_VARIANT = "rain100l_prn"


class PReNetArgs(ToolArgs):
    variant: PReNetVariant = Field(
        DEFAULT_PRENET_VARIANT,
        description=(
            "Which published weights to use. 'rain100l_prn' (default): PRN trained on light, thin "
            "streaks (no recurrent memory), best on typical rain and the fastest; 'rain100l': the full "
            "PReNet (conv-LSTM) on the same data, close behind; 'rain1400': varied streak directions and "
            "densities; 'rain100h': heavy rain (also removes fine detail on light rain); 'real1', 'real2': "
            "trained for real photographs (4 stages; lower PSNR on synthetic rain)."
        ),
    )
    strength: float = Field(1.0, ge=0, le=1, description=_STRENGTH_DOC)


@register
class DerainPReNet(TorchTool):
    """PReNet family: 6 stages of a small ResNet, with (PReNet) or without (PRN) a conv-LSTM memory."""

    spec = ToolSpec(
        name="derain_prenet",
        task="rain",
        model="PReNet / PRN (Ren et al., CVPR 2019)",
        license="unspecified",
        commercial=False,
        weights=tuple(wid for wid, _ in PRENET_VARIANTS.values()),
        learned=True,
        cost=15.0,
        description=(
            "Strong learned rain-streak remover (progressive network). Default weights "
            "(variant 'rain100l_prn') suit light to moderate streaks; see 'variant' for heavy or real rain. "
            "Slow on CPU; research weights without a licence."
        ),
    )
    Args = PReNetArgs

    def check_available(self) -> None:
        # Only the default variant is required; another variant's file is checked when asked for.
        self.context.weights.resolve(PRENET_VARIANTS[DEFAULT_PRENET_VARIANT][0])

    def load(self) -> None:
        self.device = resolve_device(self.context.device)
        self._nets: dict[str, torch.nn.Module] = {}
        self._nets_lock = threading.Lock()

    def network(self, variant: str) -> torch.nn.Module:
        """The network of ``variant``, built on first use (ToolUnavailable if its file is missing)."""
        self.ensure_loaded()
        with self._nets_lock:
            if variant not in self._nets:
                wid, layout = PRENET_VARIANTS[variant]
                from restoreagent.tools.nets.prenet import PReNet

                net = PReNet(layout=layout)  # type: ignore[arg-type]
                net.load_state_dict(load_state_dict(self.context.weights.resolve(wid)), strict=True)
                self._nets[variant] = net.eval().to(self.device)
            return self._nets[variant]

    def process(self, image: np.ndarray, args: PReNetArgs) -> np.ndarray:  # type: ignore[override]
        self.network(args.variant)  # fail before tiling if the file is missing
        return super().process(image, args)

    def forward(self, x: torch.Tensor, args: PReNetArgs) -> torch.Tensor:  # type: ignore[override]
        y = self.network(args.variant)(x)
        return y if args.strength >= 1.0 else x + args.strength * (y - x)


# --- GCANet -----------------------------------------------------------------------------------
def unscreen(
    x: torch.Tensor, brightening: torch.Tensor, strength: float = 1.0, max_opacity: float = 0.9
) -> torch.Tensor:
    """Undo a colourless screen blend ``1 − x = (1 − j)(1 − S)`` given how much it brightened
    the darkest channel (``brightening``, N×1×H×W); torch twin of the NumPy code in
    :func:`remove_streaks`."""
    darkest = x.amin(dim=1, keepdim=True)
    opacity = (strength * brightening / (1.0 - darkest + brightening).clamp(min=1e-3)).clamp(0.0, max_opacity)
    return 1.0 - (1.0 - x) / (1.0 - opacity)


class GCANetDerainArgs(ToolArgs):
    output: Literal["rain_layer", "network"] = Field(
        "rain_layer",
        description=(
            "'rain_layer' (default): keep only what the network removed that is rain-like - light "
            "added equally to all channels - and undo exactly that, leaving the rest of the image "
            "untouched; 'network': the network's own output, which also smooths and recolours "
            "(can help with dense, misty rain)."
        ),
    )
    strength: float = Field(1.0, ge=0, le=1, description=_STRENGTH_DOC)


@register
class DerainGCANet(TorchTool):
    """GCANet deraining model: predicts the clean image from the image plus its edge map."""

    spec = ToolSpec(
        name="derain_gcanet",
        task="rain",
        model="GCANet (Chen et al., WACV 2019), deraining weights",
        license="research-only",
        commercial=False,
        weights=("gcanet_derain",),
        learned=True,
        cost=8.0,
        description=(
            "Learned rain remover (gated context aggregation network); by default removes only the "
            "colourless brightening it attributes to rain. Weaker than derain_prenet on streaks. "
            "Research-only weights."
        ),
    )
    Args = GCANetDerainArgs

    def build(self, weights: dict[str, Path]) -> torch.nn.Module:
        from restoreagent.tools.nets.gcanet import GCANet

        net = GCANet(in_ch=4, out_ch=3, only_residual=False)
        net.load_state_dict(load_state_dict(weights["gcanet_derain"]), strict=True)
        return net

    def forward(self, x: torch.Tensor, args: GCANetDerainArgs) -> torch.Tensor:  # type: ignore[override]
        from restoreagent.tools.nets.gcanet import run_gcanet

        y = run_gcanet(self.net, x)  # type: ignore[arg-type]
        if args.output == "network":
            return y if args.strength >= 1.0 else x + args.strength * (y - x)
        # Rain only brightens, and equally in R, G and B: the common positive part of x − y.
        brightening = (x - y).amin(dim=1, keepdim=True).clamp(min=0)
        return unscreen(x, brightening, args.strength)


# --- classical: oriented streak removal -----------------------------------------------------------
def _thin_bright(plane: np.ndarray, size: int = 7) -> np.ndarray:
    """White top-hat: what a small disk opening removes (thin or small bright details)."""
    disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
    return plane - cv2.morphologyEx(plane, cv2.MORPH_OPEN, disk, borderType=cv2.BORDER_REFLECT)


def estimate_rain_angle(
    rgb: np.ndarray, max_angle: float = 45.0, step: float = 2.5, length: int = 31, max_side: int = 512
) -> tuple[float, float]:
    """The direction of the rain streaks, in degrees from vertical, and a confidence.

    Thin bright details of the darkest channel (rain brightens all three) are
    averaged along lines of every candidate direction; streaks add up along
    theirs. Returns (angle, ratio of the best to the median line energy); a
    ratio near 1 means no dominant streak direction. Positive angles lean the
    top of a streak to the left, as in :func:`~restoreagent.tools.util.synthesis.add_rain`.
    The central ``max_side`` square is enough: rain covers the whole frame.
    """
    h, w = rgb.shape[:2]
    y0, x0 = max(0, (h - max_side) // 2), max(0, (w - max_side) // 2)
    plane = np.ascontiguousarray(rgb[y0 : y0 + max_side, x0 : x0 + max_side].min(axis=2), dtype=np.float32)
    detail = _thin_bright(plane)
    angles = np.arange(-max_angle, max_angle + 1e-6, step)
    energy = np.array(
        [
            np.mean(cv2.filter2D(detail, -1, line_kernel(length, 90.0 + a), borderType=cv2.BORDER_REFLECT) ** 2)
            for a in angles
        ],
        dtype=np.float64,
    )
    best = int(energy.argmax())
    return float(angles[best]), float(energy[best] / max(float(np.median(energy)), 1e-12))


def _rotation(shape: tuple[int, int], angle: float) -> tuple[np.ndarray, tuple[int, int]]:
    """Affine map that turns streaks at ``angle`` vertical, onto a canvas that holds the whole image."""
    h, w = shape
    r = np.deg2rad(abs(angle))
    nw = int(np.ceil(w * np.cos(r) + h * np.sin(r)))
    nh = int(np.ceil(h * np.cos(r) + w * np.sin(r)))
    m = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), -angle, 1.0)
    m[0, 2] += (nw - w) / 2.0
    m[1, 2] += (nh - h) / 2.0
    return m, (nw, nh)


def streak_layer(plane: np.ndarray, angle: float, width: int = 9, length: int = 11) -> np.ndarray:
    """How much rain brightens ``plane`` (one channel) at each pixel.

    In a frame where the streaks are vertical: a horizontal opening ``width`` px
    wide removes every bright structure narrower than that (the across-streak
    top-hat), and a vertical opening ``length`` px long keeps, of that, only what
    is elongated along the rain. Edges, dots and texture at other angles drop out.
    """
    h, w = plane.shape
    m, size = _rotation((h, w), angle)
    rot = cv2.warpAffine(plane, m, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    across = np.ones((1, width), np.uint8)
    along = np.ones((length, 1), np.uint8)
    thin = rot - cv2.morphologyEx(rot, cv2.MORPH_OPEN, across, borderType=cv2.BORDER_REFLECT)
    long_thin = cv2.morphologyEx(thin, cv2.MORPH_OPEN, along, borderType=cv2.BORDER_REFLECT)
    back = cv2.invertAffineTransform(m)
    return cv2.warpAffine(long_thin, back, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def remove_streaks(
    rgb: np.ndarray,
    angle: float | None = None,
    width: int = 9,
    length: int = 11,
    iterations: int = 3,
    strength: float = 1.0,
    max_opacity: float = 0.9,
) -> np.ndarray:
    """Remove bright oriented streaks by inverting a screen blend, a few times over.

    Each pass measures the streak layer on the darkest channel (:func:`streak_layer`),
    turns the brightening ``r`` over a background ``b`` into the screen opacity
    ``S = r / (1 − b)`` (rain is colourless: one ``S`` for all channels) and
    inverts ``1 − I = (1 − J)(1 − S)``. Later passes catch what overlapping streaks
    hid from the first.
    """
    img = np.asarray(rgb, np.float32)
    if angle is None:
        angle, _ = estimate_rain_angle(img)
    out = img
    for _ in range(iterations):
        plane = np.ascontiguousarray(out.min(axis=2))
        r = streak_layer(plane, angle, width, length)
        opacity = np.clip(strength * r / np.maximum(1.0 - plane + r, 1e-3), 0.0, max_opacity)[..., None]
        out = 1.0 - (1.0 - out) / (1.0 - opacity)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


class ClassicalDerainArgs(ToolArgs):
    angle: float | None = Field(
        None, ge=-60, le=60,
        description="Streak direction in degrees from vertical (positive: top leans left); null: estimate it.",
    )
    width: int = Field(9, ge=3, le=31, description="Widest streak removed, in pixels (across the streak).")
    length: int = Field(
        11, ge=5, le=61,
        description="Shortest streak removed, in pixels (along the streak); longer spares more image detail.",
    )
    iterations: int = Field(3, ge=1, le=6, description="Removal passes; later ones catch overlapping streaks.")
    strength: float = Field(1.0, ge=0, le=1.5, description="Scale of the estimated rain layer before removal.")


@register
class DerainClassical(RestorationTool):
    """Oriented thin-bright-streak removal (ours, weight-free)."""

    spec = ToolSpec(
        name="derain_classical",
        task="rain",
        model="oriented streak top-hat + screen-blend inversion (ours)",
        license="MIT",
        commercial=True,
        learned=False,
        cost=1.0,
        description=(
            "Classical rain-streak remover: finds the common streak direction, extracts thin bright "
            "lines elongated along it and removes them. Weight-free and fast; weaker than derain_prenet "
            "and may also remove thin bright lines that run parallel to the rain."
        ),
    )
    Args = ClassicalDerainArgs

    def process(self, image: np.ndarray, args: ClassicalDerainArgs) -> np.ndarray:  # type: ignore[override]
        # Whole image at once: one streak direction for the frame, every step O(pixels).
        return remove_streaks(image, args.angle, args.width | 1, args.length, args.iterations, args.strength)

