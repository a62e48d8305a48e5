"""The exhaustive oracle: every order of the tasks × every tool per task.

For an image with d degradations and nᵢ tools for task i there are d!·∏nᵢ
pipelines. They share prefixes, so they are walked as a tree and each partial
result is computed once (for d = 3 and 3 tools each: 225 tool runs instead of
486). Every leaf is scored against the ground truth.

The combined score weighs PSNR and SSIM equally on comparable scales:
``score = 0.5 · PSNR / 40 + 0.5 · SSIM``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import cv2
import numpy as np

from restoreagent.tools.base import RestorationTool
from restoreagent.tools.util.metrics import psnr, ssim

Pipeline = tuple[str, ...]


def combined_score(p: float, s: float) -> float:
    return 0.5 * p / 40.0 + 0.5 * s


def match_size(image: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Bicubic-resize ``image`` to ``shape`` (a pipeline that skipped super-resolution
    is scored on its interpolated output, as a viewer would see it)."""
    if image.shape == tuple(shape):
        return image
    return np.clip(cv2.resize(image, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC), 0, 1)


@dataclass(frozen=True)
class Leaf:
    pipeline: Pipeline
    psnr: float
    ssim: float

    @property
    def score(self) -> float:
        return combined_score(self.psnr, self.ssim)


@dataclass
class OracleResult:
    leaves: list[Leaf]
    tool_runs: int
    input_psnr: float
    input_ssim: float
    best_output: np.ndarray | None = None
    failures: dict[Pipeline, str] = field(default_factory=dict)
    #: Every inner node of the tree (partial pipelines; the input is the empty one), scored.
    inner: list[Leaf] = field(default_factory=list)
    #: The task of each tool that appears in the pipelines.
    task_of: dict[str, str] = field(default_factory=dict)

    @property
    def best(self) -> Leaf:
        return max(self.leaves, key=lambda leaf: leaf.score)

    def best_within(self, tasks: Sequence[str]) -> Leaf:
        """The best pipeline that treats no task outside ``tasks``, in any order with any of their
        tools, stopping anywhere (the input itself included): an upper bound for a planner that
        treats only ``tasks``. Tasks the tree does not hold are ignored."""
        allowed = set(tasks)
        within = [node for node in (*self.inner, *self.leaves)
                  if all(self.task_of[name] in allowed for name in node.pipeline)]
        return max(within, key=lambda node: node.score)

    def rank(self, pipeline: Sequence[str]) -> int:
        """1-based rank of ``pipeline`` by combined score (1 = the best)."""
        target = tuple(pipeline)
        ordered = sorted(self.leaves, key=lambda leaf: -leaf.score)
        for i, leaf in enumerate(ordered, 1):
            if leaf.pipeline == target:
                return i
        raise KeyError(f"{target} is not among the enumerated pipelines")

    def percentile(self, score: float) -> float:
        """Share of pipelines (in %) scoring at or below ``score``."""
        return 100.0 * float(np.mean([leaf.score <= score + 1e-9 for leaf in self.leaves]))

    def distribution(self) -> dict[str, float]:
        p = np.array([leaf.psnr for leaf in self.leaves])
        return {"pipelines": len(p), "psnr_min": float(p.min()), "psnr_median": float(np.median(p)),
                "psnr_max": float(p.max())}


def enumerate_pipelines(tasks: Sequence[str], tools_by_task: Mapping[str, Sequence[str]]) -> list[Pipeline]:
    """Every order of ``tasks`` × every tool per task."""
    out: list[Pipeline] = []
    for order in itertools.permutations(tasks):
        for combo in itertools.product(*(tools_by_task[t] for t in order)):
            out.append(tuple(combo))
    return out


def run_oracle(
    degraded: np.ndarray,
    clean: np.ndarray,
    tasks: Sequence[str],
    tools: Mapping[str, RestorationTool],
    on_run: Callable[[Pipeline], None] | None = None,
) -> OracleResult:
    """Score every pipeline for ``tasks`` with the given tools (a prefix tree, computed once)."""
    tools_by_task = {t: [n for n, tool in tools.items() if tool.spec.task == t] for t in tasks}
    missing = [t for t, names in tools_by_task.items() if not names]
    if missing:
        raise ValueError(f"no tool for task(s) {', '.join(missing)}")
    cache: dict[Pipeline, np.ndarray | None] = {(): degraded}
    failures: dict[Pipeline, str] = {}
    runs = 0

    def result(prefix: Pipeline) -> np.ndarray | None:
        nonlocal runs
        if prefix not in cache:
            parent = result(prefix[:-1])
            if parent is None:
                cache[prefix] = None
            else:
                tool = tools[prefix[-1]]
                runs += 1
                if on_run:
                    on_run(prefix)
                try:
                    cache[prefix] = tool(parent, tool.Args(image_id="img-0000000000000000"))
                except Exception as exc:  # a failing branch scores as its parent would not
                    failures[prefix] = f"{type(exc).__name__}: {exc}"
                    cache[prefix] = None
        return cache[prefix]

    def scored(pipeline: Pipeline, out: np.ndarray) -> Leaf:
        sized = match_size(out, clean.shape)
        return Leaf(pipeline, psnr(sized, clean), ssim(sized, clean))

    leaves: list[Leaf] = []
    best_output, best_score = None, -np.inf
    for pipeline in enumerate_pipelines(tasks, tools_by_task):
        out = result(pipeline)
        if out is None:
            continue
        leaf = scored(pipeline, out)
        if leaf.score > best_score:
            best_output, best_score = out, leaf.score
        leaves.append(leaf)
    depth = len(tasks)
    inner = [scored(prefix, out) for prefix, out in cache.items() if len(prefix) < depth and out is not None]
    base = match_size(degraded, clean.shape)
    task_of = {name: task for task, names in tools_by_task.items() for name in names}
    return OracleResult(leaves, runs, psnr(base, clean), ssim(base, clean), best_output, failures, inner, task_of)
