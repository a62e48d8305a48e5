"""A compact restoration network of our own: a small NAFNet-style U-Net.

The design follows the ideas of NAFNet (Chen et al., ECCV 2022, "Simple Baselines for
Image Restoration") written from scratch and shrunk for CPU use: a 3-level U-Net of
"gated" blocks (layer norm → 1×1 expand → 3×3 depthwise → simple gate (x₁·x₂) →
channel attention → 1×1), with a global residual. The last layer starts at zero, so an
untrained network is the identity (or returns ``base``, see :meth:`Restorer.forward`),
and training only ever has to learn a correction.

``in_channels`` may exceed 3: extra channels are hints (e.g. a classical filter's
result); the residual is added to ``base`` (default: the first three input channels).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["Restorer", "build_restorer", "load_restorer", "DEFAULT_CONFIG"]

DEFAULT_CONFIG: dict[str, Any] = {
    "in_channels": 3,
    "width": 16,
    "enc_blocks": [1, 1, 2],
    "middle_blocks": 2,
    "dec_blocks": [1, 1, 1],
}


class LayerNorm2d(nn.Module):
    """Layer norm over the channels of each pixel (N×C×H×W)."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mu = x.mean(1, keepdim=True)
        var = (x - mu).pow(2).mean(1, keepdim=True)
        y = (x - mu) * torch.rsqrt(var + self.eps)
        return y * self.weight[None, :, None, None] + self.bias[None, :, None, None]


class GatedBlock(nn.Module):
    """Spatial mixing (depthwise 3×3, gate, channel attention) then a gated feed-forward."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.norm1 = LayerNorm2d(c)
        self.expand = nn.Conv2d(c, 2 * c, 1)
        self.dw = nn.Conv2d(2 * c, 2 * c, 3, padding=1, groups=2 * c)
        self.attn = nn.Conv2d(c, c, 1)
        self.project = nn.Conv2d(c, c, 1)
        self.norm2 = LayerNorm2d(c)
        self.ff_in = nn.Conv2d(c, 2 * c, 1)
        self.ff_out = nn.Conv2d(c, c, 1)
        self.beta = nn.Parameter(torch.zeros(1, c, 1, 1))
        self.gamma = nn.Parameter(torch.zeros(1, c, 1, 1))

    @staticmethod
    def _gate(x: torch.Tensor) -> torch.Tensor:
        a, b = x.chunk(2, dim=1)
        return a * b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self._gate(self.dw(self.expand(self.norm1(x))))
        y = y * self.attn(F.adaptive_avg_pool2d(y, 1))
        x = x + self.beta * self.project(y)
        y = self.ff_out(self._gate(self.ff_in(self.norm2(x))))
        return x + self.gamma * y


class Restorer(nn.Module):
    """U-Net of :class:`GatedBlock` s; output = ``base`` + predicted residual."""

    def __init__(
        self,
        in_channels: int = 3,
        width: int = 16,
        enc_blocks: list[int] | tuple[int, ...] = (1, 1, 2),
        middle_blocks: int = 2,
        dec_blocks: list[int] | tuple[int, ...] = (1, 1, 1),
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.intro = nn.Conv2d(in_channels, width, 3, padding=1)
        self.ending = nn.Conv2d(width, 3, 3, padding=1)
        nn.init.zeros_(self.ending.weight)
        nn.init.zeros_(self.ending.bias)
        self.encoders = nn.ModuleList()
        self.downs = nn.ModuleList()
        self.ups = nn.ModuleList()
        self.decoders = nn.ModuleList()
        c = width
        for n in enc_blocks:
            self.encoders.append(nn.Sequential(*[GatedBlock(c) for _ in range(n)]))
            self.downs.append(nn.Conv2d(c, 2 * c, 2, stride=2))
            c *= 2
        self.middle = nn.Sequential(*[GatedBlock(c) for _ in range(middle_blocks)])
        for n in dec_blocks:
            self.ups.append(nn.Sequential(nn.Conv2d(c, 2 * c, 1, bias=False), nn.PixelShuffle(2)))
            c //= 2
            self.decoders.append(nn.Sequential(*[GatedBlock(c) for _ in range(n)]))
        self.factor = 2 ** len(enc_blocks)

    def forward(self, x: torch.Tensor, base: torch.Tensor | None = None) -> torch.Tensor:
        """``x``: N×in_channels×H×W in [0, 1]; ``base`` defaults to ``x[:, :3]``."""
        if base is None:
            base = x[:, :3]
        h, w = x.shape[-2:]
        ph, pw = (-h) % self.factor, (-w) % self.factor
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="reflect" if min(h, w) > max(ph, pw) else "replicate")
        f = self.intro(x)
        skips = []
        for enc, down in zip(self.encoders, self.downs):
            f = enc(f)
            skips.append(f)
            f = down(f)
        f = self.middle(f)
        for up, dec, skip in zip(self.ups, self.decoders, reversed(skips)):
            f = dec(up(f) + skip)
        return base + self.ending(f)[..., :h, :w]


def build_restorer(config: dict[str, Any] | None = None) -> Restorer:
    cfg = {**DEFAULT_CONFIG, **(config or {})}
    return Restorer(
        in_channels=int(cfg["in_channels"]),
        width=int(cfg["width"]),
        enc_blocks=list(cfg["enc_blocks"]),
        middle_blocks=int(cfg["middle_blocks"]),
        dec_blocks=list(cfg["dec_blocks"]),
    )


def load_restorer(path_or_file: Any) -> tuple[Restorer, dict[str, Any]]:
    """Load an exported checkpoint ``{"config": {...}, "state_dict": {...}, "meta": {...}}``
    (fp16 weights are cast back to fp32). Returns the network (eval mode) and the whole
    checkpoint dict minus the weights."""
    ckpt = torch.load(path_or_file, map_location="cpu", weights_only=True)
    net = build_restorer(ckpt["config"])
    net.load_state_dict({k: v.float() for k, v in ckpt["state_dict"].items()})
    info = {k: v for k, v in ckpt.items() if k != "state_dict"}
    return net.eval(), info
