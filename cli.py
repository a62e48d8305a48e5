"""The ``restoreagent`` command line: restore, assess, demo, tools."""

from __future__ import annotations

import functools
import json
import sys
from enum import Enum
from pathlib import Path
from typing import Any, Callable, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="RestoreAgent: restore photos with several degradations at once, offline.",
)
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


@app.callback()
def _process_setup() -> None:
    # Learned tools allocate and free large activations on every tile: keep that memory in the
    # process instead of mapping it again each time (tools/util/allocator.py; about 2× faster on big photos).
    from restoreagent.tools.util.allocator import keep_freed_memory

    keep_freed_memory()


class CliError(Exception):
    """A usage problem reported in one line."""


def _loaded_error_types() -> tuple[type[Exception], ...]:
    """The project's user-facing error types whose modules are loaded: one from a module that was
    never imported cannot have been raised, and importing the brains' module costs a second."""
    where = {"restoreagent.graph.brains.factory": "BrainSpecError", "restoreagent.tools.util.imageio": "ImageError",
             "restoreagent.tools.base": "ToolError"}
    return tuple(getattr(sys.modules[m], name) for m, name in where.items() if m in sys.modules)


def user_errors(fn: Callable) -> Callable:
    """Turn expected failures into one line on stderr and exit code 2 (no traceback)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from pydantic import ValidationError

        try:
            return fn(*args, **kwargs)
        except (CliError, FileExistsError, FileNotFoundError, IsADirectoryError, PermissionError, *_loaded_error_types()) as exc:
            err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            err.print(f"[bold red]error:[/] invalid {where}: {escape(first['msg'])}", highlight=False, soft_wrap=True)
        except KeyboardInterrupt:
            err.print("[bold red]interrupted[/]")
            raise typer.Exit(130)
        raise typer.Exit(2)

    return wrapper


def _config(
    weights_dir: Optional[Path], device: Optional[str], max_steps: Optional[int], permissive_only: bool,
    max_pixels: Optional[int] = None, full_side: Optional[int] = None, scale: Optional["ScaleChoice"] = None,
    target_side: Optional[int] = None,
):
    from restoreagent.graph.configuration import Configuration
    from restoreagent.graph.sizing import SizeRequest

    config = Configuration.from_env(
        weights_dir=weights_dir,
        device=device,
        max_steps=max_steps,
        permissive_only=permissive_only or None,
        max_pixels=max_pixels,
        full_resolution_side=full_side,
    )
    if scale is not None or target_side is not None:  # the command line replaces the env's size
        if scale not in (None, ScaleChoice.auto) and target_side is not None:
            raise CliError("give --scale or --target-side, not both")
        size = SizeRequest(scale=scale.value if scale else "auto", target_side=target_side)
        config = config.model_copy(update={"scale": size.scale, "target_side": size.target_side})
    return config


def _fresh_results_dir(out_dir: Path, overwrite: bool) -> None:
    """A benchmark writes results.json and friends into ``out_dir``: never over an earlier run's unasked."""
    if (out_dir / "results.json").exists() and not overwrite:
        raise FileExistsError(f"{out_dir} holds the results of an earlier run; pass --overwrite to replace them")


def _print_skipped(toolbox: Any) -> None:
    from restoreagent.cli_weights import skipped_notice

    for line in skipped_notice(toolbox.skipped, toolbox.weights.cache_dir / ".skipped-notice"):
        err.print(f"[yellow]note:[/] {escape(line)}", highlight=False)


