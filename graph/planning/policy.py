"""The learned planner: ranks candidate (task, tool) moves on the current image.

RestoreAgent's recipe on a CPU budget: instead of fixed rules, a small model trained on
oracle labels (:mod:`.labels`, ``tools/research/training/policy.py``) predicts, for the current
image and a candidate move, the move's **advantage over stopping** — the best combined
score reachable through the move minus the score of the image as it is, in dB
(80 × score units). The brain takes the best move; after a roll-back it asks again and
the next candidate comes first (the tried tool is no longer a candidate); it stops when
no candidate is predicted to beat stopping.

Input of :class:`RankerNet` (:func:`encode`, :data:`FEATURES`):

* the current image as the assessor sees it: the eight severities, ``quality`` and the raw
  measures (blind σ, blockiness, mean luminance, the network's own low-light reading, the
  size prior and the eight presence probabilities ``p_*``; read from the context's
  ``measures`` key, else from ``assessment.measures``; when neither is there the measures
  read 0 and the flag ``has_measures`` is 0 — the model was trained with that dropout);
* the tasks already done (accepted steps still active) and how many;
* the move: task and tool one-hot, the task's severity and presence probability.

The model is a small ensemble of MLPs (input standardisation → 2 hidden SiLU layers → 1),
their predictions averaged; inference is numpy only (the checkpoint is read with ``torch.load(weights_only=True)``).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from restoreagent.checkpoints import checkpoint_file
from restoreagent.tools.base import DEGRADATIONS

DEFAULT_CHECKPOINT = checkpoint_file("policy.pt")

#: Every registered tool: the one-hot order a newly trained ranker uses. A checkpoint keeps the tools it
#: was trained with (its ``tools``), and a tool registered since reads 0 in its one-hot.
TOOL_NAMES: tuple[str, ...] = (
    "deblur_defocus_ours", "deblur_defocus_wiener", "deblur_motion_ours", "deblur_motion_wiener",
    "dehaze_aodnet", "dehaze_dcp", "dehaze_gcanet", "denoise_dncnn", "denoise_ffdnet", "denoise_nlmeans",
    "denoise_oidn", "derain_classical", "derain_gcanet", "derain_prenet", "jpeg_deblock", "jpeg_dncnn3",
    "jpeg_ours", "lowlight_clahe", "lowlight_gamma", "lowlight_zero_dce", "lowlight_zero_dce_pp",
    "sr_fsrcnn", "sr_lanczos", "sr_realesrgan_compact", "sr_ours",
)

#: Raw measures (scaled in :func:`encode`).
MEASURE_KEYS: tuple[str, ...] = ("noise_sigma_255", "blockiness", "mean_luminance", "low_light_learned",
                                 "low_resolution_size_prior")


def features_for(tools: Sequence[str]) -> tuple[str, ...]:
    """The ranker's input columns for a one-hot over ``tools``."""
    return (
        *(f"sev_{k}" for k in DEGRADATIONS),
        "quality",
        "has_measures",
        *(f"m_{k}" for k in MEASURE_KEYS),
        *(f"p_{k}" for k in DEGRADATIONS),
        *(f"done_{k}" for k in DEGRADATIONS),
        "depth",
        *(f"task_{k}" for k in DEGRADATIONS),
        *(f"tool_{k}" for k in tools),
        "move_severity",
        "move_presence",
    )


FEATURES: tuple[str, ...] = features_for(TOOL_NAMES)
#: Columns zeroed when the measures are unknown (training drops them out at random).
MEASURE_COLUMNS: tuple[int, ...] = tuple(
    i for i, f in enumerate(FEATURES) if f.startswith("m_") or f.startswith("p_") or f in ("has_measures", "move_presence")
)

