"""Shared machinery for tools backed by a PyTorch network.

A subclass implements :meth:`TorchTool.build` (return an ``nn.Module`` with its
weights loaded) and, when the network is not a plain RGB→RGB map,
:meth:`TorchTool.forward`. Loading is lazy; inference is tiled and runs on the
context's device (CUDA when present and asked for, else CPU).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .base import RestorationTool, ToolArgs
from .tiling import tiled

if TYPE_CHECKING:
    import torch


def resolve_device(preference: str = "auto") -> str:
    """'auto' picks CUDA when a GPU is visible, else the CPU."""
    if preference == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return preference


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Load a plain state dict safely (no pickled code)."""
    import torch

    sd = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    return sd


class TorchTool(RestorationTool):
    """A restoration tool whose work is done by one ``nn.Module``."""

    net: torch.nn.Module

    def build(self, weights: dict[str, Path]) -> torch.nn.Module:
        """Return the network with weights loaded (``weights``: manifest id → path)."""
        raise NotImplementedError

    def load(self) -> None:
        self.device = resolve_device(self.context.device)
        self.net = self.build(self.weight_paths()).eval().to(self.device)

    def forward(self, x: torch.Tensor, args: ToolArgs) -> torch.Tensor:
        """Map a 1×3×H×W tensor in [0, 1] to the restored tensor."""
        return self.net(x)

    def process(self, image: np.ndarray, args: ToolArgs) -> np.ndarray:
        import torch

        def run(patch: np.ndarray) -> np.ndarray:
            x = torch.from_numpy(np.ascontiguousarray(patch.transpose(2, 0, 1)))[None].to(self.device)
            with torch.inference_mode():
                y = self.forward(x, args)
            return y[0].clamp(0, 1).permute(1, 2, 0).float().cpu().numpy()

        return tiled(
            run,
            image,
            tile=self.context.tile_size,
            overlap=self.context.tile_overlap,
            scale=self.expected_scale(args),
        )