def _progress_printer(every: float = 5.0) -> Callable[[dict], None]:
    """Print the graph's events on stderr; a long tiled step also says how far it got, every ``every`` s."""
    import time

    last_line = {"at": 0.0}

    def on_event(e: dict) -> None:
        kind = e.get("event")
        if kind == "assessed":
            degr = ", ".join(f"{k} {v:.2f}" for k, v in e["degradations"].items())
            niqe = f", NIQE {e['niqe']:.2f}" if e.get("niqe") is not None else ""
            err.print(f"assessed: {degr} (quality {e['quality']:.3f}{niqe})", highlight=False)
        elif kind == "tool_start":
            last_line["at"] = time.monotonic()
            err.print(f"step {e['step']}: {e['tool']} …", highlight=False)
        elif kind == "tool_progress":
            if e["tiles_done"] < e["tiles"] and time.monotonic() - last_line["at"] >= every:
                last_line["at"] = time.monotonic()
                err.print(f"step {e['step']}: {e['tool']} {e['tiles_done']}/{e['tiles']} tiles", highlight=False)
        elif kind == "observed":
            mark = "[green]accepted[/]" if e["accepted"] else "[red]rolled back[/]"
            niqe = (f"; NIQE {e['niqe_before']:.2f} → {e['niqe_after']:.2f}"
                    if e.get("niqe_before") is not None and e.get("niqe_after") is not None else "")
            err.print(f"step {e['step']}: {e['tool']} {mark}: {escape(e['reason'])}{niqe}", highlight=False)
        elif kind == "finished":
            err.print(f"done ({e['reason']})", highlight=False)

    return on_event


def _write_json_atomic(data: Any, path: Path, overwrite: bool) -> None:
    from restoreagent.tools.util.files import atomic_write

    atomic_write(path, json.dumps(data, indent=2), overwrite=overwrite)


WeightsOpt = typer.Option(None, "--weights-dir", help="Folder of pretrained weights (env RESTOREAGENT_WEIGHTS_DIR).")
DeviceOpt = typer.Option(None, "--device", help="auto, cpu or cuda (env RESTOREAGENT_DEVICE).")
StepsOpt = typer.Option(None, "--max-steps", min=1, max=64, help="Step budget (default 8).")
PermissiveOpt = typer.Option(False, "--permissive-only", help="Use only models whose licence allows commercial use.")
FullSideOpt = typer.Option(
    None, "--full-side", min=16,
    help="Short side (px) a photo should have; smaller ones count as low resolution and are upscaled "
    "(default 512; env RESTOREAGENT_FULL_RESOLUTION_SIDE).",
)
class ScaleChoice(str, Enum):
    auto = "auto"
    one = "1"
    two = "2"
    four = "4"


