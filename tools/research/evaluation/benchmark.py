"""``restoreagent bench``: planners on the MiO combinations, against the oracle.

Each case is one clean image (centre crop) degraded with one MiO combination
(cases cycle through the 16 combinations). Every planner restores it:

* agent — the graph (assesses by itself, plans, executes, rolls back);
* oracle — the best of all d!·∏nᵢ pipelines for the true degradations;
* fixed, random, allinone — see :mod:`.baselines`;

and, where both the agent and the oracle ran, ``found``: the oracle restricted to the degradations
the agent's assessor found in the input (:meth:`.oracle.OracleResult.best_within`), which splits the
agent's shortfall into what perception leaves out of reach and what planning loses.

Cases come from a folder of clean images (synthesized, :func:`make_cases`) or from a prepared set
(:func:`load_prepared`): a folder with ``manifest.json`` listing, per case, its id, MiO group,
degradations and the degraded and clean images (paths relative to the manifest). Every run writes
its cases as such a set (``--out/cases``), so a run can be repeated on exactly the same inputs, and
an external set (AgenticIR's MiO100, say) only needs a manifest.

Outputs in ``--out``: ``results.json`` (per case and planner: PSNR, SSIM,
combined score, tool executions, seconds, pipeline), ``summary.md`` (per group
A/B/C: gains, fraction of the oracle's gain, the agent's percentile among all
pipelines, executions per degradation, the share of the agent's wall time spent planning and
observing, and the share spent on anything but the tools) and ``contact.png``
(input / agent / oracle / ground truth), and ``cases/`` (the prepared set: ``manifest.json``,
``<id>.png`` degraded, ``<id>.gt.png`` clean).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
from pydantic import BaseModel, Field, field_validator

from restoreagent.tools.base import DEGRADATIONS, ToolError
from restoreagent.tools.research.datasets import load_rgb
from restoreagent.tools.research.evaluation.baselines import all_in_one_tool, fixed_pipeline, random_pipeline
from restoreagent.tools.research.evaluation.oracle import combined_score, match_size, run_oracle
from restoreagent.tools.research.evaluation.toolbench import center_crop, write_markdown
from restoreagent.tools.util.figures import contact_sheet
from restoreagent.tools.util.files import atomic_save_image, atomic_write
from restoreagent.tools.util.imageio import IMAGE_SUFFIXES, load_image, save_png, to_uint8
from restoreagent.tools.util.metrics import psnr, ssim
from restoreagent.tools.util.synthesis import MIO_GROUPS, degrade

PLANNERS = ("agent", "oracle", "fixed", "random", "allinone")
#: The summary's name for the oracle restricted to the degradations the agent found (``found``).
FOUND_LABEL = "oracle on found only"
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
    return synthesize_cases([(p.stem, load_rgb(p)) for p in files[:limit]], limit, crop, seed)


def synthesize_cases(images: list[tuple[str, np.ndarray]], limit: int, crop: int, seed: int) -> list[Case]:
    """``limit`` MiO cases from (name, clean image) pairs: the combinations cycle over the images."""
    cases = []
    for i in range(limit):
        group, combo = COMBOS[i % len(COMBOS)]
        name, rgb = images[i % len(images)]
        clean = center_crop(rgb, crop)
        degraded, _ = degrade(clean, combo, seed=seed * 100_000 + i)
        # 8-bit, as saved for the agent: every planner gets the same input (dehazing, say, stretches
        # the contrast enough that float and 8-bit inputs differ by up to 0.6 dB afterwards)
        degraded = to_uint8(degraded).astype(np.float32) / 255.0
        cases.append(Case(f"{i:03d}_{name}_{'+'.join(combo)}", group, combo, clean, degraded))
    return cases


class PreparedCase(BaseModel):
    """One entry of a prepared set's ``manifest.json``."""

    id: str = Field(pattern=r"^[A-Za-z0-9_.+-]+$", description="Unique; names the case's files in the outputs.")
    group: str = Field(description="MiO group (A, B, C), or any label to summarise by.")
    combo: list[str] = Field(min_length=1, description="The degradations the case has.")
    degraded: str = Field(description="Degraded image, relative to the manifest.")
    clean: str = Field(description="Ground truth, relative to the manifest.")

    @field_validator("combo")
    @classmethod
    def _known(cls, combo: list[str]) -> list[str]:
        unknown = [c for c in combo if c not in DEGRADATIONS]
        if unknown:
            raise ValueError(f"unknown degradation(s) {', '.join(unknown)}; choose from {', '.join(DEGRADATIONS)}")
        return combo


