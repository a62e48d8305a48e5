"""The commands users run: restore (a photo or a folder), chat, ui, assess, demo, tools, runs."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Optional

import typer
from rich.markup import escape
from rich.table import Table

from restoreagent.cli_app import (
    BrainOpt,
    CliError,
    DeviceOpt,
    FullSideOpt,
    PermissiveOpt,
    ScaleChoice,
    ScaleOpt,
    StepsOpt,
    TargetSideOpt,
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


@app.command()
@user_errors
def restore(
    input: Path = typer.Argument(..., help="The photo to restore, or a folder of photos (never modified)."),
    output: Path = typer.Option(..., "-o", "--output", help="Restored PNG, or a folder for a batch."),
    report: Optional[Path] = typer.Option(None, "--report", help="Also write a JSON report here."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing output/report files."),
    weights_dir: Optional[Path] = WeightsOpt,
    device: Optional[str] = DeviceOpt,
    max_steps: Optional[int] = StepsOpt,
    permissive_only: bool = PermissiveOpt,
    max_pixels: Optional[int] = typer.Option(None, "--max-pixels", min=1, help="Refuse larger inputs (default 179 M)."),
    full_side: Optional[int] = FullSideOpt,
    brain: Optional[str] = BrainOpt,
    download: bool = typer.Option(False, "--download", help="First fetch the models that are not here (see `restoreagent weights`)."),
    keep_steps: bool = typer.Option(False, "--keep-steps", help="Keep each step's image in the run folder."),
    recursive: bool = typer.Option(False, "--recursive", "-r", help="A folder: also its subfolders, mirrored."),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="A folder: try again photos that failed before."),
    ray: bool = typer.Option(False, "--ray", help="A folder: restore on Ray (a local instance, or RAY_ADDRESS)."),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", help="Join this Ray cluster (implies --ray)."),
    workers: Optional[int] = typer.Option(None, "--workers", min=1, help="Ray actors (default: one per GPU, else CPUs / --threads)."),
    threads: int = typer.Option(2, "--threads", min=1, help="Threads per CPU actor on Ray."),
    scale: Optional[ScaleChoice] = ScaleOpt,
    target_side: Optional[int] = TargetSideOpt,
) -> None:
    """Restore INPUT and write the result to OUTPUT (a folder: every photo in it, resumably)."""
    from restoreagent.batch import BatchError, check_space, check_writable, output_bytes
    from restoreagent.tools.util.imageio import load_image

    if report is not None and report.exists() and not overwrite:
        raise FileExistsError(f"report {report} exists; pass --overwrite to replace it")
    config = config_from_options(weights_dir, device, max_steps, permissive_only, max_pixels, full_side, scale, target_side).model_copy(
        update={"keep_steps": keep_steps})
    if input.is_dir():
        if download:
            from restoreagent.cli_weights import download_missing

            download_missing(config)
        address = ray_address or ("local" if ray else None)
        results = _restore_folder(input, output, config, overwrite, recursive, retry_failed, brain, address, workers,
                                  threads)
        if report is not None:
            write_json_atomic([r.model_dump(mode="json") for r in results], report, overwrite)
        if any(r.status == "failed" for r in results):
            raise typer.Exit(1)
        return
    if output.exists() and not overwrite:
        raise FileExistsError(f"output {output} exists; pass --overwrite to replace it")
    loaded = load_image(input, config.max_pixels)  # fail fast, before any model loads, on a bad input
    try:  # and on an output that cannot be written
        check_writable(output.absolute().parent)
        check_space(output.absolute().parent, output_bytes(*loaded.rgb.shape[1::-1], config.full_resolution_side))
    except BatchError as exc:
        raise CliError(str(exc)) from None
    # The heavy imports (torch, the graph) only once the input is known to be good: errors answer fast.
    from restoreagent.graph.brains.factory import make_brain
    from restoreagent.graph.graph import build_graph
    from restoreagent.graph.toolbox import Toolbox
    from restoreagent.tools import default_registry

    if download:
        from restoreagent.cli_weights import download_missing

        download_missing(config)
    chat_model = make_brain(brain)
    toolbox = Toolbox(default_registry, config)
    print_skipped(toolbox)
    graph = build_graph(config, toolbox=toolbox, brain=chat_model)
    from restoreagent.graph.api import restore as run_restore

    result = run_restore(input, output, overwrite=overwrite, config=config, graph=graph, on_event=progress_printer())
    for note in result.notes:
        err.print(f"note: {note}", highlight=False)
    if result.size is not None:
        err.print(f"size: {escape(result.size.reason)}", highlight=False)
    if report is not None:
        write_json_atomic(result.model_dump(mode="json"), report, overwrite)
    out.print(f"wrote {result.output}", highlight=False)


def _restore_folder(folder: Path, out_dir: Path, config: Any, overwrite: bool, recursive: bool, retry_failed: bool,
                    brain: Optional[str], ray_address: Optional[str], workers: Optional[int], threads: int) -> list:
    """Restore every photo in ``folder`` (restoreagent.batch) with a progress bar; the results."""
    import time

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from restoreagent.batch import BatchError, plan_batch, restore_many, summary

    results = []
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[failed]} failed, {task.fields[rate]} photos/min"), TimeElapsedColumn())
    t0, worked, failed = time.monotonic(), 0, 0
    try:  # every check (output folder, disk, each input's header) before any model loads
        plan = plan_batch([folder], out_dir, recursive=recursive, overwrite=overwrite, retry_failed=retry_failed,
                          config=config)
        with Progress(*columns, console=err) as bar:
            task = bar.add_task("restoring", total=len(plan.jobs) + len(plan.settled), failed=0, rate="–")
            for r in restore_many([folder], out_dir, ray_address, config=config, brain=brain, workers=workers,
                                  threads=threads, plan=plan):
                results.append(r)
                worked, failed = worked + (r.attempts > 0), failed + (r.status == "failed")
                rate = f"{60 * worked / (time.monotonic() - t0):.1f}" if worked else "–"
                bar.update(task, advance=1, description=r.input.name, rate=rate, failed=failed)
    except BatchError as exc:
        raise CliError(str(exc)) from None
    table = Table("photo", "status", "output", "pipeline", "quality")
    for r in results:
        quality = f"{r.quality_before:.2f} → {r.quality:.2f}" if r.quality is not None else ""
        status = {"failed": f"[red]failed[/]: {escape(r.reason)}", "skipped": f"skipped: {escape(r.reason)}",
                  "done": "already done"}.get(r.status, r.status)
        name = r.input.relative_to(folder.absolute()) if r.input.is_relative_to(folder.absolute()) else r.input
        target = r.output.relative_to(out_dir.absolute()) if r.output else ""
        table.add_row(str(name), status, str(target), " → ".join(r.pipeline), quality)
    out.print(table)
    counts = summary(results)
    out.print(f"{counts['restored']} restored, {counts['done']} already done, {counts['skipped']} skipped, "
              f"{counts['failed']} failed", highlight=False)
    return results


@app.command()
@user_errors
def chat(
    input: Path = typer.Argument(..., help="The photo to restore and talk about (never modified)."),
    out_dir: Optional[Path] = typer.Option(None, "--out-dir", help="Where each turn's PNG goes (default ./STEM-chat)."),
    thread: Optional[str] = typer.Option(None, "--thread", help="Continue this conversation (printed at the start)."),
    db: Optional[Path] = typer.Option(None, "--db", help="Conversation store (default ~/.local/share/restoreagent/threads.sqlite)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing turn-N.png files."),
    approve: bool = typer.Option(False, "--approve", help="Ask before every tool call (yes / no / edited JSON args)."),
    brain: Optional[str] = BrainOpt,
    weights_dir: Optional[Path] = WeightsOpt,
    device: Optional[str] = DeviceOpt,
    max_steps: Optional[int] = StepsOpt,
    permissive_only: bool = PermissiveOpt,
    full_side: Optional[int] = FullSideOpt,
    scale: Optional[ScaleChoice] = ScaleOpt,
    target_side: Optional[int] = TargetSideOpt,
) -> None:
    """Restore INPUT, then talk about it: 'what did you do?', 'undo the last step', 'that is too dark',
    'use a stronger denoiser', 'skip dehazing'. Each turn's image is saved; an empty line or 'quit' ends."""
    from restoreagent.graph.brains.factory import make_brain
    from restoreagent.graph.chat import Conversation
    from restoreagent.tools.util.imageio import load_image

    config = config_from_options(weights_dir, device, max_steps, permissive_only, full_side=full_side, scale=scale,
                     target_side=target_side).model_copy(update={"approve_tools": approve})
    load_image(input, config.max_pixels)  # a bad input fails here, in one line
    folder = out_dir or Path(f"{input.stem}-chat")
    folder.mkdir(parents=True, exist_ok=True)
    chat_model = make_brain(brain)

    def target(turn: int) -> Path:
        path = folder / f"turn-{turn}.png"
        if path.exists() and not overwrite:
            raise FileExistsError(f"{path} exists; pass --overwrite or choose another --out-dir")
        return path

    def show(turn: Any) -> None:
        out.print(f"[bold]agent:[/] {escape(turn.reply)}", highlight=False)
        if turn.changed:
            out.print(f"saved {turn.output}", highlight=False)

    with Conversation(config, brain=chat_model, db_path=db, thread_id=thread, approver=_ask_approval) as conv:
        err.print(f"thread {conv.thread_id} (continue later with --thread {conv.thread_id})", highlight=False)
        if conv.started:
            state = conv.state()
            turn_no = state.get("turn", 1)
            err.print(f"continuing at turn {turn_no}; the current image is {state['output']}", highlight=False)
        else:
            turn = conv.start(input, target(1), overwrite=overwrite, on_event=progress_printer())
            show(turn)
            turn_no = turn.turn
        while True:
            try:
                text = _input_line("you> ")
            except EOFError:
                break
            if text.strip().lower() in ("", "quit", "exit", "bye", "q"):
                break
            turn = conv.say(text, target(turn_no + 1), overwrite=overwrite, on_event=progress_printer())
            show(turn)
            turn_no = turn.turn


