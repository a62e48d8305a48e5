"""``restoreagent bench``: planners on the MiO combinations, against the oracle.

Each case is one clean image (centre crop) degraded with one MiO combination
(cases cycle through the 16 combinations). Every planner restores it:

* agent — the graph (assesses by itself, plans, executes, rolls back);
* oracle — the best of all d!·∏nᵢ pipelines for the true degradations;
* fixed, random, allinone — see :mod:`.baselines`.

Outputs in ``--out``: ``results.json`` (per case and planner: PSNR, SSIM,
combined score, tool executions, seconds, pipeline), ``summary.md`` (per group
A/B/C: gains, fraction of the oracle's gain, the agent's percentile among all
pipelines, executions per degradation, the share of the agent's wall time spent planning and
observing, and the share spent on anything but the tools) and ``contact.png``
(input / agent / oracle / ground truth).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ...tools.datasets import IMAGE_SUFFIXES, load_rgb
from ...tools.figures import contact_sheet
from ...tools.imageio import load_image, save_png
from ...tools.metrics import psnr, ssim
from ...tools.synthesis import MIO_GROUPS, degrade
from ...tools.toolbench import center_crop, write_markdown
from .baselines import all_in_one_tool, fixed_pipeline, random_pipeline
from .oracle import combined_score, match_size, run_oracle

PLANNERS = ("agent", "oracle", "fixed", "random", "allinone")
COMBOS: list[tuple[str, tuple[str, ...]]] = [(g, c) for g, combos in MIO_GROUPS.items() for c in combos]


@dataclass
class Case:
    id: str
    group: str
    combo: tuple[str, ...]
    clean: np.ndarray
    degraded: np.ndarray


def make_cases(images: Path, limit: int, crop: int, seed: int) -> list[Case]:
    """Synthesize cases from a folder of clean images (combos cycle over the images)."""
    files = sorted(p for p in Path(images).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"no images in {images}")
    cases = []
    for i in range(limit):
        group, combo = COMBOS[i % len(COMBOS)]
        path = files[i % len(files)]
        clean = center_crop(load_rgb(path), crop)
        degraded, _ = degrade(clean, combo, seed=seed * 100_000 + i)
        cases.append(Case(f"{i:03d}_{path.stem}_{'+'.join(combo)}", group, combo, clean, degraded))
    return cases


def _apply(pipeline: tuple[str, ...], image: np.ndarray, tools: dict) -> tuple[np.ndarray, float]:
    t0 = time.perf_counter()
    for name in pipeline:
        tool = tools[name]
        image = tool(image, tool.Args(image_id="img-0000000000000000"))
    return image, time.perf_counter() - t0


def _record(out: np.ndarray, clean: np.ndarray, pipeline, executions: int, seconds: float, **extra) -> dict:
    out = match_size(out, clean.shape)
    p, s = psnr(out, clean), ssim(out, clean)
    return {"psnr": round(p, 3), "ssim": round(s, 4), "score": round(combined_score(p, s), 4),
            "executions": executions, "seconds": round(seconds, 3), "pipeline": list(pipeline), **extra}


def run_benchmark(
    cases: list[Case],
    out_dir: Path,
    toolbox: Any,
    graph: Any,
    planners: tuple[str, ...] = PLANNERS,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "cases").mkdir(exist_ok=True)
    tools = toolbox.tools
    by_task = toolbox.tools_by_task()
    rng = np.random.default_rng(seed)
    results: list[dict] = []
    sheets: list[tuple[str, np.ndarray]] = []
    for n, case in enumerate(cases, 1):
        if progress:
            progress(f"[{n}/{len(cases)}] {case.id}")
        deg_path = out_dir / "cases" / f"{case.id}.png"
        save_png(case.degraded, deg_path, overwrite=True)
        base = match_size(case.degraded, case.clean.shape)
        row: dict[str, Any] = {"id": case.id, "group": case.group, "combo": list(case.combo),
                               "input": {"psnr": round(psnr(base, case.clean), 3), "ssim": round(ssim(base, case.clean), 4)}}
        row["input"]["score"] = round(combined_score(row["input"]["psnr"], row["input"]["ssim"]), 4)
        missing = [t for t in case.combo if t not in by_task]
        if missing:
            row["skipped"] = f"no tool for {', '.join(missing)}"
            results.append(row)
            continue
        outputs: dict[str, np.ndarray] = {}
        oracle = None
        if "oracle" in planners:
            t0 = time.perf_counter()
            oracle = run_oracle(case.degraded, case.clean, case.combo, {k: v for k, v in tools.items()})
            best = oracle.best
            outputs["oracle"] = oracle.best_output
            row["oracle"] = _record(outputs["oracle"], case.clean, best.pipeline, oracle.tool_runs,
                                    time.perf_counter() - t0, distribution=oracle.distribution())
        if "fixed" in planners:
            pipe = fixed_pipeline(case.combo, by_task)
            out, secs = _apply(pipe, case.degraded, tools)
            row["fixed"] = _record(out, case.clean, pipe, len(pipe), secs)
        if "random" in planners:
            pipe = random_pipeline(case.combo, by_task, rng)
            out, secs = _apply(pipe, case.degraded, tools)
            row["random"] = _record(out, case.clean, pipe, len(pipe), secs)
        if "allinone" in planners and (name := all_in_one_tool(list(tools))):
            out, secs = _apply((name,), case.degraded, tools)
            row["allinone"] = _record(out, case.clean, (name,), 1, secs)
        if "agent" in planners:
            t0 = time.perf_counter()
            state = graph.invoke({"image": str(deg_path)})
            wall = time.perf_counter() - t0
            tool_time = sum(s["seconds"] for s in state["steps"])
            outputs["agent"] = load_image(state["output"]).rgb
            pipe = tuple(s["tool"] for s in state["steps"] if s["accepted"])
            agent_time = state.get("planning_seconds", 0.0) + state.get("observing_seconds", 0.0)
            row["agent"] = _record(outputs["agent"], case.clean, pipe, len(state["steps"]), wall,
                                   # the agent's own work (brain + assessments and verdicts), and
                                   # everything but the tools (that plus loading, storing, writing)
                                   planning_observing=round(agent_time / max(wall, 1e-9), 4),
                                   overhead=round((wall - tool_time) / max(wall, 1e-9), 4),
                                   detected=state["plan"])
            if oracle is not None:
                row["agent"]["percentile"] = round(oracle.percentile(row["agent"]["score"]), 1)
        results.append(row)
        if len(sheets) < 4 and "agent" in outputs and "oracle" in outputs:
            panels = (case.degraded, outputs["agent"], outputs["oracle"], case.clean)
            sheets.append((case.id, np.hstack([match_size(img, case.clean.shape) for img in panels])))
    report = {"cases": results, "planners": list(planners), "seed": seed}
    (out_dir / "results.json").write_text(json.dumps(report, indent=1))
    write_markdown(summarize(results, planners), out_dir / "summary.md")
    if sheets:
        grid = np.vstack([s for _, s in sheets])
        contact_sheet([("input | agent | oracle | ground truth", grid)], height=min(1600, 256 * len(sheets))).save(
            out_dir / "contact.png"
        )
    return report


def _mean_share(rows: list[dict], planner: str, key: str) -> str:
    values = [r[planner][key] for r in rows if key in r[planner]]
    return f"{100 * np.mean(values):.0f} %" if values else ""


def summarize(results: list[dict], planners: tuple[str, ...]) -> str:
    lines = ["# MiO benchmark", ""]
    groups = sorted({r["group"] for r in results})
    for group in groups + ["all"]:
        rows = [r for r in results if (group == "all" or r["group"] == group) and "skipped" not in r]
        if not rows:
            continue
        lines += [f"## Group {group} ({len(rows)} cases)", "",
                  "| planner | PSNR | SSIM | gain (dB) | share of oracle gain | executions / d | seconds "
                  "| planning + observing | all but tools | agent percentile |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        inp = np.mean([r["input"]["psnr"] for r in rows])
        lines.append(f"| input | {inp:.2f} | {np.mean([r['input']['ssim'] for r in rows]):.4f} | | | | | | | |")
        oracle_gain = np.mean([r["oracle"]["psnr"] - r["input"]["psnr"] for r in rows]) if "oracle" in planners else None
        for p in planners:
            have = [r for r in rows if p in r]
            if not have:
                continue
            gain = np.mean([r[p]["psnr"] - r["input"]["psnr"] for r in have])
            share = f"{100 * gain / oracle_gain:.0f} %" if oracle_gain and oracle_gain > 0 else ""
            per_d = np.mean([r[p]["executions"] / len(r["combo"]) for r in have])
            secs = np.mean([r[p]["seconds"] for r in have])
            over = f"{_mean_share(have, p, 'planning_observing')} | {_mean_share(have, p, 'overhead')}"
            pct = f"{np.median([r[p]['percentile'] for r in have if 'percentile' in r[p]]):.0f}" if p == "agent" and any("percentile" in r[p] for r in have) else ""
            lines.append(f"| {p} | {np.mean([r[p]['psnr'] for r in have]):.2f} | {np.mean([r[p]['ssim'] for r in have]):.4f} | "
                         f"{gain:+.2f} | {share} | {per_d:.2f} | {secs:.2f} | {over} | {pct} |")
        lines.append("")
    skipped = [r for r in results if "skipped" in r]
    if skipped:
        lines += ["Skipped cases: " + ", ".join(f"{r['id']} ({r['skipped']})" for r in skipped), ""]
    return "\n".join(lines)