class PreparedSet(BaseModel):
    cases: list[PreparedCase] = Field(min_length=1)


def load_prepared(folder: Path, limit: int | None = None) -> list[Case]:
    """The cases of a prepared set (``folder/manifest.json``), the first ``limit`` of them."""
    manifest = Path(folder) / "manifest.json"
    if not manifest.is_file():
        raise FileNotFoundError(f"{folder} has no manifest.json (every `restoreagent bench` run writes one to OUT/cases)")
    entries = PreparedSet.model_validate_json(manifest.read_text()).cases[:limit]
    cases = []
    for e in entries:
        degraded, clean = load_rgb(manifest.parent / e.degraded), load_rgb(manifest.parent / e.clean)
        cases.append(Case(e.id, e.group, tuple(e.combo), clean, degraded))
    return cases


def _write_prepared(cases: list[Case], folder: Path) -> None:
    """The cases as a prepared set: ``<id>.png`` (degraded), ``<id>.gt.png`` (clean), ``manifest.json``."""
    entries = []
    for case in cases:
        save_png(case.degraded, folder / f"{case.id}.png", overwrite=True)
        save_png(case.clean, folder / f"{case.id}.gt.png", overwrite=True)
        entries.append(PreparedCase(id=case.id, group=case.group, combo=list(case.combo),
                                    degraded=f"{case.id}.png", clean=f"{case.id}.gt.png"))
    atomic_write(folder / "manifest.json", PreparedSet(cases=entries).model_dump_json(indent=1))


def _apply(pipeline: tuple[str, ...], image: np.ndarray, tools: dict) -> tuple[np.ndarray, float]:
    """Run a baseline's pipeline; a step whose tool fails leaves the image as it was."""
    t0 = time.perf_counter()
    for name in pipeline:
        tool = tools[name]
        try:
            image = tool(image, tool.Args(image_id="img-0000000000000000"))
        except ToolError:
            continue
    return image, time.perf_counter() - t0


def _record(out: np.ndarray, clean: np.ndarray, pipeline, executions: int, seconds: float, **extra) -> dict:
    out = match_size(out, clean.shape)
    p, s = psnr(out, clean), ssim(out, clean)
    return {"psnr": round(p, 3), "ssim": round(s, 4), "score": round(combined_score(p, s), 4),
            "executions": executions, "seconds": round(seconds, 3), "pipeline": list(pipeline), **extra}


def _input_record(case: Case) -> dict[str, Any]:
    base = match_size(case.degraded, case.clean.shape)
    row = {"psnr": round(psnr(base, case.clean), 3), "ssim": round(ssim(base, case.clean), 4)}
    return {**row, "score": round(combined_score(row["psnr"], row["ssim"]), 4)}


def _run_baselines(case: Case, planners: tuple[str, ...], tools: dict, by_task: dict[str, list[str]],
                   rng: np.random.Generator) -> dict[str, dict]:
    """The fixed-order, random-order and all-in-one planners' records on one case."""
    pipes: dict[str, tuple[str, ...]] = {}
    if "fixed" in planners:
        pipes["fixed"] = fixed_pipeline(case.combo, by_task)
    if "random" in planners:
        pipes["random"] = random_pipeline(case.combo, by_task, rng)
    if "allinone" in planners and (name := all_in_one_tool(list(tools))):
        pipes["allinone"] = (name,)
    rows = {}
    for planner, pipe in pipes.items():
        out, secs = _apply(pipe, case.degraded, tools)
        rows[planner] = _record(out, case.clean, pipe, len(pipe), secs)
    return rows


