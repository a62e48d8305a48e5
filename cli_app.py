"""What every ``restoreagent`` command shares: the typer app, one-line errors, options, progress output.

The commands live in a module per area (``cli_restore.py``, ``cli_weights.py``, ``cli_lab.py``);
``cli.py`` puts them together.
"""

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


def config_from_options(
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


def print_skipped(toolbox: Any) -> None:
    from restoreagent.cli_weights import skipped_notice

    for line in skipped_notice(toolbox.skipped, toolbox.weights.cache_dir / ".skipped-notice"):
        err.print(f"[yellow]note:[/] {escape(line)}", highlight=False)


def progress_printer(every: float = 5.0) -> Callable[[dict], None]:
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


def write_json_atomic(data: Any, path: Path, overwrite: bool) -> None:
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


