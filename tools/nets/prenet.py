"""PReNet and PRN, the progressive recurrent deraining networks (Ren et al., CVPR 2019).

Both run the same small ResNet (one 6→32 conv, five residual blocks of two 3×3
convs, one 32→3 conv) for a fixed number of stages. Each stage sees the rainy
input concatenated with the current estimate (6 channels) and predicts a
residual added to the rainy input. PReNet carries a convolutional LSTM (gates
``conv_i``, ``conv_f``, ``conv_g``, ``conv_o`` on the features concatenated with
the hidden state) from stage to stage; PRN has no recurrence. Input and output
are RGB in [0, 1].

The two "real-rain" PReNet files of the same repository (``logs/real/PReNet{1,2}.pth``)
have the same tensors but a different stage (their ``Generator_lstm``): the LSTM
comes *after* the residual blocks, the last conv maps its hidden state straight
to the image (no skip from the rainy input), and 4 stages are run. That layout is
``layout="real"`` here; read as standard PReNets those files lose 5–10 dB.

Parameter names match the published checkpoints (``conv0.0``, ``res_convN.{0,2}``,
``conv_i.0``, ``conv.0``) so they load with ``strict=True``.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn


def _res_block(ch: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(ch, ch, 3, 1, 1), nn.ReLU(), nn.Conv2d(ch, ch, 3, 1, 1), nn.ReLU())


Layout = Literal["prenet", "prn", "real"]
DEFAULT_STAGES: dict[str, int] = {"prenet": 6, "prn": 6, "real": 4}


class PReNet(nn.Module):
    """One progressive deraining network.

    ``layout``: ``"prenet"`` (conv-LSTM right after ``conv0``, residual output),
    ``"prn"`` (no LSTM), ``"real"`` (LSTM after the residual blocks, direct output).
    """

    def __init__(self, layout: Layout = "prenet", stages: int | None = None, width: int = 32) -> None:
        super().__init__()
        if layout not in DEFAULT_STAGES:
            raise ValueError(f"unknown PReNet layout {layout!r}")
        self.layout = layout
        self.stages = stages or DEFAULT_STAGES[layout]
        self.recurrent = layout != "prn"
        self.width = width
        self.conv0 = nn.Sequential(nn.Conv2d(6, width, 3, 1, 1), nn.ReLU())
        self.res_conv1 = _res_block(width)
        self.res_conv2 = _res_block(width)
        self.res_conv3 = _res_block(width)
        self.res_conv4 = _res_block(width)
        self.res_conv5 = _res_block(width)
        if self.recurrent:
            self.conv_i = nn.Sequential(nn.Conv2d(2 * width, width, 3, 1, 1), nn.Sigmoid())
            self.conv_f = nn.Sequential(nn.Conv2d(2 * width, width, 3, 1, 1), nn.Sigmoid())
            self.conv_g = nn.Sequential(nn.Conv2d(2 * width, width, 3, 1, 1), nn.Tanh())
            self.conv_o = nn.Sequential(nn.Conv2d(2 * width, width, 3, 1, 1), nn.Sigmoid())
        self.conv = nn.Sequential(nn.Conv2d(width, 3, 3, 1, 1))

    def _lstm(self, f: torch.Tensor, hid: torch.Tensor, cell: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = torch.cat([f, hid], 1)
        cell = self.conv_f(z) * cell + self.conv_i(z) * self.conv_g(z)
        return self.conv_o(z) * torch.tanh(cell), cell

    def _resnet(self, f: torch.Tensor) -> torch.Tensor:
        for block in (self.res_conv1, self.res_conv2, self.res_conv3, self.res_conv4, self.res_conv5):
            f = F.relu(block(f) + f)
        return f

    def forward(self, rainy: torch.Tensor, stages: int | None = None) -> torch.Tensor:
        """Derain an N×3×H×W tensor in [0, 1] (not clamped) with ``stages`` stages."""
        n, _, h, w = rainy.shape
        x = rainy
        hid = rainy.new_zeros(n, self.width, h, w)
        cell = rainy.new_zeros(n, self.width, h, w)
        for _ in range(stages or self.stages):
            f = self.conv0(torch.cat([rainy, x], 1))
            if self.layout == "real":
                hid, cell = self._lstm(self._resnet(f), hid, cell)
                x = self.conv(hid)
                continue
            if self.recurrent:
                hid, cell = self._lstm(f, hid, cell)
                f = hid
            x = self.conv(self._resnet(f)) + rainy
        return x