def _run_agent(case: Case, graph: Any, deg_path: Path) -> tuple[dict[str, Any], np.ndarray, list[str]]:
    """The agent's record on one case, its output and the degradations it found."""
    t0 = time.perf_counter()
    state = graph.invoke({"image": str(deg_path)})
    wall = time.perf_counter() - t0
    tool_time = sum(s["seconds"] for s in state["steps"])
    output = load_image(state["output"]).rgb
    pipe = tuple(s["tool"] for s in state["steps"] if s["accepted"])
    agent_time = state.get("planning_seconds", 0.0) + state.get("observing_seconds", 0.0)
    record = _record(output, case.clean, pipe, len(state["steps"]), wall,
                     # the agent's own work (brain + assessments and verdicts), and
                     # everything but the tools (that plus loading, storing, writing)
                     planning_observing=round(agent_time / max(wall, 1e-9), 4),
                     overhead=round((wall - tool_time) / max(wall, 1e-9), 4),
                     detected=state["plan"],
                     false_alarms_treated=sorted({s["task"] for s in state["steps"] if s["accepted"]} - set(case.combo)))
    return record, output, state["plan"]


def _found_only(case: Case, oracle: Any, plan: list[str]) -> dict[str, Any]:
    """What perfect planning reaches on the degradations the agent found in the input: the part of the
    oracle's gain that perception alone leaves within reach."""
    found = [t for t in case.combo if t in plan]
    node = oracle.best_within(found)
    return {"psnr": round(node.psnr, 3), "ssim": round(node.ssim, 4), "score": round(node.score, 4),
            "pipeline": list(node.pipeline), "tasks": found}


def _write_report(report: dict, planners: tuple[str, ...], sheets: list[tuple[str, np.ndarray]], out_dir: Path) -> None:
    atomic_write(out_dir / "results.json", json.dumps(report, indent=1))
    write_markdown(summarize(report["cases"], planners), out_dir / "summary.md")
    if sheets:
        grid = np.vstack([s for _, s in sheets])
        atomic_save_image(contact_sheet([("input | agent | oracle | ground truth", grid)],
                                        height=min(1600, 256 * len(sheets))), out_dir / "contact.png")


