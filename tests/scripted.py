"""A scripted tool-calling chat model for tests of the LLM brain path."""

from __future__ import annotations

from typing import Any, Callable

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from restoreagent.graph.brains.offline import parse_context

Step = Callable[[dict | None], Any]


class ScriptedBrain(BaseChatModel):
    """Answers from a script of callables (context → AIMessage, or an exception to raise);
    then ``default`` (or "done") forever. Records every message list it saw in ``seen``."""

    script: list
    seen: list = []
    default: Any = None

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def bind_tools(self, tools, **kwargs):
        return self

    def _generate(self, messages, stop=None, run_manager=None, **kwargs):
        self.seen.append(messages)
        step = self.script.pop(0) if self.script else (self.default or (lambda ctx: AIMessage(content="done")))
        reply = step(parse_context(messages))
        if isinstance(reply, Exception):
            raise reply
        return ChatResult(generations=[ChatGeneration(message=reply)])


def call(name: str, **args: Any) -> Step:
    """A script step: one call of ``name`` on the context's current image."""
    return lambda ctx: AIMessage(content="", tool_calls=[
        {"name": name, "args": {"image_id": ctx["image_id"], **args}, "id": "c", "type": "tool_call"}])
