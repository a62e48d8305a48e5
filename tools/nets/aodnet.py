"""AOD-Net, the All-in-One Dehazing Network (Li et al., ICCV 2017).

Instead of estimating the transmission map and the airlight separately, AOD-Net
folds both into one per-pixel map ``K`` and recovers the clean image as
``J = ReLU(K·I − K + 1)`` (the bias ``b`` of the paper is 1). Five tiny
convolutions with multi-scale concatenations estimate ``K``; the whole network
has 1 761 parameters. Input and output are RGB in [0, 1]. Parameter names match
the published PyTorch checkpoint (``e_conv1`` … ``e_conv5``) so it loads with
``strict=True``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class AODNet(nn.Module):
    """K-estimation module (5 convs with concatenations) plus the clean-image module."""

    def __init__(self) -> None:
        super().__init__()
        self.e_conv1 = nn.Conv2d(3, 3, 1)
        self.e_conv2 = nn.Conv2d(3, 3, 3, padding=1)
        self.e_conv3 = nn.Conv2d(6, 3, 5, padding=2)
        self.e_conv4 = nn.Conv2d(6, 3, 7, padding=3)
        self.e_conv5 = nn.Conv2d(12, 3, 3, padding=1)

    def k_map(self, x: torch.Tensor) -> torch.Tensor:
        """The joint transmission/airlight map ``K`` (N×3×H×W, ≥ 0)."""
        x1 = F.relu(self.e_conv1(x))
        x2 = F.relu(self.e_conv2(x1))
        x3 = F.relu(self.e_conv3(torch.cat([x1, x2], 1)))
        x4 = F.relu(self.e_conv4(torch.cat([x2, x3], 1)))
        return F.relu(self.e_conv5(torch.cat([x1, x2, x3, x4], 1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.k_map(x)
        return F.relu(k * x - k + 1.0)
