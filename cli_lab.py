"""The benchmark and training-data commands: bench, bench-harm, bench-real, bench-tools, bench-batch,
bench-memory, degrade, export-sft.

Each imports its harness from ``tools/research/`` when it runs: the product's commands never load them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Optional

import typer

from restoreagent.cli_app import (
    BrainOpt,
    CliError,
    FullSideOpt,
    PermissiveOpt,
    WeightsOpt,
    app,
    config_from_options,
    err,
    out,
    print_skipped,
    progress_printer,
    user_errors,
    write_json_atomic,
)


def fresh_results_dir(out_dir: Path, overwrite: bool) -> None:
    """A benchmark writes results.json and friends into ``out_dir``: never over an earlier run's unasked."""
    if (out_dir / "results.json").exists() and not overwrite:
        raise FileExistsError(f"{out_dir} holds the results of an earlier run; pass --overwrite to replace them")


@app.command("bench-tools")
@user_errors
def bench_tools(
    images: int = typer.Option(24, "--images", min=1, help="Held-out images per tool."),
    crop: int = typer.Option(256, "--crop", min=32, help="Centre-crop size (pixels)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the degradation parameters."),
    clean_dir: Optional[Path] = typer.Option(None, "--clean-dir", help="Folder of clean sets (default ../shared/data/clean)."),
    out_md: Path = typer.Option(Path("docs/TOOLS.md"), "--out", help="Markdown table to write."),
    scores: Path = typer.Option(Path("checkpoints/tool_scores.json"), "--scores", help="Machine-readable scores to write."),
    weights_dir: Optional[Path] = WeightsOpt,
    threads: int = typer.Option(1, "--threads", min=1, help="torch/OpenCV threads (timings depend on it)."),
) -> None:
    """Measure every available tool on its own degradation (held-out images); write docs/TOOLS.md."""
    import cv2
    import torch

    from restoreagent.graph.toolbox import Toolbox
    from restoreagent.tools import default_registry
    from restoreagent.tools.research.evaluation.toolbench import bench_tools as run_bench
    from restoreagent.tools.research.evaluation.toolbench import (
        machine_meta,
        render_markdown,
        write_markdown,
        write_scores,
    )

    torch.set_num_threads(threads)
    cv2.setNumThreads(threads)
    toolbox = Toolbox(default_registry, config_from_options(weights_dir, "cpu", None, False))
    print_skipped(toolbox)
    command = f"restoreagent bench-tools --images {images} --crop {crop} --seed {seed} --threads {threads}"
    meta = machine_meta(images, crop, seed, command)
    results = run_bench(toolbox.tools, clean_dir, images, crop, seed, progress=lambda n: err.print(f"measuring {n} …"))
    write_scores(results, scores, meta)
    write_markdown(render_markdown(results, meta, [(s.name, s.reason) for s in toolbox.skipped]), out_md)
    for r in results:
        gain = "failed: " + r["error"] if r["error"] else f"{r['psnr_gain']:+.2f} dB, {r['s_per_mp']:.2f} s/MP"
        out.print(f"{r['task']:>15}  {r['name']:<26} {gain}", highlight=False)
    out.print(f"wrote {out_md} and {scores}", highlight=False)


