"""Shared machinery for tools backed by a PyTorch network, and for those backed by one of our checkpoints.

A subclass implements :meth:`TorchTool.build` (return an ``nn.Module`` with its
weights loaded) and, when the network is not a plain RGB→RGB map,
:meth:`TorchTool.forward`. Loading is lazy; inference is tiled and runs on the
context's device (CUDA when present and asked for, else CPU).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from restoreagent.checkpoints import checkpoint_file
from restoreagent.tools.base import RestorationTool, ToolArgs, ToolUnavailable
from restoreagent.tools.util.tiling import tiled

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


def checkpoint_path(filename: str, override: Any = None) -> Path:
    """Where a checkpoint of ours is: ``override`` if given, else inside the
    ``restoreagent.checkpoints`` package. Raises ToolUnavailable if it is missing."""
    if override:
        path = Path(override)
    else:
        path = checkpoint_file(filename)
    if not path.is_file():
        raise ToolUnavailable(
            f"checkpoint {path.name} is missing (train it: python -m restoreagent.tools.research.training.restorers)"
        )
    return path


class RestorerTool(TorchTool):
    """A tool backed by one of our :class:`~restoreagent.tools.nets.restorer.Restorer` checkpoints.

    ``CHECKPOINT`` names the file in ``restoreagent/checkpoints``; ``context.extra["checkpoints"]``
    (tool name → path) overrides it (training evaluation uses that). Subclasses whose network
    refines a classical result implement :meth:`hint`: it runs once on the whole image, and
    the network sees ``[image, hint]`` and corrects the hint.
    """

    CHECKPOINT: str = ""

    def checkpoint_file(self) -> Path:
        override = (self.context.extra.get("checkpoints") or {}).get(self.spec.name)
        return checkpoint_path(self.CHECKPOINT, override)

    def check_available(self) -> None:
        self.checkpoint_file()

    def build(self, weights: dict[str, Path]) -> torch.nn.Module:
        from restoreagent.tools.nets.restorer import load_restorer

        net, self.checkpoint_info = load_restorer(self.checkpoint_file())
        return net

    def hint(self, image: np.ndarray, args: ToolArgs) -> np.ndarray | None:
        return None

    def forward(self, x: torch.Tensor, args: ToolArgs) -> torch.Tensor:
        if x.shape[1] == 6:
            return self.net(x, x[:, 3:6])
        return self.net(x)

    def process(self, image: np.ndarray, args: ToolArgs) -> np.ndarray:
        from restoreagent.tools.util.tiling import tiled

        h = self.hint(image, args)
        if h is None:
            return super().process(image, args)
        stacked = np.concatenate([image, np.clip(h, 0, 1).astype(np.float32)], axis=2)

        import torch

        def run(patch: np.ndarray) -> np.ndarray:
            x = torch.from_numpy(np.ascontiguousarray(patch.transpose(2, 0, 1)))[None].to(self.device)
            with torch.inference_mode():
                y = self.forward(x, args)[0].clamp(0, 1).permute(1, 2, 0).float().cpu().numpy()
            return np.concatenate([y, np.zeros_like(y)], axis=2)  # tiled() keeps the input's channels

        out = tiled(run, stacked, tile=self.context.tile_size, overlap=self.context.tile_overlap)
        return np.ascontiguousarray(out[..., :3])
