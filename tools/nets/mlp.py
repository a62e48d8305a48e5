"""The small MLP ensembles of the learned critics (``tools/perception/verifier.py``, ``tools/perception/noise_level.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence


def make_mlp(n_in: int, hidden: int, n_out: int = 1):
    import torch.nn as nn

    return nn.Sequential(nn.Linear(n_in, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, n_out))


def load_ensemble(checkpoint: Path | str, features: Sequence[str], n_out: int, trainer: str):
    """(checkpoint dict, members in eval mode) of an ensemble trained on ``features``."""
    import torch

    ckpt = torch.load(Path(checkpoint), map_location="cpu", weights_only=True)
    if tuple(ckpt["features"]) != tuple(features):
        raise ValueError(f"{checkpoint}: trained on other features; retrain with {trainer}")
    members = []
    for state in ckpt["members"]:
        net = make_mlp(len(features), int(ckpt["hidden"]), n_out)
        net.load_state_dict({k: v.float() for k, v in state.items()})
        net.eval()
        members.append(net)
    return ckpt, members