#: Below this severity a task is not a candidate (the labels evaluate false alarms from it up).
CANDIDATE_FLOOR = 0.1
#: Per-task exceptions: low resolution's severity is at least the assessor's size prior, which
#: reads 0.1–0.2 on ordinary photos of 180–195 px, so below the presence threshold it says nothing;
#: low light reads 0.1–0.2 on many ordinary photos (a brightening step then costs them 3–13 dB,
#: measured on clean Kodak/LIVE1 photos), while the training cases, all degraded, rewarded it.
FLOORS: dict[str, float] = {"low_resolution": 0.2, "low_light": 0.2}


def candidate_floor(task: str) -> float:
    """The severity from which ``task`` is offered to the ranker."""
    return FLOORS.get(task, CANDIDATE_FLOOR)


def encode(
    node: Mapping[str, Any], done: Sequence[str], depth: int, task: str, tool: str,
    tools: Sequence[str] = TOOL_NAMES,
) -> np.ndarray:
    """Feature vector of (image ``node``, move ``task``/``tool``). ``node`` has ``degradations``,
    ``quality`` and optionally ``measures`` (an assessment dict or a label node)."""
    sev = node.get("degradations", {}) or {}
    measures = node.get("measures") or {}
    has = 1.0 if measures else 0.0
    m = [
        float(measures.get("noise_sigma_255", 0.0)) / 50.0,
        float(measures.get("blockiness", 1.0)) - 1.0 if has else 0.0,
        float(measures.get("mean_luminance", 0.0)),
        float(measures.get("low_light_learned", 0.0)),
        float(measures.get("low_resolution_size_prior", 0.0)),
    ]
    p = [float(measures.get(f"p_{k}", 0.0)) for k in DEGRADATIONS]
    done_set = set(done)
    tool_hot = [1.0 if tool == t else 0.0 for t in tools]
    x = [
        *(float(sev.get(k, 0.0)) for k in DEGRADATIONS),
        float(node.get("quality", 0.0)),
        has,
        *m,
        *p,
        *(1.0 if k in done_set else 0.0 for k in DEGRADATIONS),
        depth / 3.0,
        *(1.0 if k == task else 0.0 for k in DEGRADATIONS),
        *tool_hot,
        float(sev.get(task, 0.0)),
        float(measures.get(f"p_{task}", 0.0)),
    ]
    return np.asarray(x, np.float32)


