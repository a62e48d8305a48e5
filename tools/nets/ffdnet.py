"""FFDNet (Zhang, Zuo & Zhang 2018), our own module for the converted MatConvNet weights.

Parameter names follow ``denoise_ffdnet/*.pth`` (``convs.N``), so the files load
with ``strict=True``. The network works at half resolution: the image is split
into 2×2 sub-images (``pixel_unshuffle``), a constant noise-level map σ is
appended, and the output sub-images are reassembled (``pixel_shuffle``) into the
clean image directly (not a residual).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class FFDNet(nn.Module):
    """Non-blind denoiser: ``forward(x, sigma)`` with x in [0, 1], sigma on the 0–1 scale."""

    def __init__(self, channels: int = 3, features: int = 96, depth: int = 12) -> None:
        super().__init__()
        self.channels = channels
        sub = 4 * channels  # four 2×2 sub-images per channel
        widths = [sub + 1] + [features] * (depth - 1) + [sub]
        self.convs = nn.ModuleList(nn.Conv2d(a, b, 3, padding=1) for a, b in zip(widths[:-1], widths[1:]))

    def forward(self, x: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        # pixel_unshuffle needs even sizes; replicate the last row/column.
        x = F.pad(x, (0, w % 2, 0, h % 2), mode="replicate")
        y = F.pixel_unshuffle(x, 2)
        level = torch.as_tensor(sigma, dtype=y.dtype, device=y.device).reshape(-1, 1, 1, 1)
        y = torch.cat([y, level.expand(y.shape[0], 1, *y.shape[-2:])], dim=1)
        for i, conv in enumerate(self.convs):
            y = conv(y)
            if i < len(self.convs) - 1:
                y = F.relu(y, inplace=True)
        return F.pixel_shuffle(y, 2)[..., :h, :w]


def build_ffdnet(state_dict: dict[str, torch.Tensor]) -> FFDNet:
    """Size the network from the state dict (colour: 96×12, gray: 64×15) and load it strictly."""
    first = state_dict["convs.0.weight"]
    depth = len({k.split(".")[1] for k in state_dict if k.startswith("convs.")})
    net = FFDNet(channels=(first.shape[1] - 1) // 4, features=first.shape[0], depth=depth)
    net.load_state_dict(state_dict, strict=True)
    return net.eval()
