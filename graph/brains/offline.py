"""The default brain: an offline policy that speaks the chat-model protocol.

``OfflinePolicy`` is a langchain-core ``BaseChatModel``. It reads the same
context message an LLM would get (the JSON block rendered from
``prompts/context.md``) and answers with an ``AIMessage`` carrying one tool
call, or with no tool call when it is done. So the graph runs unchanged with
it or with any tool-calling LLM.

Its rules (replaced by a learned policy in the planning work):
* tasks in a fixed order that undoes the imaging chain backwards, scale
  by scale (:data:`TASK_ORDER`), skipping degradations below the presence threshold;
* per task, the tools in the order the context lists them (best measured
  gain first, from ``docs/TOOLS.md``), after any ``preference`` override;
* never the same tool twice in a run; after a roll-back the next candidate;
  a task is done once one of its steps was accepted (repeating super-resolution
  would keep enlarging the image; repeating others mostly over-smooths).
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any, Sequence

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.utils.function_calling import convert_to_openai_tool

from .intents import respond, skipped_tasks

#: Sensor noise and compression first (they were added last, at the image's current
#: scale; a denoiser also clears most compressed noise), then super-resolution, so that
#: blur, rain and haze — which happened at the scene's full scale — are treated at
#: that scale (deblurring a ×1/4 image with full-scale kernels destroys it), and
#: brightness last.
TASK_ORDER: tuple[str, ...] = (
    "noise",
    "jpeg",
    "low_resolution",
    "motion_blur",
    "defocus_blur",
    "rain",
    "haze",
    "low_light",
)

_JSON_BLOCK = re.compile(r"```json\s*(\{.*?\})\s*```", re.DOTALL)


def parse_context(messages: Sequence[BaseMessage]) -> dict[str, Any] | None:
    """The JSON context of the latest human message that carries one, if any."""
    for msg in reversed(messages):
        if isinstance(msg, HumanMessage):
            text = msg.content if isinstance(msg.content, str) else " ".join(
                part.get("text", "") for part in msg.content if isinstance(part, dict)
            )
            m = _JSON_BLOCK.search(text)
            if m:
                return json.loads(m.group(1))
    return None


def choose(
    context: dict[str, Any], bound: Sequence[str], preference: dict[str, tuple[str, ...]] | None = None
) -> tuple[str, str] | None:
    """The next (task, tool) for ``context``, or None when there is nothing to do."""
    severities: dict[str, float] = context.get("degradations", {})
    threshold = float(context.get("present_threshold", 0.2))
    tools_by_task: dict[str, list[str]] = context.get("tools_by_task", {})
    history = context.get("history", [])
    # Steps undone by the user (``active`` false) count neither as done nor as used:
    # after "skip dehazing" the later tasks are redone on the reverted image.
    live = [step for step in history if step.get("active", True)]
    used = {step["tool"] for step in live}
    done = {step["task"] for step in live if step["accepted"]}
    skip = set(context.get("skip_tasks", []))
    for task in TASK_ORDER:
        if task in done or task in skip or severities.get(task, 0.0) < threshold:
            continue
        offered = [t for t in tools_by_task.get(task, []) if t in bound]
        ranked = [t for t in (preference or {}).get(task, ()) if t in offered]
        ranked += [t for t in offered if t not in ranked]
        for tool in ranked:
            if tool not in used:
                return task, tool
    return None


class OfflinePolicy(BaseChatModel):
    """A rule-based, offline brain with the tool-calling chat-model interface."""

    preference: dict[str, tuple[str, ...]] = {}
    """Override: best-first tool names per task, tried before the context's order."""

    @property
    def _llm_type(self) -> str:
        return "restoreagent-offline-policy"

    def bind_tools(self, tools: Sequence[Any], *, tool_choice: str | None = None, **kwargs: Any):
        return self.bind(tools=[convert_to_openai_tool(t) for t in tools], **kwargs)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        bound = [t["function"]["name"] for t in kwargs.get("tools", [])]
        context = parse_context(messages)
        if context is None:
            message = AIMessage(content="I need an image context (a ```json block) to decide.")
        elif (answer := respond(context, bound)) is not None:
            message = answer  # this turn's chat request (undo, too dark, ...)
        else:
            context = {**context, "skip_tasks": sorted({*context.get("skip_tasks", []),
                                                        *skipped_tasks(context.get("requests", []))})}
            decision = choose(context, bound, self.preference)
            if decision is None:
                message = AIMessage(content="Done: no remaining degradation that an untried tool can address.")
            else:
                task, tool = decision
                message = AIMessage(
                    content=f"Next: {task} with {tool}.",
                    tool_calls=[
                        {
                            "name": tool,
                            "args": {"image_id": context["image_id"]},
                            "id": f"call_{uuid.uuid4().hex[:12]}",
                            "type": "tool_call",
                        }
                    ],
                )
        return ChatResult(generations=[ChatGeneration(message=message)])