def _input_line(prompt: str) -> str:
    out.print(prompt, end="", highlight=False)
    return sys.stdin.readline() if not sys.stdin.isatty() else input()


def _ask_approval(request: dict) -> Any:
    """Ask in the terminal whether to run a proposed tool call; only yes, no, skip (or JSON
    arguments to edit it) are taken, anything else asks again."""
    from restoreagent.graph.chat import approval_answer

    while True:
        out.print(f"{escape(request['description'])}? " + escape("[y]es / [n]o / [s]kip this task / JSON args to edit: "),
                  end="", highlight=False)
        line = sys.stdin.readline()
        if not line:  # end of input: nothing was approved
            return "reject"
        decision = approval_answer(line)
        if decision is not None:
            return decision
        err.print("please answer yes, no or skip (or give JSON arguments to edit the call)", highlight=False)


@app.command()
@user_errors
def ui(
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on (default loopback: nothing leaves this machine)."),
    port: Optional[int] = typer.Option(None, "--port", min=1, max=65535, help="Port (default 7860, or the next free one)."),
    db: Optional[Path] = typer.Option(None, "--db", help="Conversation store, shared with `chat` (default ~/.local/share/restoreagent/threads.sqlite)."),
    approve: bool = typer.Option(False, "--approve", help="Start with 'ask before each step' on."),
    brain: Optional[str] = BrainOpt,
    weights_dir: Optional[Path] = WeightsOpt,
    device: Optional[str] = DeviceOpt,
    max_steps: Optional[int] = StepsOpt,
    permissive_only: bool = PermissiveOpt,
    max_pixels: Optional[int] = typer.Option(None, "--max-pixels", min=1, help="Refuse larger uploads (default 179 M)."),
    scale: Optional[ScaleChoice] = ScaleOpt,
    target_side: Optional[int] = TargetSideOpt,
) -> None:
    """Serve the web page: upload photos, watch each step, compare before and after, chat (Ctrl+C stops it)."""
    import importlib.util
    import os

    if importlib.util.find_spec("gradio") is None:
        raise CliError("the page needs Gradio: pip install 'restoreagent[ui]'")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # read by Gradio at import
    from restoreagent.graph.brains.factory import make_brain
    from restoreagent.graph.web import PageSettings, Studio, serve

    config = config_from_options(weights_dir, device, max_steps, permissive_only, max_pixels, scale=scale,
                     target_side=target_side).model_copy(update={"approve_tools": approve})
    settings = PageSettings(host=host, port=port)
    studio = Studio(config, brain=make_brain(brain), db_path=db)
    print_skipped(studio.toolbox)
    serve(studio, settings, on_ready=lambda url: out.print(f"RestoreAgent page: {url} (Ctrl+C stops it)", highlight=False))


