"""Oracle labels for the learned planner: Q-values of every move at every prefix-tree node.

For one degraded training image with true degradations ``combo`` the prefix tree of
:mod:`.oracle` is walked completely (every order × every tool per task, each partial
result computed once). Every *node* of the tree — the image after a prefix of moves,
from the input (the root) to the complete pipelines (the leaves) — becomes one record:

* ``features``: what the agent would see on that image — the assessor's severities,
  ``quality`` and its raw ``measures`` (:func:`node_features`), the tasks already done
  (the prefix) and the depth;
* ``stop``: the value of stopping there, the node's own combined score
  (``0.5·PSNR/40 + 0.5·SSIM`` against the ground truth, bicubic-resized to its size);
* ``moves``: for every candidate move ``(task, tool)`` its Q-value ``q`` and the score
  right after it (``after``):

  - a move for a remaining *true* degradation: ``q`` = the best leaf score reachable
    through it (exact; so at the root the best ``q`` is the oracle's best leaf score);
  - a *false-alarm* move — a task that is not a true degradation but whose severity on
    this node is at least ``false_floor`` or whose presence probability reaches
    ``false_presence`` (the assessor flags it, or nearly; the ranker trains only on the
    moves above its candidate floors, but the shipped labels were made with both, and the
    extra tasks change which tools are drawn at deeper nodes): the tool
    is run once and ``q = V*(node) + (after − stop)``, i.e. the damage (or gain) of the
    move added to the best continuation without it (exact at the leaves, where
    ``V*(node) = stop``); ``seen`` keeps the assessment of its result, so that the
    observe node's verdict on it can be replayed (a true move's result is its child node). These are the moves that cost 3–11 dB in the rule-based agent.
    False-alarm moves are evaluated at the root with every tool of the task, and at up
    to ``false_nodes`` other nodes (drawn at random) with ``false_tools`` tools of it, to
    keep the cost linear.

A value is in combined-score units (0.0125 ≈ 1 dB of PSNR). Failing tool runs are
left out (their branch has no value). :func:`label_case` returns a JSON-ready dict;
``tools/research/training/policy.py`` writes one file per case and trains the ranker on them.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from restoreagent.tools.base import DEGRADATIONS, RestorationTool
from restoreagent.tools.perception.report import Assessment
from restoreagent.tools.perception.rules import apply_low_light_rule, trusts_network_low_light
from restoreagent.tools.research.evaluation.oracle import combined_score, match_size
from restoreagent.tools.util.metrics import psnr, ssim

Prefix = tuple[str, ...]

#: Raw assessor measures used as features (missing ones read 0).
MEASURES: tuple[str, ...] = (
    "noise_sigma_255",
    "blockiness",
    "mean_luminance",
    "low_light_learned",
    "low_resolution_size_prior",
    *(f"p_{k}" for k in DEGRADATIONS),
)


def node_features(report: Assessment | Mapping[str, Any]) -> dict[str, Any]:
    """The JSON-ready part of an assessment the ranker reads (severities, quality, measures)."""
    data = report.model_dump() if isinstance(report, Assessment) else dict(report)
    measures = data.get("measures", {}) or {}
    return {
        "degradations": {k: round(float(data["degradations"].get(k, 0.0)), 4) for k in DEGRADATIONS},
        "quality": round(float(data.get("quality", 0.0)), 4),
        "measures": {k: round(float(measures[k]), 4) for k in MEASURES if k in measures},
    }


#: PSNR counted at most: a clean case's input is its own reference (PSNR 120 dB), and a move's
#: cost there should be what a viewer could see, not the distance from a perfect copy.
PSNR_CAP = 50.0


def _score(image: np.ndarray, clean: np.ndarray) -> float:
    sized = match_size(image, clean.shape)
    return combined_score(min(psnr(sized, clean), PSNR_CAP), ssim(sized, clean))


class _Runner:
    """Runs tools on images, counting the runs and keeping each failing tool's error (a failed move has no value)."""

    def __init__(self, tools: Mapping[str, RestorationTool]) -> None:
        self.tools, self.runs, self.failures = tools, 0, {}

    def __call__(self, name: str, image: np.ndarray) -> np.ndarray | None:
        self.runs += 1
        tool = self.tools[name]
        try:
            return tool(image, tool.Args(image_id="img-0000000000000000"))
        except Exception as exc:
            self.failures[name] = f"{type(exc).__name__}: {exc}"
            return None


def _grow_tree(degraded: np.ndarray, combo: Sequence[str], by_task: Mapping[str, list[str]],
               task_of: Mapping[str, str], run: _Runner) -> tuple[dict[Prefix, np.ndarray], list[Prefix]]:
    """The image of every prefix: each tool of each task not yet done, breadth first."""
    images: dict[Prefix, np.ndarray] = {(): degraded}
    order: list[Prefix] = [()]
    frontier: list[Prefix] = [()]
    while frontier:
        nxt = []
        for prefix in frontier:
            done = {task_of[n] for n in prefix}
            for task in combo:
                if task in done:
                    continue
                for name in by_task[task]:
                    out = run(name, images[prefix])
                    if out is not None:
                        images[prefix + (name,)] = out
                        order.append(prefix + (name,))
                        nxt.append(prefix + (name,))
        frontier = nxt
    return images, order