def run_benchmark(
    cases: list[Case],
    out_dir: Path,
    toolbox: Any,
    graph_for: Callable[[int], Any],
    planners: tuple[str, ...] = PLANNERS,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Run ``planners`` on ``cases``; ``graph_for(side)``: the agent's graph for cases whose clean image
    has short side ``side`` (the protocol's full resolution: only the ×1/4 inputs read as low resolution)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "cases").mkdir(exist_ok=True)
    _write_prepared(cases, out_dir / "cases")
    tools = toolbox.tools
    by_task = toolbox.tools_by_task()
    rng = np.random.default_rng(seed)
    results: list[dict] = []
    sheets: list[tuple[str, np.ndarray]] = []
    for n, case in enumerate(cases, 1):
        if progress:
            progress(f"[{n}/{len(cases)}] {case.id}")
        row: dict[str, Any] = {"id": case.id, "group": case.group, "combo": list(case.combo), "input": _input_record(case)}
        results.append(row)
        missing = [t for t in case.combo if t not in by_task]
        if missing:
            row["skipped"] = f"no tool for {', '.join(missing)}"
            continue
        outputs: dict[str, np.ndarray] = {}
        oracle = None
        if "oracle" in planners:
            t0 = time.perf_counter()
            oracle = run_oracle(case.degraded, case.clean, case.combo, dict(tools))
            outputs["oracle"] = oracle.best_output
            row["oracle"] = _record(outputs["oracle"], case.clean, oracle.best.pipeline, oracle.tool_runs,
                                    time.perf_counter() - t0, distribution=oracle.distribution())
        row.update(_run_baselines(case, planners, tools, by_task, rng))
        if "agent" in planners:
            row["agent"], outputs["agent"], plan = _run_agent(case, graph_for(min(case.clean.shape[:2])),
                                                              out_dir / "cases" / f"{case.id}.png")
            if oracle is not None:
                row["agent"]["percentile"] = round(oracle.percentile(row["agent"]["score"]), 1)
                row["found"] = _found_only(case, oracle, plan)
        if len(sheets) < 4 and "agent" in outputs and "oracle" in outputs:
            panels = (case.degraded, outputs["agent"], outputs["oracle"], case.clean)
            sheets.append((case.id, np.hstack([match_size(img, case.clean.shape) for img in panels])))
    report = {"cases": results, "planners": list(planners), "seed": seed}
    _write_report(report, planners, sheets, out_dir)
    return report


def _mean_share(rows: list[dict], planner: str, key: str) -> str:
    values = [r[planner][key] for r in rows if key in r[planner]]
    return f"{100 * np.mean(values):.0f} %" if values else ""


def _loss_by_combination(rows: list[dict]) -> list[str]:
    """Where the agent falls short of the oracle, per combination: the gain of the degradations it did not
    find (out of its reach), and the gain it left within that reach, where it acted on a false alarm or not."""
    lines = ["## Where the agent loses to the oracle", "",
             "Summed over the cases, in dB. Missed: oracle − oracle on found only (the gain of the degradations "
             "the assessor did not find). False alarm: oracle on found only − agent, in the cases where the agent "
             "kept a step for a degradation the case does not have. Planning: the same in the other cases (order and "
             "tools; negative where the agent beat the bound by treating a degradation it found only after a step).", "",
             "| combination | cases | oracle gain | missed | false alarm | planning |", "|---|---|---|---|---|---|"]
    combos: dict[str, list[dict]] = {}
    for r in rows:
        combos.setdefault("+".join(r["combo"]), []).append(r)

    def sums(rs: list[dict]) -> tuple[float, float, float, float]:
        short = [(r["found"]["psnr"] - r["agent"]["psnr"], bool(r["agent"].get("false_alarms_treated"))) for r in rs]
        return (sum(r["oracle"]["psnr"] - r["input"]["psnr"] for r in rs),
                sum(r["oracle"]["psnr"] - r["found"]["psnr"] for r in rs),
                sum(d for d, false in short if false), sum(d for d, false in short if not false))

    table = [(combo, len(rs), sums(rs)) for combo, rs in combos.items()]
    table.sort(key=lambda row: -sum(row[2][1:]))  # the largest loss first
    for combo, n, (gain, missed, false, planning) in [*table, ("all", len(rows), sums(rows))]:
        lines.append(f"| {combo} | {n} | {gain:+.2f} | {missed:.2f} | {false:.2f} | {planning:.2f} |")
    return [*lines, ""]


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
        for p in (*planners, "found"):
            have = [r for r in rows if p in r]
            if not have:
                continue
            gain = np.mean([r[p]["psnr"] - r["input"]["psnr"] for r in have])
            share = f"{100 * gain / oracle_gain:.0f} %" if oracle_gain and oracle_gain > 0 else ""
            if p == "found":  # a bound, not a run: no executions or time of its own
                lines.append(f"| {FOUND_LABEL} | {np.mean([r[p]['psnr'] for r in have]):.2f} | "
                             f"{np.mean([r[p]['ssim'] for r in have]):.4f} | {gain:+.2f} | {share} | | | | | |")
                continue
            per_d = np.mean([r[p]["executions"] / len(r["combo"]) for r in have])
            secs = np.mean([r[p]["seconds"] for r in have])
            over = f"{_mean_share(have, p, 'planning_observing')} | {_mean_share(have, p, 'overhead')}"
            pct = f"{np.median([r[p]['percentile'] for r in have if 'percentile' in r[p]]):.0f}" if p == "agent" and any("percentile" in r[p] for r in have) else ""
            lines.append(f"| {p} | {np.mean([r[p]['psnr'] for r in have]):.2f} | {np.mean([r[p]['ssim'] for r in have]):.4f} | "
                         f"{gain:+.2f} | {share} | {per_d:.2f} | {secs:.2f} | {over} | {pct} |")
        lines.append("")
    if any("found" in r for r in results):
        lines += [f"*{FOUND_LABEL}*: the oracle restricted to the degradations the agent's assessor found in the "
                  "input (best order and tools, stopping anywhere): what perfect planning of those alone reaches.", ""]
        lines += _loss_by_combination([r for r in results if "found" in r])
    skipped = [r for r in results if "skipped" in r]
    if skipped:
        lines += ["Skipped cases: " + ", ".join(f"{r['id']} ({r['skipped']})" for r in skipped), ""]
    return "\n".join(lines)