@app.command()
@user_errors
def assess(
    input: Path = typer.Argument(..., help="The photo to assess."),
    full_side: Optional[int] = FullSideOpt,
    weights_dir: Optional[Path] = WeightsOpt,
) -> None:
    """Print the degradation assessment of INPUT as JSON (with NIQE where the weights folder has its parameters)."""
    from restoreagent.tools.perception.assess import assess as run_assess
    from restoreagent.tools.util.imageio import load_image, visible_part

    config = config_from_options(weights_dir, None, None, False, full_side=full_side)
    loaded = load_image(input, config.max_pixels)
    report = run_assess(visible_part(loaded.rgb, loaded.alpha), weights_dir=config.weights_dir,
                        full_resolution_side=config.full_resolution_side)
    sys.stdout.write(report.model_dump_json(indent=2) + "\n")


@app.command()
@user_errors
def demo(
    out_dir: Path = typer.Option(Path("restoreagent-demo"), "--out", help="Folder for the demo's files (a new one if it exists)."),
    weights_dir: Optional[Path] = WeightsOpt,
    device: Optional[str] = DeviceOpt,
) -> None:
    """Degrade a bundled public-domain photo (dark + noise + JPEG) and restore it."""
    import numpy as np
    from skimage import data

    from restoreagent.graph.api import restore as run_restore
    from restoreagent.graph.graph import build_graph
    from restoreagent.graph.toolbox import Toolbox
    from restoreagent.tools import default_registry
    from restoreagent.tools.util.figures import contact_sheet
    from restoreagent.tools.util.imageio import save_png
    from restoreagent.tools.util.metrics import psnr, ssim
    from restoreagent.tools.util.synthesis import dark_noise_jpeg

    folder = _fresh_folder(out_dir)
    clean = data.astronaut().astype(np.float32) / 255.0  # NASA photo, public domain
    degraded = dark_noise_jpeg(clean, seed=0)
    save_png(clean, folder / "clean.png")
    save_png(degraded, folder / "degraded.png")
    err.print(f"demo: astronaut (512×512) darkened, noise σ=25, JPEG q30 → {folder}/degraded.png", highlight=False)

    config = config_from_options(weights_dir, device, None, False)
    toolbox = Toolbox(default_registry, config)
    print_skipped(toolbox)
    result = run_restore(
        folder / "degraded.png", folder / "restored.png", config=config, graph=build_graph(config, toolbox=toolbox),
        on_event=progress_printer(),
    )
    from restoreagent.tools.util.imageio import load_image

    restored = load_image(result.output).rgb
    before, after = psnr(degraded, clean), psnr(restored, clean)
    s_before, s_after = ssim(degraded, clean), ssim(restored, clean)
    contact_sheet(
        [("degraded", degraded), (f"restored ({after - before:+.1f} dB)", restored), ("original", clean)]
    ).save(folder / "comparison.png")
    summary = result.model_dump(mode="json") | {
        "psnr_before": round(before, 3), "psnr_after": round(after, 3),
        "ssim_before": round(s_before, 4), "ssim_after": round(s_after, 4),
    }
    write_json_atomic(summary, folder / "report.json", overwrite=False)
    pipeline = " → ".join(s.tool for s in result.accepted_steps) or "(nothing)"
    out.print(f"pipeline: {pipeline}", highlight=False)
    out.print(f"PSNR {before:.2f} → {after:.2f} dB, SSIM {s_before:.3f} → {s_after:.3f}", highlight=False)
    out.print(f"wrote {folder}/restored.png, comparison.png, report.json", highlight=False)