def _torch_net():
    import torch
    from torch import nn

    class RankerNet(nn.Module):
        """Standardise → Linear → SiLU → Linear → SiLU → Linear(1): advantage in dB."""

        def __init__(self, n_in: int, hidden: int = 96) -> None:
            super().__init__()
            self.register_buffer("mu", torch.zeros(n_in))
            self.register_buffer("sd", torch.ones(n_in))
            self.body = nn.Sequential(nn.Linear(n_in, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
                                      nn.Linear(hidden, 1))

        def forward(self, x):
            return self.body((x - self.mu) / self.sd).squeeze(-1)

    class RankerEnsemble(nn.Module):
        """The mean prediction of several :class:`RankerNet` (seeds)."""

        def __init__(self, nets) -> None:
            super().__init__()
            self.nets = nn.ModuleList(nets)

        def forward(self, x):
            return torch.stack([net(x) for net in self.nets]).mean(0)

    return RankerNet, RankerEnsemble


def __getattr__(name: str):  # the torch modules are built lazily: inference never imports torch.nn
    if name in ("RankerNet", "RankerEnsemble"):
        return _torch_net()[name == "RankerEnsemble"]
    raise AttributeError(name)


def context_node(context: Mapping[str, Any]) -> tuple[dict[str, Any], list[str], int]:
    """(image features, tasks done, depth) from the brain's JSON context."""
    measures = context.get("measures")
    if not measures and isinstance(context.get("assessment"), Mapping):
        measures = context["assessment"].get("measures")
    node = {"degradations": context.get("degradations", {}) or {}, "quality": context.get("quality", 0.0),
            "measures": measures or {}}
    live = [s for s in context.get("history", []) or [] if s.get("active", True)]
    done = [s["task"] for s in live if s.get("accepted")]
    return node, done, len(done)


class LearnedRanker:
    """The trained ranker (numpy inference)."""

    def __init__(self, members: list[tuple[np.ndarray, np.ndarray, list[tuple[np.ndarray, np.ndarray]]]],
                 tools: Sequence[str], features: Sequence[str], margin: float = 0.0, path: Path | None = None,
                 risk: float = 0.0) -> None:
        self.members = members  # (mu, sd, [(W, b), ...]) per ensemble member
        self.tools = tuple(tools)
        self.features = tuple(features)
        self.margin = margin
        self.risk = risk
        self.path = path

    @classmethod
    def load(cls, path: Path | str | None = None, margin: float | None = None,
             risk: float | None = None) -> "LearnedRanker":
        """Load a checkpoint (default ``checkpoints/policy.pt``); OSError if it is missing.
        ``margin`` and ``risk`` override the checkpoint's (see :meth:`rank`)."""
        p = Path(path) if path is not None else DEFAULT_CHECKPOINT
        if not p.is_file():
            raise FileNotFoundError(f"no policy checkpoint at {p}")
        base = _load(str(p), p.stat().st_mtime_ns)
        if margin is None and risk is None:
            return base
        return cls(base.members, base.tools, base.features, base.margin if margin is None else margin, base.path,
                   base.risk if risk is None else risk)

    def scores(self, x: np.ndarray) -> np.ndarray:
        """Predicted advantage (dB) of each row of encoded features: the members' mean, less
        ``risk`` × their spread (an uncertain move must promise more)."""
        per = self.member_scores(x)
        return per.mean(0) - self.risk * per.std(0) if len(per) > 1 else per[0]

    def member_scores(self, x: np.ndarray) -> np.ndarray:
        """Each member's predictions (members × rows)."""
        out = []
        for mu, sd, layers in self.members:
            h = (np.atleast_2d(x) - mu) / sd
            for i, (w, b) in enumerate(layers):
                h = h @ w.T + b
                if i < len(layers) - 1:
                    h = h / (1.0 + np.exp(-h))  # SiLU
            out.append(h[:, 0])
        return np.asarray(out)

    def rank(self, context: Mapping[str, Any], candidates: Sequence[tuple[str, str]]) -> list[tuple[str, str, float]]:
        """``candidates`` (task, tool) best first with their predicted advantage over stopping (dB,
        risk-adjusted, see :meth:`scores`), leaving out those that do not beat stopping by ``margin``."""
        return [r for r in self.rank_all(context, candidates) if r[2] > self.margin]

    def rank_all(self, context: Mapping[str, Any], candidates: Sequence[tuple[str, str]]) -> list[tuple[str, str, float]]:
        """All ``candidates`` (task, tool, predicted advantage), best first, none left out."""
        if not candidates:
            return []
        node, done, depth = context_node(context)
        x = np.stack([encode(node, done, depth, task, tool, self.tools) for task, tool in candidates])
        pred = self.scores(x)
        return sorted(((t, n, float(s)) for (t, n), s in zip(candidates, pred)), key=lambda r: -r[2])


@lru_cache(maxsize=4)
def _load(path: str, mtime_ns: int) -> LearnedRanker:
    import torch

    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    if tuple(ckpt["features"]) != features_for(ckpt["tools"]):
        raise ValueError(f"{path}: the checkpoint's features do not match this version's")
    state = {k: v.float().numpy() for k, v in ckpt["state_dict"].items()}
    prefixes = sorted({k[: k.index("body.")] for k in state if "body." in k})  # "" or "nets.<i>."
    members = []
    for pre in prefixes:
        layers = sorted({int(k[len(pre):].split(".")[1]) for k in state if k.startswith(pre + "body.")})
        members.append((state[pre + "mu"], state[pre + "sd"],
                        [(state[f"{pre}body.{i}.weight"], state[f"{pre}body.{i}.bias"]) for i in layers]))
    return LearnedRanker(members, ckpt["tools"], ckpt["features"], float(ckpt.get("margin", 0.0)), Path(path),
                         float(ckpt.get("risk", 0.0)))