ScaleOpt = typer.Option(
    None, "--scale", case_sensitive=False,
    help="Output size: auto (default: the agent upscales a photo that reads as low resolution), or 1, 2, 4 "
    "times the input's size (1: always the input's size). Env RESTOREAGENT_SCALE.",
)
TargetSideOpt = typer.Option(
    None, "--target-side", min=8, max=65536, help="Output short side in px, instead of --scale (env RESTOREAGENT_TARGET_SIDE).",
)
BrainOpt = typer.Option(
    None, "--brain", envvar="RESTOREAGENT_BRAIN",
    help="offline (default: the learned planner), offline:rules, qwen-vl:DIR, openai:MODEL, anthropic:MODEL "
    "or ollama:MODEL.",
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
    config = _config(weights_dir, device, max_steps, permissive_only, max_pixels, full_side, scale, target_side).model_copy(
        update={"keep_steps": keep_steps})
    if input.is_dir():
        if download:
            from restoreagent.cli_weights import download_missing

            download_missing(config)
        address = ray_address or ("local" if ray else None)
        results = _restore_folder(input, output, config, overwrite, recursive, retry_failed, brain, address, workers,
                                  threads)
        if report is not None:
            _write_json_atomic([r.model_dump(mode="json") for r in results], report, overwrite)
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
    _print_skipped(toolbox)
    graph = build_graph(config, toolbox=toolbox, brain=chat_model)
    from restoreagent.graph.api import restore as run_restore

    result = run_restore(input, output, overwrite=overwrite, config=config, graph=graph, on_event=_progress_printer())
    for note in result.notes:
        err.print(f"note: {note}", highlight=False)
    if result.size is not None:
        err.print(f"size: {escape(result.size.reason)}", highlight=False)
    if report is not None:
        _write_json_atomic(result.model_dump(mode="json"), report, overwrite)
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

    config = _config(weights_dir, device, max_steps, permissive_only, full_side=full_side, scale=scale,
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
            turn = conv.start(input, target(1), overwrite=overwrite, on_event=_progress_printer())
            show(turn)
            turn_no = turn.turn
        while True:
            try:
                text = _input_line("you> ")
            except EOFError:
                break
            if text.strip().lower() in ("", "quit", "exit", "bye", "q"):
                break
            turn = conv.say(text, target(turn_no + 1), overwrite=overwrite, on_event=_progress_printer())
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

    config = _config(weights_dir, device, max_steps, permissive_only, max_pixels, scale=scale,
                     target_side=target_side).model_copy(update={"approve_tools": approve})
    settings = PageSettings(host=host, port=port)
    studio = Studio(config, brain=make_brain(brain), db_path=db)
    _print_skipped(studio.toolbox)
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

    config = _config(weights_dir, None, None, False, full_side=full_side)
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

    config = _config(weights_dir, device, None, False)
    toolbox = Toolbox(default_registry, config)
    _print_skipped(toolbox)
    result = run_restore(
        folder / "degraded.png", folder / "restored.png", config=config, graph=build_graph(config, toolbox=toolbox),
        on_event=_progress_printer(),
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
    _write_json_atomic(summary, folder / "report.json", overwrite=False)
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

    config = _config(weights_dir, None, None, permissive_only)
    # Availability only: no Toolbox, so neither torch nor the graph is imported (a fast command).
    resolver = WeightsResolver(config.weights_dir, config.cache_dir, config.allow_download, mirrors=config.mirrors)
    statuses = default_registry.status(ToolContext(weights=resolver), config.permissive_only)
    table = Table("task", "tool", "licence", "status")
    rows = [(s.tool_class.spec, "[green]available[/]" if s.available else f"[red]missing[/]: {s.reason}") for s in statuses]
    for spec, status in sorted(rows, key=lambda r: (r[0].task, r[0].name)):
        lic = spec.license + ("" if spec.commercial else " (non-commercial)")
        table.add_row(spec.task, spec.name, lic, status)
    out.print(table)


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
    toolbox = Toolbox(default_registry, _config(weights_dir, "cpu", None, False))
    _print_skipped(toolbox)
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
    _fresh_results_dir(out_dir, overwrite)
    cases = make_cases(images, limit or 16, crop, seed) if images else load_prepared(prepared, limit)
    config = _config(weights_dir, None, None, permissive_only)
    toolbox = Toolbox(default_registry, config)
    _print_skipped(toolbox)
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
    _fresh_results_dir(out_dir, overwrite)
    clean = clean_dir or default_clean_dir()
    pairs = None if str(pairs_dir) == "none" else (pairs_dir or clean.parent / "pairs")
    cases = make_harm_cases(clean, pairs, split, per_category, crop)
    config = _config(weights_dir, None, None, permissive_only)
    toolbox = Toolbox(default_registry, config)
    _print_skipped(toolbox)

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
    _fresh_results_dir(out_dir, overwrite)
    config = _config(weights_dir, None, None, permissive_only, full_side=full_side)
    toolbox = Toolbox(default_registry, config)
    _print_skipped(toolbox)
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
    _fresh_results_dir(out_dir, overwrite)
    for sub in ["folder", *(f"ray-{n}" for n in workers)]:
        shutil.rmtree(out_dir / sub, ignore_errors=True)  # a fresh batch each, nothing resumed
    config = _config(weights_dir, "cpu", None, False, full_side=full_side)
    rows, startup = benchmark(photos, out_dir, config, workers, threads)
    _write_json_atomic({"rows": [r.model_dump() for r in rows], "ray_startup_s": startup}, out_dir / "results.json",
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

    toolbox = Toolbox(default_registry, _config(weights_dir, None, None, False))
    _print_skipped(toolbox)
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
        config = _config(weights_dir, "cpu", None, False).model_copy(update={"work_dir": Path(tmp) / "runs"})
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        t0 = time.perf_counter()
        result = run_restore(src, Path(tmp) / "out.png", config=config, on_event=_progress_printer())
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


from restoreagent.cli_weights import app as weights_app  # noqa: E402  (it uses the helpers above)

app.add_typer(weights_app, name="weights")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