def _fresh_folder(base: Path) -> Path:
    """``base``, or ``base-2``, ``base-3``… — the demo never overwrites earlier results."""
    candidate, n = base, 1
    while candidate.exists() and any(candidate.iterdir()):
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    candidate.mkdir(parents=True, exist_ok=True)
    return candidate


@app.command("tools")
@user_errors
def list_tools(
    weights_dir: Optional[Path] = WeightsOpt,
    permissive_only: bool = PermissiveOpt,
) -> None:
    """List the registered tools: task, model, licence, and whether each is available."""
    from restoreagent.tools import default_registry
    from restoreagent.tools.base import ToolContext
    from restoreagent.tools.weights import WeightsResolver

    config = config_from_options(weights_dir, None, None, permissive_only)
    # Availability only: no Toolbox, so neither torch nor the graph is imported (a fast command).
    resolver = WeightsResolver(config.weights_dir, config.cache_dir, config.allow_download, mirrors=config.mirrors)
    statuses = default_registry.status(ToolContext(weights=resolver), config.permissive_only)
    table = Table("task", "tool", "licence", "status")
    rows = [(s.tool_class.spec, "[green]available[/]" if s.available else f"[red]missing[/]: {s.reason}") for s in statuses]
    for spec, status in sorted(rows, key=lambda r: (r[0].task, r[0].name)):
        lic = spec.license + ("" if spec.commercial else " (non-commercial)")
        table.add_row(spec.task, spec.name, lic, status)
    out.print(table)


