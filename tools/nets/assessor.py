"""AssessorNet: our compact CNN for degradation perception (RestoreAgent's own design).

It maps a 96×96 RGB crop to, for each of the eight degradations
(:data:`DEGRADATIONS`), a presence logit and a severity in [0, 1]. Whole
images are judged by averaging the outputs of up to 8 crops (see
:func:`restoreagent.tools.perception.assess.LearnedAssessor`).

Layout (270,816 parameters, ≈ 49 M MACs per crop; 8 crops ≈ 5–10 ms at 1 thread with the
BatchNorms folded, :meth:`AssessorNet.fuse_batchnorm`):

* full-resolution stem (3×3, 16 ch) so that pixel-level cues — noise grain,
  8×8 JPEG block edges, interpolation smoothness — are seen before any stride;
* four stride-2 stages (16 → 32 → 48 → 64 → 96 ch) of conv–BN–ReLU, the last
  three followed by a second stride-1 conv;
* global average *and* max pooling (max pooling keeps sparse cues such as rain
  streaks), concatenated with the crop's per-channel mean and standard deviation
  (global exposure / contrast cues for low light and haze);
* an MLP head with 16 outputs: 8 presence logits, 8 severity logits (sigmoid).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from restoreagent.tools.base import DEGRADATIONS

CROP = 96


def _block(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride, 1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class AssessorNet(nn.Module):
    def __init__(self, n: int = len(DEGRADATIONS), width: tuple[int, ...] = (16, 32, 48, 64, 96)) -> None:
        super().__init__()
        w0, *rest = width
        layers = [_block(3, w0, 1)]
        cin = w0
        for i, c in enumerate(rest):
            layers.append(_block(cin, c, 2))
            if i >= 1:  # a second conv only where the maps are small
                layers.append(_block(c, c, 1))
            cin = c
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.Linear(2 * cin + 6, 128),
            nn.ReLU(inplace=True),
            nn.Linear(128, 2 * n),
        )
        self.n = n

    def fuse_batchnorm(self) -> None:
        """Fold each BatchNorm into its convolution, for inference (half the time on a CPU; same outputs
        to float rounding). Call it after ``eval()`` and loading the weights; the model cannot be trained after."""
        for block in self.features:
            block[0] = fuse_conv_bn_eval(block[0], block[1])
            block[1] = nn.Identity()

    def forward(self, x: torch.Tensor, severity_logits: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """``x``: B×3×H×W in [0, 1]. Returns (presence logits, severities in [0, 1]), each B×8
        (with ``severity_logits``, the severities before their sigmoid: for training losses)."""
        stats = torch.cat([x.mean(dim=(2, 3)), x.std(dim=(2, 3))], dim=1)
        f = self.features(x - 0.5)
        pooled = torch.cat([f.mean(dim=(2, 3)), f.amax(dim=(2, 3)), stats], dim=1)
        out = self.head(pooled)
        sev = out[:, self.n :]
        return out[:, : self.n], (sev if severity_logits else torch.sigmoid(sev))
