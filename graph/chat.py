"""Chat-style restoration: a persistent thread per photo.

``Conversation`` wraps the graph with a SQLite checkpointer and a ``thread_id``.
The first turn restores the photo; each later turn is a message ("that is too
dark", "undo the last step", "what did you do?") answered by the brain, which
may run more tools or revert to an earlier image. Threads survive restarts: the
same ``db_path`` and ``thread_id`` continue where the conversation stopped.
"""

from __future__ import annotations

import json
import os
import sqlite3
import uuid
from pathlib import Path
from typing import Any, Callable

from pydantic import BaseModel, Field

from restoreagent.graph.configuration import Configuration
from restoreagent.graph.state import Step

Approver = Callable[[dict[str, Any]], Any]
"""Given an approval request ({kind, step, tool, args, description}), returns the ``Command(resume=...)``
value: "approve", "reject", "skip" or {"action": "edit", "args": {...}}."""


def approval_answer(text: str) -> Any | None:
    """A typed answer to an approval prompt: yes, no, skip, or JSON arguments (an edit); None for
    anything else, so that a stray chat message is never taken as a decision."""
    word = text.strip().lower()
    if word in ("y", "yes"):
        return "approve"
    if word in ("n", "no"):
        return {"action": "reject", "reason": "the user said no"}
    if word in ("s", "skip"):
        return "skip"
    if word.startswith("{"):
        try:
            args = json.loads(text)
        except json.JSONDecodeError:
            return None
        return {"action": "edit", "args": args} if isinstance(args, dict) else None
    return None


def default_db_path() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "restoreagent" / "threads.sqlite"


class Turn(BaseModel):
    """What one turn of a conversation did."""

    turn: int
    message: str | None = Field(description="The user's message (None for the first restoration).")
    reply: str = Field(description="The agent's answer.")
    output: Path = Field(description="The image after this turn (a PNG written for this turn, or the previous "
                         "turn's when nothing changed).")
    changed: bool = Field(default=True, description="Whether this turn changed the image (else no file was written).")
    steps: list[Step] = Field(description="Steps run in this turn, accepted or rolled back.")
    degradations: dict[str, float]


class Conversation:
    """A multi-turn restoration thread, persisted in SQLite.

    Args:
        config: run settings (``approve_tools=True`` asks ``approver`` before every tool call).
        brain: a tool-calling chat model; default the offline policy.
        db_path: the SQLite file (default ``~/.local/share/restoreagent/threads.sqlite``).
        thread_id: continue this thread; default a new one.
        approver: decides on each tool call when ``config.approve_tools`` is set; without one a
            turn pauses at each proposed call (``start``/``say`` return None) until ``resume(decision)``.
    """

    def __init__(
        self,
        config: Configuration | None = None,
        *,
        brain: Any = None,
        db_path: str | os.PathLike | None = None,
        thread_id: str | None = None,
        approver: Approver | None = None,
        toolbox: Any = None,
    ) -> None:
        from langgraph.checkpoint.sqlite import SqliteSaver

        from restoreagent.graph.graph import build_graph

        self.config = config or Configuration.from_env()
        self.db_path = Path(db_path) if db_path else default_db_path()
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        self._connection = sqlite3.connect(str(self.db_path), check_same_thread=False)
        self.graph = build_graph(self.config, brain=brain, checkpointer=SqliteSaver(self._connection), toolbox=toolbox)
        self.thread_id = thread_id or uuid.uuid4().hex[:12]
        self.approver = approver

    @property
    def _run_config(self) -> dict[str, Any]:
        return {"configurable": {"thread_id": self.thread_id}}

    def state(self) -> dict[str, Any]:
        return self.graph.get_state(self._run_config).values

    def pending_approval(self) -> dict[str, Any] | None:
        """The tool call a paused turn waits on ({kind, step, tool, args, description}), if any."""
        interrupts = self.graph.get_state(self._run_config).interrupts
        return interrupts[0].value if interrupts else None

    @property
    def started(self) -> bool:
        """Whether this thread already restored its photo."""
        return bool(self.state().get("current_id"))

    def start(
        self, image: str | os.PathLike, output: str | os.PathLike | None = None, *, overwrite: bool = False,
        instructions: str | None = None, on_event: Callable[[dict[str, Any]], None] | None = None,
        scale: Any = None, target_side: int | None = None,
    ) -> Turn | None:
        """Restore ``image``: the thread's first turn (``scale``, ``target_side``: its output size,
        default the configuration's; see graph/sizing.py)."""
        if self.started:
            raise ValueError(f"thread {self.thread_id} already has a photo; send messages with say()")
        inputs = {"image": str(image), "output": str(output) if output else None, "overwrite": overwrite,
                  "instructions": instructions, "scale": scale, "target_side": target_side}
        return self._turn(inputs, on_event)

    def say(
        self, text: str, output: str | os.PathLike | None = None, *, overwrite: bool = False,
        on_event: Callable[[dict[str, Any]], None] | None = None,
    ) -> Turn | None:
        """Send a chat message; the brain answers, maybe running tools or undoing steps."""
        if not text.strip():
            raise ValueError("empty message")
        if not self.started:
            raise ValueError(f"thread {self.thread_id} has no photo yet; call start(image) first")
        if self.pending_approval():
            raise ValueError("a proposed step waits for approval: answer it first (approve, edit, reject or skip)")
        inputs = {"message": text, "output": str(output) if output else None, "overwrite": overwrite}
        return self._turn(inputs, on_event)

    def resume(self, decision: Any, on_event: Callable[[dict[str, Any]], None] | None = None) -> Turn | None:
        """Answer the paused turn's approval request; returns the Turn once it ends (None: paused again)."""
        from langgraph.types import Command

        if not self.pending_approval():
            raise ValueError("no step is waiting for approval")
        return self._turn(Command(resume=decision), on_event)

    def _turn(self, payload: Any, on_event) -> Turn | None:
        from langgraph.types import Command

        while True:
            for event in self.graph.stream(payload, self._run_config, stream_mode="custom"):
                if on_event:
                    on_event(event)
            request = self.pending_approval()
            if request is None:
                return self.last_turn()
            if self.approver is None:
                return None
            payload = Command(resume=self.approver(request))

    def last_turn(self) -> Turn:
        """What the thread's latest finished turn did."""
        state = self.state()
        turn = state.get("turn", 1)
        return Turn(
            turn=turn,
            message=state["requests"][-1] if turn > 1 and state.get("requests") else None,
            reply=state.get("reply", ""),
            output=state["output"],
            changed=state.get("changed", True),
            steps=[Step.model_validate(s) for s in state.get("steps", [])[state.get("turn_start", 0):]],
            degradations=state["degradations"],
        )

    def close(self) -> None:
        self._connection.close()

    def __enter__(self) -> "Conversation":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