runs_app = typer.Typer(no_args_is_help=True, help="The run folders: a bounded history of restores (runs.py).")
app.add_typer(runs_app, name="runs")


@runs_app.command("list")
@user_errors
def runs_list() -> None:
    """List the run folders, newest first, with their size."""
    import datetime

    from restoreagent.graph.configuration import Configuration
    from restoreagent.runs import list_runs

    work_dir = Configuration.from_env().work_dir
    runs = list_runs(work_dir)
    table = Table("run", "kind", "finished", "MB", "output")
    for r in runs:
        when = datetime.datetime.fromtimestamp(r.finished).strftime("%Y-%m-%d %H:%M")
        table.add_row(r.path.name, r.kind, when, f"{r.bytes / 1e6:.1f}", r.output or "")
    out.print(table)
    out.print(f"{len(runs)} runs, {sum(r.bytes for r in runs) / 1e6:.1f} MB in {work_dir} "
              "(kind other: a chat thread's images, or a run that never finished)", highlight=False)


@runs_app.command("clean")
@user_errors
def runs_clean(
    keep: int = typer.Option(0, "--keep", min=0, help="Restore runs to keep, newest first."),
    max_mb: float = typer.Option(500.0, "--max-mb", min=0, help="... and at most this many MB of them."),
    include_other: bool = typer.Option(False, "--include-other", help="Also chat threads' images (undo needs them)."),
) -> None:
    """Remove the restore runs beyond --keep (default: all of them); chat threads' folders stay."""
    from restoreagent.graph.configuration import Configuration
    from restoreagent.runs import prune

    removed = prune(Configuration.from_env().work_dir, keep, max_mb, include_other=include_other)
    out.print(f"removed {len(removed)} runs, {sum(r.bytes for r in removed) / 1e6:.1f} MB", highlight=False)