@app.command()
@user_errors
def degrade(
    input: Path = typer.Argument(..., help="A clean photo (never modified)."),
    output: Path = typer.Option(..., "-o", "--output", help="Where to write the degraded PNG."),
    combo: str = typer.Option(..., "--combo", help="Degradations joined by '+', e.g. noise+jpeg or haze+motion+lowres."),
    seed: int = typer.Option(0, "--seed", help="Seed of the MiO-protocol parameters."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output."),
) -> None:
    """Synthesize degradations with AgenticIR's MiO protocol (seeded, reproducible)."""
    from restoreagent.tools.util.imageio import load_image, save_png
    from restoreagent.tools.util.synthesis import degrade as synthesize
    from restoreagent.tools.util.synthesis import parse_combo

    try:
        names = parse_combo(combo)
    except ValueError as exc:
        raise CliError(f"--combo: {exc}") from None
    if output.exists() and not overwrite:
        raise FileExistsError(f"{output} exists; pass --overwrite to replace it")
    image, params = synthesize(load_image(input).rgb, names, seed)
    save_png(image, output, overwrite=overwrite)
    sys.stdout.write(json.dumps({"output": str(output), "combo": list(names), "seed": seed, "params": params}) + "\n")


@app.command()
@user_errors
def bench(
    images: Optional[Path] = typer.Option(None, "--images", help="Folder of clean images (e.g. ../shared/data/clean/kodak24)."),
    prepared: Optional[Path] = typer.Option(None, "--prepared", help="A prepared set instead: a folder with manifest.json (every run writes one to OUT/cases)."),
    out_dir: Path = typer.Option(..., "--out", help="Folder for results.json, summary.md and contact.png."),
    planners: str = typer.Option("agent,oracle,fixed,random,allinone", "--planners", help="Comma-separated planners."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Number of cases (default 16, the MiO combinations cycling over the images; with --prepared: all)."),
    crop: int = typer.Option(256, "--crop", min=32, help="Centre-crop size of each clean image."),
    seed: int = typer.Option(0, "--seed", help="Seed of degradations and the random planner."),
    weights_dir: Optional[Path] = WeightsOpt,
    permissive_only: bool = PermissiveOpt,
    brain: Optional[str] = BrainOpt,
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the results of an earlier run in --out."),
) -> None:
    """Run planners on MiO-protocol cases and compare them with the exhaustive oracle.

    With the agent and the oracle, the summary also gives the oracle restricted to the degradations the agent found ("oracle on found only") and splits the agent's loss into missed degradations, false alarms and planning, per combination."""
    from restoreagent.graph.brains.factory import make_brain
    from restoreagent.graph.graph import build_graph
    from restoreagent.graph.toolbox import Toolbox
    from restoreagent.tools import default_registry
    from restoreagent.tools.research.evaluation.benchmark import PLANNERS, load_prepared, make_cases, run_benchmark

    chosen = tuple(p.strip() for p in planners.split(",") if p.strip())
    unknown = [p for p in chosen if p not in PLANNERS]
    if unknown:
        raise CliError(f"--planners: unknown {', '.join(unknown)}; choose from {', '.join(PLANNERS)}")
    if (images is None) == (prepared is None):
        raise CliError("give either --images (clean photos to degrade) or --prepared (a set with manifest.json)")
    fresh_results_dir(out_dir, overwrite)
    cases = make_cases(images, limit or 16, crop, seed) if images else load_prepared(prepared, limit)
    config = config_from_options(weights_dir, None, None, permissive_only)
    toolbox = Toolbox(default_registry, config)
    print_skipped(toolbox)
    agent = make_brain(brain)
    graphs: dict[int, Any] = {}

    def graph_for(side: int) -> Any:
        # the clean image is the protocol's full resolution: only the ×1/4 inputs read as low resolution
        if side not in graphs:
            graphs[side] = build_graph(config.model_copy(update={"full_resolution_side": side}), toolbox=toolbox,
                                       brain=agent)
        return graphs[side]

    run_benchmark(cases, out_dir, toolbox, graph_for, chosen, seed, progress=lambda m: err.print(m, highlight=False))
    out.print((out_dir / "summary.md").read_text(), highlight=False)


@app.command("bench-harm")
@user_errors
def bench_harm(
    out_dir: Path = typer.Option(..., "--out", help="Folder for results.json, summary.md and contact.png."),
    split: str = typer.Option("test", "--split", help="Which images: test (report only) or calibration (docs/VERIFIER.md)."),
    per_category: int = typer.Option(4, "--per-category", min=1, help="Photos per clean and single-degradation category (half that per MiO combination)."),
    crop: int = typer.Option(256, "--crop", min=32, help="Centre-crop size of the synthetic cases."),
    clean_dir: Optional[Path] = typer.Option(None, "--clean-dir", help="Folder of clean sets (default ../shared/data/clean)."),
    pairs_dir: Optional[Path] = typer.Option(None, "--pairs", help="Real pairs with a ground truth (default ../shared/data/pairs; 'none' to skip)."),
    baseline: bool = typer.Option(False, "--baseline", help="Also run the agent without the step verifier, on the same photos."),
    weights_dir: Optional[Path] = WeightsOpt,
    permissive_only: bool = PermissiveOpt,
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the results of an earlier run in --out."),
) -> None:
    """Do no harm: per category (clean, each single degradation, MiO combinations, real pairs) the mean gain, the share of photos made worse and the worst photo."""
    from restoreagent.graph.graph import build_graph
    from restoreagent.graph.toolbox import Toolbox
    from restoreagent.tools import default_registry
    from restoreagent.tools.research.datasets import default_clean_dir
    from restoreagent.tools.research.evaluation.harm import make_harm_cases, run_harm

    if split not in ("test", "calibration"):
        raise CliError("--split: choose test or calibration")
    fresh_results_dir(out_dir, overwrite)
    clean = clean_dir or default_clean_dir()
    pairs = None if str(pairs_dir) == "none" else (pairs_dir or clean.parent / "pairs")
    cases = make_harm_cases(clean, pairs, split, per_category, crop)
    config = config_from_options(weights_dir, None, None, permissive_only)
    toolbox = Toolbox(default_registry, config)
    print_skipped(toolbox)

    def variant(verify: bool):
        graphs: dict[int, Any] = {}

        def graph_for(side: int) -> Any:
            if side not in graphs:
                graphs[side] = build_graph(config.model_copy(update={"full_resolution_side": side, "verify_steps": verify}),
                                           toolbox=toolbox)
            return graphs[side]
        return graph_for

    graphs = {"agent": variant(True)}
    if baseline:
        graphs["agent without verifier"] = variant(False)
    run_harm(cases, out_dir, graphs, progress=lambda m: err.print(m, highlight=False))
    out.print((out_dir / "summary.md").read_text(), highlight=False)


@app.command("bench-real")
@user_errors
def bench_real(
    real_dir: Path = typer.Option(..., "--real", help="Folder of real photo sets (e.g. ../shared/data/real)."),
    out_dir: Path = typer.Option(..., "--out", help="Folder for results.json, summary.md, contact.png and restored/."),
    per_folder: int = typer.Option(4, "--per-folder", min=1, help="Photos per set, evenly spaced by name."),
    weights_dir: Optional[Path] = WeightsOpt,
    permissive_only: bool = PermissiveOpt,
    brain: Optional[str] = BrainOpt,
    full_side: Optional[int] = FullSideOpt,
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the results of an earlier run in --out."),
) -> None:
    """Run the agent on real degraded photos: what it finds and runs, NIQE before and after."""
    from restoreagent.graph.brains.factory import make_brain
    from restoreagent.graph.graph import build_graph
    from restoreagent.graph.toolbox import Toolbox
    from restoreagent.tools import default_registry
    from restoreagent.tools.research.evaluation.real_photos import find_cases, run_real

    cases = find_cases(real_dir, per_folder)
    fresh_results_dir(out_dir, overwrite)
    config = config_from_options(weights_dir, None, None, permissive_only, full_side=full_side)
    toolbox = Toolbox(default_registry, config)
    print_skipped(toolbox)
    graph = build_graph(config, toolbox=toolbox, brain=make_brain(brain))
    run_real(cases, out_dir, graph, config.weights_dir, progress=lambda m: err.print(m, highlight=False))
    out.print((out_dir / "summary.md").read_text(), highlight=False)


@app.command("bench-batch")
@user_errors
def bench_batch(
    images: Path = typer.Option(..., "--images", help="A folder of photos (e.g. ../shared/data/pairs/polyu/noisy)."),
    out_dir: Path = typer.Option(..., "--out", help="Folder for results.json and one output folder per mode."),
    limit: int = typer.Option(12, "--limit", min=1, help="The first N photos by name."),
    workers: list[int] = typer.Option([1, 2], "--workers", min=1, help="Ray worker counts to measure."),
    threads: int = typer.Option(1, "--threads", min=1, help="Threads per Ray worker."),
    weights_dir: Optional[Path] = WeightsOpt,
    full_side: Optional[int] = FullSideOpt,
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the results of an earlier run in --out."),
) -> None:
    """Photos per minute: folder mode against Ray with 1, 2, ... workers, on the same photos."""
    import shutil

    from restoreagent.batch import IMAGE_SUFFIXES
    from restoreagent.tools.research.evaluation.batch_bench import benchmark, table

    photos = sorted(p for p in images.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)[:limit]
    if not photos:
        raise CliError(f"{images}: no images found")
    fresh_results_dir(out_dir, overwrite)
    for sub in ["folder", *(f"ray-{n}" for n in workers)]:
        shutil.rmtree(out_dir / sub, ignore_errors=True)  # a fresh batch each, nothing resumed
    config = config_from_options(weights_dir, "cpu", None, False, full_side=full_side)
    rows, startup = benchmark(photos, out_dir, config, workers, threads)
    write_json_atomic({"rows": [r.model_dump() for r in rows], "ray_startup_s": startup}, out_dir / "results.json",
                       overwrite=True)
    out.print(table(rows, startup), highlight=False)


@app.command("export-sft")
@user_errors
def export_sft(
    out_dir: Path = typer.Option(..., "--out", help="Folder for sft.jsonl and images/."),
    limit: int = typer.Option(32, "--limit", min=1, help="Number of examples (MiO combinations cycle)."),
    crop: int = typer.Option(256, "--crop", min=32, help="Centre-crop size of each training image."),
    seed: int = typer.Option(0, "--seed", help="Seed of the degradations."),
    clean_dir: Optional[Path] = typer.Option(None, "--clean-dir", help="Folder of clean sets (default ../shared/data/clean)."),
    weights_dir: Optional[Path] = WeightsOpt,
) -> None:
    """Write oracle-labelled examples (image + instruction → plan JSON) as chat-format JSONL."""
    from restoreagent.graph.toolbox import Toolbox
    from restoreagent.tools import default_registry
    from restoreagent.tools.research.training.sft import export_sft as run_export

    toolbox = Toolbox(default_registry, config_from_options(weights_dir, None, None, False))
    print_skipped(toolbox)
    path = run_export(toolbox, out_dir, limit, crop, seed, clean_dir, progress=lambda m: err.print(m, highlight=False))
    out.print(f"wrote {path}", highlight=False)


@app.command("bench-memory")
@user_errors
def bench_memory(
    megapixels: float = typer.Option(12.0, "--megapixels", min=0.1, help="Size of the synthetic photo."),
    weights_dir: Optional[Path] = WeightsOpt,
    threads: int = typer.Option(2, "--threads", min=1),
) -> None:
    """Restore a large synthetic photo (dark + noise + JPEG) and print wall time and peak RSS."""
    import resource
    import tempfile
    import time

    import cv2
    import numpy as np
    import torch
    from skimage import data

    from restoreagent.graph.api import restore as run_restore
    from restoreagent.tools.util.imageio import save_png
    from restoreagent.tools.util.synthesis import dark_noise_jpeg

    torch.set_num_threads(threads)
    cv2.setNumThreads(threads)
    side_w = int(round((megapixels * 1e6 * 4 / 3) ** 0.5))
    side_h = int(round(side_w * 3 / 4))
    base = cv2.resize(data.astronaut().astype(np.float32) / 255.0, (side_w, side_h), interpolation=cv2.INTER_CUBIC)
    with tempfile.TemporaryDirectory(prefix="restoreagent-mem-") as tmp:
        src = Path(tmp) / "big.png"
        save_png(dark_noise_jpeg(np.clip(base, 0, 1), seed=0), src)
        del base
        config = config_from_options(weights_dir, "cpu", None, False).model_copy(update={"work_dir": Path(tmp) / "runs"})
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        t0 = time.perf_counter()
        result = run_restore(src, Path(tmp) / "out.png", config=config, on_event=progress_printer())
        wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out.print(f"{side_w}×{side_h} ({side_w * side_h / 1e6:.1f} MP): pipeline "
              f"{' → '.join(s.tool for s in result.accepted_steps)}; {wall:.1f} s; peak RSS {peak:.0f} MiB "
              f"(before the run {rss_before:.0f} MiB)", highlight=False)
    tools = sum(s.seconds for s in result.steps)
    agent = result.planning_seconds + result.observing_seconds
    out.print(f"where the time went: tool steps {tools:.1f} s (each with reading its input from the artifact "
              f"store and storing its output), assessing and planning {agent:.1f} s, the rest "
              f"{wall - tools - agent:.1f} s (reading the photo, storing it, writing the result)", highlight=False)
