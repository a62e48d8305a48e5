"""RestoreAgent as a tool for other agents (e.g. ``langchain.agents.create_agent``)."""

from __future__ import annotations

from typing import Any

from langchain_core.tools import StructuredTool
from pydantic import BaseModel, Field


class RestorePhotoArgs(BaseModel):
    """What a calling agent passes: a path it can read, and optional wishes."""

    image_path: str = Field(description="Path of the photo to restore (on this machine; never modified).")
    instructions: str | None = Field(
        default=None, description="Optional wishes for the restoration, e.g. 'keep it natural, skip dehazing'."
    )


def summarize(state: dict[str, Any]) -> str:
    """One paragraph a calling agent (or a person) can read."""
    found = [f"{k} ({state['assessment']['degradations'][k]:.2f})" for k in state.get("plan", [])] or ["nothing"]
    done = [s["tool"] for s in state.get("steps", []) if s["accepted"]]
    undone = [f"{s['tool']} ({s['reason']})" for s in state.get("steps", []) if not s["accepted"]]
    text = f"Found {', '.join(found)}. Applied: {', '.join(done) or 'nothing'}."
    if undone:
        text += f" Rolled back: {'; '.join(undone)}."
    return text + f" Output: {state['output']}."


def as_tool(graph: Any = None, *, name: str = "restore_photo") -> StructuredTool:
    """Wrap a restoration graph (default: ``build_graph()``) as a LangChain tool.

    The tool returns ``{"output": <path of the restored PNG>, "summary": <text>}``.
    """
    if graph is None:
        from restoreagent.graph.graph import build_graph

        graph = build_graph()

    def restore_photo(image_path: str, instructions: str | None = None) -> dict[str, str]:
        state = graph.invoke({"image": image_path, "instructions": instructions})
        return {"output": state["output"], "summary": summarize(state)}

    return StructuredTool.from_function(
        func=restore_photo,
        name=name,
        description=(
            "Restore a degraded photo (noise, blur, JPEG artifacts, low light, haze, rain, low resolution): "
            "assesses it, runs restoration models one at a time and rolls back steps that make it worse. "
            "Returns the restored PNG's path and a summary."
        ),
        args_schema=RestorePhotoArgs,
    )
