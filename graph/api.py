"""``restore``: the one-call helper, returning a typed result."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PIL import Image
from pydantic import BaseModel, Field

from restoreagent.graph.configuration import Configuration
from restoreagent.graph.sizing import SizeReport
from restoreagent.graph.state import Step
from restoreagent.runs import finish_run


class RestoreResult(BaseModel):
    """What a restoration produced."""

    output: Path = Field(description="The restored PNG.")
    input: str
    degradations_before: dict[str, float]
    degradations: dict[str, float] = Field(description="The assessment of the restored image.")
    quality_before: float
    quality: float
    steps: list[Step]
    done_reason: str
    run_dir: Path
    notes: list[str] = Field(default_factory=list)
    size: SizeReport | None = Field(default=None, description="The output's size: which scale was used, and why.")
    planning_seconds: float = Field(default=0.0, description="Time the brain spent deciding.")
    observing_seconds: float = Field(default=0.0, description="Time spent assessing the input and judging each step.")

    @property
    def accepted_steps(self) -> list[Step]:
        return [s for s in self.steps if s.accepted]

    def image(self) -> Image.Image:
        return Image.open(self.output)


def result_from_state(state: dict[str, Any], before: dict[str, Any]) -> RestoreResult:
    return RestoreResult(
        output=state["output"],
        input=state["image"],
        degradations_before=before["degradations"],
        degradations=state["degradations"],
        quality_before=before["quality"],
        quality=state["quality"],
        steps=[Step.model_validate(s) for s in state.get("steps", [])],
        done_reason=state.get("done_reason", ""),
        run_dir=state["run_dir"],
        notes=state.get("notes", []),
        size=state.get("size"),
        planning_seconds=state.get("planning_seconds", 0.0),
        observing_seconds=state.get("observing_seconds", 0.0),
    )


def restore(
    image: str | os.PathLike | np.ndarray | Image.Image,
    output: str | os.PathLike | None = None,
    *,
    overwrite: bool = False,
    config: Configuration | None = None,
    brain: Any = None,
    on_event: Callable[[dict[str, Any]], None] | None = None,
    graph: Any = None,
    **settings: Any,
) -> RestoreResult:
    """Restore one photo.

    Args:
        image: a path, a PIL image, or an H×W×3 array (uint8, or float in [0, 1]).
        output: where to write the PNG (default: ``restored.png`` in the run folder).
        overwrite: replace ``output`` if it exists.
        config: a :class:`Configuration`; ``settings`` override its fields
            (e.g. ``max_steps=4, weights_dir="../shared/weights"``).
        brain: a tool-calling chat model (default: the offline policy).
        on_event: called with every progress event (tool started, finished, verdict).
        graph: a graph from ``build_graph`` to reuse (its models stay loaded).
    """
    from restoreagent.graph.graph import build_graph

    config = (config or Configuration.from_env()).model_copy(update=settings)
    graph = graph or build_graph(config, brain=brain)
    with tempfile.TemporaryDirectory(prefix="restoreagent-in-") as tmp:
        path = str(image) if isinstance(image, (str, os.PathLike)) else _write_temp(image, Path(tmp))
        inputs = {"image": path, "output": str(output) if output else None, "overwrite": overwrite}
        before: dict[str, Any] = {}
        state: dict[str, Any] = {}
        for mode, chunk in graph.stream(inputs, stream_mode=["custom", "updates", "values"]):
            if mode == "custom" and on_event:
                on_event(chunk)
            elif mode == "updates" and "perceive" in chunk:
                before = chunk["perceive"]
            elif mode == "values":
                state = chunk
    result = result_from_state(state, before)
    if not isinstance(image, (str, os.PathLike)):
        result.input = f"<{type(image).__name__}>"  # the temp copy is gone
    finish_run(result.run_dir, input=result.input, output=str(result.output), keep_steps=config.keep_steps,
               history=config.run_history, history_mb=config.run_history_mb)
    return result


def _write_temp(image: np.ndarray | Image.Image, folder: Path) -> str:
    if isinstance(image, np.ndarray):
        arr = image
        if arr.dtype != np.uint8:
            arr = (np.clip(arr, 0, 1) * 255 + 0.5).astype(np.uint8)
        image = Image.fromarray(arr)
    path = folder / "input.png"
    image.save(path)
    return str(path)
