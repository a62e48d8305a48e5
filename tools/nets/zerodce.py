"""Zero-DCE and Zero-DCE++ (Guo et al., CVPR 2020; Li et al., TPAMI 2021).

Both networks predict pixel-wise quadratic "light-enhancement curves" and apply
them iteratively: ``x ← x + r·(x² − x)``. With ``r ∈ [−1, 1]`` (a tanh) each
step keeps values in [0, 1] and is monotonic, so the curve can only brighten or
darken, never invert or posterize. Parameter names match the published
checkpoints so they load with ``strict=True``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from restoreagent.tools.nets import CURVE_STEPS


def apply_curves(x: torch.Tensor, curves: list[torch.Tensor]) -> torch.Tensor:
    """Apply the light-enhancement curves in order (one 3-channel map per step)."""
    for r in curves:
        x = x + r * (x * x - x)
    return x


class ZeroDCE(nn.Module):
    """DCE-Net: 7 plain 3×3 convs of 32 channels with symmetric skip concatenations.

    The last conv emits 24 channels: 8 different RGB curve maps, one per step.
    """

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        self.e_conv1 = nn.Conv2d(3, width, 3, padding=1)
        self.e_conv2 = nn.Conv2d(width, width, 3, padding=1)
        self.e_conv3 = nn.Conv2d(width, width, 3, padding=1)
        self.e_conv4 = nn.Conv2d(width, width, 3, padding=1)
        self.e_conv5 = nn.Conv2d(2 * width, width, 3, padding=1)
        self.e_conv6 = nn.Conv2d(2 * width, width, 3, padding=1)
        self.e_conv7 = nn.Conv2d(2 * width, 3 * CURVE_STEPS, 3, padding=1)

    def curve_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The 8 curve maps ``r_i`` (each N×3×H×W in [−1, 1])."""
        x1 = F.relu(self.e_conv1(x))
        x2 = F.relu(self.e_conv2(x1))
        x3 = F.relu(self.e_conv3(x2))
        x4 = F.relu(self.e_conv4(x3))
        x5 = F.relu(self.e_conv5(torch.cat([x3, x4], 1)))
        x6 = F.relu(self.e_conv6(torch.cat([x2, x5], 1)))
        r = torch.tanh(self.e_conv7(torch.cat([x1, x6], 1)))
        return list(torch.split(r, 3, dim=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return apply_curves(x, self.curve_maps(x))


class DepthwiseSeparableConv(nn.Module):
    """A 3×3 depthwise conv followed by a 1×1 pointwise conv (both with bias)."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.depth_conv = nn.Conv2d(in_ch, in_ch, 3, padding=1, groups=in_ch)
        self.point_conv = nn.Conv2d(in_ch, out_ch, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.point_conv(self.depth_conv(x))


class ZeroDCEPP(nn.Module):
    """Zero-DCE++: DCE-Net with depthwise-separable convs and one shared curve map.

    The curve map is estimated on a copy downscaled by ``scale_factor`` (the
    published test setting is 12) and upsampled bilinearly to full size, so the
    cost barely grows with resolution; the curve itself is applied at full size.
    """

    def __init__(self, width: int = 32, scale_factor: float = 1.0) -> None:
        super().__init__()
        self.scale_factor = scale_factor
        self.e_conv1 = DepthwiseSeparableConv(3, width)
        self.e_conv2 = DepthwiseSeparableConv(width, width)
        self.e_conv3 = DepthwiseSeparableConv(width, width)
        self.e_conv4 = DepthwiseSeparableConv(width, width)
        self.e_conv5 = DepthwiseSeparableConv(2 * width, width)
        self.e_conv6 = DepthwiseSeparableConv(2 * width, width)
        self.e_conv7 = DepthwiseSeparableConv(2 * width, 3)

    def curve_map(self, x: torch.Tensor, scale_factor: float | None = None) -> torch.Tensor:
        """The shared curve map ``r`` (N×3×H×W in [−1, 1]) at the input's size."""
        s = self.scale_factor if scale_factor is None else scale_factor
        h, w = x.shape[-2:]
        # Explicit target sizes (not a scale factor) so any H×W works, not only multiples of s.
        small = (max(1, round(h / s)), max(1, round(w / s)))
        xd = x if s == 1 or small == (h, w) else F.interpolate(x, size=small, mode="bilinear", align_corners=False)
        x1 = F.relu(self.e_conv1(xd))
        x2 = F.relu(self.e_conv2(x1))
        x3 = F.relu(self.e_conv3(x2))
        x4 = F.relu(self.e_conv4(x3))
        x5 = F.relu(self.e_conv5(torch.cat([x3, x4], 1)))
        x6 = F.relu(self.e_conv6(torch.cat([x2, x5], 1)))
        r = torch.tanh(self.e_conv7(torch.cat([x1, x6], 1)))
        if r.shape[-2:] != (h, w):
            r = F.interpolate(r, size=(h, w), mode="bilinear", align_corners=True)
        return r

    def forward(self, x: torch.Tensor, scale_factor: float | None = None) -> torch.Tensor:
        r = self.curve_map(x, scale_factor)
        return apply_curves(x, [r] * CURVE_STEPS)
