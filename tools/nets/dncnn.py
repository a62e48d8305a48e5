"""DnCNN (Zhang et al. 2017), loaded through spandrel.

The files in ``denoise_dncnn/`` use KAIR's layout (``model.N``: convolutions with
ReLU between, BatchNorm already folded in, residual output ``x - net(x)``).
spandrel's DnCNN architecture detects and builds exactly this network (checked:
identical outputs to a plain conv+ReLU stack loaded with ``strict=True``), so we
do not keep a second copy of the architecture here.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from restoreagent.tools.base import ToolUnavailable


def load_dncnn(path: Path, channels: int) -> nn.Module:
    """Load a KAIR-layout DnCNN state dict; returns a module mapping x ↦ clean x.

    ``channels`` is the expected number of image channels (3 colour, 1 gray);
    a file of another shape or architecture is reported as unavailable rather
    than silently producing garbage.
    """
    import spandrel

    sd = torch.load(path, map_location="cpu", weights_only=True)
    try:
        desc = spandrel.ModelLoader().load_from_state_dict(sd)
    except Exception as exc:  # spandrel raises several types for unknown layouts
        raise ToolUnavailable(f"{path.name} is not a DnCNN state dict spandrel can load: {exc}") from None
    if desc.architecture.id != "DnCNN" or desc.input_channels != channels or desc.output_channels != channels:
        raise ToolUnavailable(
            f"{path.name} loaded as {desc.architecture.id} {desc.input_channels}->{desc.output_channels} "
            f"channels, expected DnCNN {channels}->{channels}"
        )
    return desc.model.eval()
