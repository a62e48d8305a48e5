"""GCANet, the Gated Context Aggregation Network (Chen et al., WACV 2019).

An encoder (two 3×3 convs, one stride-2 conv) feeds six *smoothed dilated*
residual blocks (dilation 2, 2, 2, 4, 4, 4) and one plain residual block. A gate
(3×3 conv over the concatenated features of three depths) weighs the three
levels per pixel, and a decoder (4×4 transposed conv, 3×3 conv, 1×1 conv) maps
back to full resolution. Every conv is followed by an affine instance norm.

A smoothed dilated block runs a *shared separable* convolution before each
dilated conv: one (2·d − 1)² kernel, shared by all channels (a depthwise conv
with one set of weights), which removes the gridding artifacts of dilation.

The published models take four channels on the 0–255 scale, shifted by −128: the
RGB image and an edge map (mean absolute difference to the 4 neighbours,
averaged over the channels; :func:`edge_map`). The dehazing model predicts the
residual to add to the input (``only_residual``); the deraining model predicts
the clean image directly (through a ReLU). Height and width must be multiples
of 4 (:func:`run_gcanet` pads). Parameter names match the published checkpoints
(``conv1`` … ``res7`` … ``deconv1``) so they load with ``strict=True``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ShareSepConv(nn.Module):
    """A k×k convolution whose single kernel is shared by every channel (depthwise)."""

    def __init__(self, kernel_size: int) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError("kernel size must be odd")
        w = torch.zeros(1, 1, kernel_size, kernel_size)
        w[0, 0, kernel_size // 2, kernel_size // 2] = 1.0  # identity at initialisation
        self.weight = nn.Parameter(w)
        self.kernel_size = kernel_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        w = self.weight.expand(c, 1, self.kernel_size, self.kernel_size)
        return F.conv2d(x, w, None, 1, self.kernel_size // 2, 1, c)


def _conv(ch: int, dilation: int = 1) -> nn.Conv2d:
    return nn.Conv2d(ch, ch, 3, 1, padding=dilation, dilation=dilation, bias=False)


class ResidualBlock(nn.Module):
    """conv–IN–ReLU–conv–IN plus the input, then ReLU (optionally dilated)."""

    def __init__(self, ch: int, dilation: int = 1) -> None:
        super().__init__()
        self.conv1 = _conv(ch, dilation)
        self.norm1 = nn.InstanceNorm2d(ch, affine=True)
        self.conv2 = _conv(ch, dilation)
        self.norm2 = nn.InstanceNorm2d(ch, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.norm1(self.conv1(x)))
        return F.relu(x + self.norm2(self.conv2(y)))


class SmoothDilatedResidualBlock(nn.Module):
    """A dilated residual block with a shared separable conv before each dilated conv."""

    def __init__(self, ch: int, dilation: int) -> None:
        super().__init__()
        self.pre_conv1 = ShareSepConv(2 * dilation - 1)
        self.conv1 = _conv(ch, dilation)
        self.norm1 = nn.InstanceNorm2d(ch, affine=True)
        self.pre_conv2 = ShareSepConv(2 * dilation - 1)
        self.conv2 = _conv(ch, dilation)
        self.norm2 = nn.InstanceNorm2d(ch, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.norm1(self.conv1(self.pre_conv1(x))))
        return F.relu(x + self.norm2(self.conv2(self.pre_conv2(y))))


class GCANet(nn.Module):
    """GCANet; ``only_residual`` selects the dehazing head (linear residual output)."""

    def __init__(self, in_ch: int = 4, out_ch: int = 3, only_residual: bool = True, width: int = 64) -> None:
        super().__init__()
        self.only_residual = only_residual
        self.conv1 = nn.Conv2d(in_ch, width, 3, 1, 1, bias=False)
        self.norm1 = nn.InstanceNorm2d(width, affine=True)
        self.conv2 = nn.Conv2d(width, width, 3, 1, 1, bias=False)
        self.norm2 = nn.InstanceNorm2d(width, affine=True)
        self.conv3 = nn.Conv2d(width, width, 3, 2, 1, bias=False)
        self.norm3 = nn.InstanceNorm2d(width, affine=True)
        self.res1 = SmoothDilatedResidualBlock(width, 2)
        self.res2 = SmoothDilatedResidualBlock(width, 2)
        self.res3 = SmoothDilatedResidualBlock(width, 2)
        self.res4 = SmoothDilatedResidualBlock(width, 4)
        self.res5 = SmoothDilatedResidualBlock(width, 4)
        self.res6 = SmoothDilatedResidualBlock(width, 4)
        self.res7 = ResidualBlock(width, 1)
        self.gate = nn.Conv2d(3 * width, 3, 3, 1, 1)
        self.deconv3 = nn.ConvTranspose2d(width, width, 4, 2, 1)
        self.norm4 = nn.InstanceNorm2d(width, affine=True)
        self.deconv2 = nn.Conv2d(width, width, 3, 1, 1)
        self.norm5 = nn.InstanceNorm2d(width, affine=True)
        self.deconv1 = nn.Conv2d(width, out_ch, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.norm1(self.conv1(x)))
        y = F.relu(self.norm2(self.conv2(y)))
        y1 = F.relu(self.norm3(self.conv3(y)))
        y = self.res3(self.res2(self.res1(y1)))
        y2 = self.res4(y)
        y3 = self.res7(self.res6(self.res5(y2)))
        g = self.gate(torch.cat([y1, y2, y3], 1))
        y = y1 * g[:, 0:1] + y2 * g[:, 1:2] + y3 * g[:, 2:3]
        y = F.relu(self.norm4(self.deconv3(y)))
        y = F.relu(self.norm5(self.deconv2(y)))
        y = self.deconv1(y)
        return y if self.only_residual else F.relu(y)


def edge_map(x255: torch.Tensor) -> torch.Tensor:
    """GCANet's edge channel: N×1×H×W, the sum of absolute differences to the 4
    neighbours (missing ones at the border count 0), averaged over the colour
    channels and divided by 4. ``x255``: N×3×H×W on the 0–255 scale."""
    dx = (x255[..., :, 1:] - x255[..., :, :-1]).abs()
    dy = (x255[..., 1:, :] - x255[..., :-1, :]).abs()
    e = torch.zeros_like(x255)
    e[..., :, 1:] += dx
    e[..., :, :-1] += dx
    e[..., 1:, :] += dy
    e[..., :-1, :] += dy
    return e.mean(dim=1, keepdim=True) / 4.0


def run_gcanet(net: GCANet, x: torch.Tensor) -> torch.Tensor:
    """Restore an N×3×H×W image in [0, 1] with a published GCANet; returns [0, 1].

    Pads (edge replication) to a multiple of 4, builds the 4-channel input
    ``cat(255·x, edges) − 128``, and adds the prediction to the input
    (dehazing, ``only_residual``) or takes it as the image (deraining).
    """
    h, w = x.shape[-2:]
    ph, pw = (-h) % 4, (-w) % 4
    xp = F.pad(x, (0, pw, 0, ph), mode="replicate") if (ph or pw) else x
    x255 = xp * 255.0
    pred = net(torch.cat([x255, edge_map(x255)], 1) - 128.0)
    out = (x255 + pred) if net.only_residual else pred
    return (out / 255.0)[..., :h, :w]
