"""The tools of one graph: instantiated once, exposed to the brain as LangChain tools.

Each restoration tool becomes a ``StructuredTool`` whose schema is the tool's
pydantic ``Args``. The artifact store of the current run reaches the tool
through the ``RunnableConfig`` (``configurable.run_dir``), so a tool only ever
sees image ids, never paths chosen by a brain.
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from langchain_core.runnables import RunnableConfig
from langchain_core.tools import StructuredTool

from restoreagent.checkpoints import checkpoint_file
from restoreagent.graph.configuration import Configuration
from restoreagent.graph.store import ArtifactStore
from restoreagent.tools.base import RestorationTool, ToolArgs, ToolContext, ToolError
from restoreagent.tools.registry import ToolRegistry
from restoreagent.tools.util.tiling import report_tiles
from restoreagent.tools.weights import WeightsResolver


@dataclass
class ToolResult:
    output_id: str
    seconds: float


class Toolbox:
    """The available tools for a configuration, and the ones skipped (with why)."""

    def __init__(self, registry: ToolRegistry, config: Configuration) -> None:
        from restoreagent.tools.torch_tool import resolve_device

        context = ToolContext(
            weights=WeightsResolver(config.weights_dir, config.cache_dir, config.allow_download, mirrors=config.mirrors),
            device=resolve_device(config.device),
            tile_size=config.tile_size,
            tile_overlap=config.tile_overlap,
        )
        self.weights = context.weights
        tools, self.skipped = registry.instantiate(context, config.permissive_only)
        self.scores = load_scores()
        # Best measured gain first (docs/TOOLS.md); unmeasured tools after, learned before classical.
        ranked = sorted(tools.items(), key=lambda kv: self._rank(kv[1]))
        self.tools: dict[str, RestorationTool] = dict(ranked)
        self.langchain_tools = [self._as_langchain_tool(t) for t in self.tools.values()]

    def _rank(self, tool: RestorationTool) -> tuple:
        gain = (self.scores.get(tool.spec.name) or {}).get("psnr_gain")
        return (gain is None, -(gain or 0.0), not tool.spec.learned, tool.spec.cost)

    def tools_by_task(self) -> dict[str, list[str]]:
        """Tool names per task, best measured first."""
        out: dict[str, list[str]] = defaultdict(list)
        for name, tool in self.tools.items():
            out[tool.spec.task].append(name)
        return dict(out)

    def system_prompt(self) -> str:
        """The brain's system prompt with this toolbox's catalogue (rendered once)."""
        if not hasattr(self, "_system_prompt"):
            from restoreagent import prompts
            from restoreagent.tools.perception.report import PRESENT

            self._system_prompt = prompts.render("system", tool_catalogue=self.catalogue(), present_threshold=PRESENT)
        return self._system_prompt

    def catalogue(self) -> str:
        """A markdown list of the tools for the system prompt."""
        lines = []
        for name, tool in self.tools.items():
            s = tool.spec
            params = {k: v for k, v in tool.Args.model_json_schema()["properties"].items() if k != "image_id"}
            extra = f" Parameters: {', '.join(params)}." if params else ""
            gain = (self.scores.get(name) or {}).get("psnr_gain")
            measured = f"measured gain {gain:+.2f} dB, " if gain is not None else ""
            lines.append(f"- `{name}` [{s.task}] {s.model}: {s.description}{extra} ({measured}~{s.cost:g} s/MP)")
        return "\n".join(lines)

    def validate(self, name: str, args: dict) -> ToolArgs:
        """Validated arguments for tool ``name`` (KeyError / pydantic ValidationError)."""
        return self.tools[name].Args.model_validate(args)

    def run(self, name: str, args: ToolArgs, store: ArtifactStore, timeout: float | None = None,
            on_progress: Callable[[int, int], None] | None = None, progress_every: float = 1.0) -> ToolResult:
        """Run one tool on a stored image; any failure or a timeout becomes a :class:`ToolError`.

        The tool runs in a worker thread so that a hung tool cannot hang the agent: after
        ``timeout`` seconds the step fails (Python cannot kill the thread; it finishes alone).
        ``on_progress(done, total)``: the tiles of a tiled tool, reported from the calling thread
        at most every ``progress_every`` seconds and once more at the end.
        """
        tool = self.tools[name]
        image = store.get(args.image_id)
        box: dict[str, object] = {}
        tiles: list[tuple[int, int] | None] = [None]  # the worker's latest (done, total), read by this thread

        def work() -> None:
            try:
                with report_tiles(lambda done, total: tiles.__setitem__(0, (done, total))):
                    box["out"] = tool(image, args)
            except BaseException as exc:  # plugin boundary: report, never crash the run
                box["error"] = exc

        t0 = time.perf_counter()
        worker = threading.Thread(target=work, name=f"tool-{name}", daemon=True)
        worker.start()
        deadline = None if timeout is None else t0 + timeout
        reported: tuple[int, int] | None = None
        while True:
            wait = progress_every if deadline is None else min(progress_every, deadline - time.perf_counter())
            if wait > 0:
                worker.join(wait)
            if on_progress is not None and tiles[0] is not None and tiles[0] != reported:
                reported = tiles[0]
                on_progress(*reported)
            if not worker.is_alive() or wait <= 0:
                break
        seconds = time.perf_counter() - t0
        if worker.is_alive():
            raise ToolError(f"{name} exceeded its {timeout:g} s timeout")
        if "error" in box:
            exc = box["error"]
            if isinstance(exc, ToolError):
                raise exc
            raise ToolError(f"{name} raised {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
        return ToolResult(store.put(box["out"]), seconds)

    def _as_langchain_tool(self, tool: RestorationTool) -> StructuredTool:
        name = tool.spec.name

        def run_tool(config: RunnableConfig, **kwargs) -> str:
            store = ArtifactStore(config["configurable"]["run_dir"])
            result = self.run(name, tool.Args(**kwargs), store)
            return result.output_id

        return StructuredTool.from_function(
            func=run_tool,
            name=name,
            description=f"[{tool.spec.task}] {tool.spec.model}: {tool.spec.description}",
            args_schema=tool.Args,
        )


def load_scores(path: Path | None = None) -> dict[str, dict]:
    """Tool name → measured summary from ``restoreagent bench-tools`` (empty if no table has been written)."""
    path = Path(path) if path is not None else checkpoint_file("tool_scores.json")
    text = path.read_text() if path.is_file() else None
    if not text:
        return {}
    return {t["name"]: t for t in json.loads(text)["tools"]}