def _best_values(order: list[Prefix], score: Mapping[Prefix, float], depth: int) -> dict[Prefix, float]:
    """The best leaf score reachable from each prefix (a prefix whose completions all failed has none)."""
    best_value: dict[Prefix, float] = {p: score[p] for p in order if len(p) == depth}
    for p in sorted(order, key=len, reverse=True):  # children before parents
        if p not in best_value:
            kids = [best_value[c] for c in order if len(c) == len(p) + 1 and c[: len(p)] == p and c in best_value]
            if kids:
                best_value[p] = max(kids)
    return best_value


def _true_moves(prefix: Prefix, combo: Sequence[str], done: list[str], by_task: Mapping[str, list[str]],
                best_value: Mapping[Prefix, float], score: Mapping[Prefix, float]) -> list[dict[str, Any]]:
    """The moves that treat a degradation the case has, valued by the best completion after them."""
    moves = []
    for task in combo:
        if task in done:
            continue
        for name in by_task[task]:
            child = prefix + (name,)
            if child in best_value:
                moves.append({"task": task, "tool": name, "q": round(best_value[child], 5),
                              "after": round(score[child], 5), "true": True})
    return moves


def _false_moves(prefix: Prefix, image: np.ndarray, clean: np.ndarray, feats: dict[str, Any], combo: Sequence[str],
                 by_task: Mapping[str, list[str]], value: float, stop: float, run: _Runner,
                 observe: Callable[[np.ndarray], Assessment], rng: np.random.Generator, false_floor: float,
                 false_presence: float, false_tools: int) -> list[dict[str, Any]]:
    """Moves against a degradation the assessor flags but the case lacks: their value is the loss they
    cause (the best completion shifted by the move's change of score), and what observe would see."""
    moves = []
    for task in DEGRADATIONS:
        flagged = (feats["degradations"][task] >= false_floor
                   or feats["measures"].get(f"p_{task}", 0.0) >= false_presence)
        if task in combo or not flagged or not by_task.get(task):
            continue
        names = by_task[task]
        if prefix and len(names) > false_tools:
            names = [names[i] for i in sorted(rng.choice(len(names), false_tools, replace=False))]
        for name in names:
            out = run(name, image)
            if out is None:
                continue
            after = _score(out, clean)
            seen = observe(out)  # what the observe node would judge the move on
            moves.append({"task": task, "tool": name, "q": round(value + after - stop, 5),
                          "after": round(after, 5), "true": False,
                          "seen": {"degradations": {k: round(float(v), 4) for k, v in seen.degradations.items()},
                                   "quality": round(float(seen.quality), 4)}})
    return moves


def label_case(
    degraded: np.ndarray,
    clean: np.ndarray,
    combo: Sequence[str],
    tools: Mapping[str, RestorationTool],
    assessor: Callable[[np.ndarray], Assessment],
    false_floor: float = 0.1,
    false_presence: float = 0.25,
    false_nodes: int = 12,
    false_tools: int = 2,
    seed: int = 0,
) -> dict[str, Any]:
    """Label every node of the prefix tree of ``combo`` (see the module docstring)."""
    t_start = time.perf_counter()
    rng = np.random.default_rng(seed)
    task_of = {name: tool.spec.task for name, tool in tools.items()}
    by_task = {t: [n for n in tools if task_of[n] == t] for t in DEGRADATIONS}
    missing = [t for t in combo if not by_task.get(t)]
    if missing:
        raise ValueError(f"no tool for task(s) {', '.join(missing)}")
    run = _Runner(tools)
    images, order = _grow_tree(degraded, combo, by_task, task_of, run)
    score = {p: _score(img, clean) for p, img in images.items()}
    leaves = [p for p in order if len(p) == len(combo)]
    best_value = _best_values(order, score, len(combo))
    # Which deeper nodes also get false-alarm moves (the root always does).
    deep = [p for p in order if p]
    picked = set(map(tuple, (deep[i] for i in rng.permutation(len(deep))[:false_nodes]))) if deep else set()

    # The observe node's low-light rule, decided on the input as the graph does.
    root = assessor(images[()])
    trust = trusts_network_low_light(root)

    def observe(image: np.ndarray) -> Assessment:
        return apply_low_light_rule(assessor(image), trust)

    nodes = []
    for prefix in order:
        if prefix not in best_value:  # a dead branch (all completions failed)
            continue
        feats = node_features(apply_low_light_rule(root, trust) if not prefix else observe(images[prefix]))
        done = [task_of[n] for n in prefix]
        moves = _true_moves(prefix, combo, done, by_task, best_value, score)
        if not prefix or prefix in picked:
            moves += _false_moves(prefix, images[prefix], clean, feats, combo, by_task, best_value[prefix],
                                  score[prefix], run, observe, rng, false_floor, false_presence, false_tools)
        nodes.append({"prefix": list(prefix), "done": done, "depth": len(prefix), **feats,
                      "stop": round(score[prefix], 5), "value": round(best_value[prefix], 5), "moves": moves})
    best_leaf = max(leaves, key=lambda p: score[p]) if leaves else ()
    return {
        "combo": list(combo),
        "input_score": round(score[()], 5),
        "best_pipeline": list(best_leaf),
        "best_score": round(score[best_leaf], 5) if leaves else None,
        "leaves": len(leaves),
        "tool_runs": run.runs,
        "failures": run.failures,
        "seconds": round(time.perf_counter() - t_start, 2),
        "nodes": nodes,
    }
