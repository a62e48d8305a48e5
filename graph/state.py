"""The graph state: ids and numbers only, never pixels.

State values are plain JSON-able data (so any checkpointer and the LangGraph
server can persist them); the pydantic models here validate them at the edges.
"""

from __future__ import annotations

import operator
from typing import Annotated, Any

from langchain_core.messages import AnyMessage
from langgraph.graph.message import add_messages
from pydantic import BaseModel, Field
from typing_extensions import NotRequired, TypedDict

from restoreagent.graph.sizing import ScaleSetting


class RestoreInput(BaseModel):
    """What a caller passes to ``graph.invoke``."""

    image: str | None = Field(
        default=None, description="Path of the photo to restore (read, never modified). Required on a thread's first call."
    )
    output: str | None = Field(default=None, description="Where to write the restored PNG (default: in the run folder).")
    overwrite: bool = Field(default=False, description="Replace an existing output file.")
    instructions: str | None = Field(
        default=None, description="Free-text wishes for the brain (an LLM brain reads them; the offline policy does not)."
    )
    message: str | None = Field(
        default=None,
        description="A follow-up chat message on a thread that already restored its photo, e.g. 'undo the last step'.",
    )
    scale: ScaleSetting | None = Field(
        default=None, description="Output size: 'auto' (the agent decides) or 1, 2, 4 times the input's size; "
        "default the configuration's ('auto'). With 1 the output always has the input's size."
    )
    target_side: int | None = Field(default=None, ge=8, le=65536, description="Output short side in px, instead of a scale.")


class Step(BaseModel):
    """One executed tool call and what the observer made of it."""

    index: int
    tool: str
    task: str
    args: dict[str, Any]
    input_id: str
    output_id: str | None = None
    accepted: bool
    reason: str
    turn: int = 1
    requested: bool = False
    quality_before: float
    quality_after: float | None = None
    #: NIQE (lower is better) before and after, where its parameters were found (``weights_dir``)
    niqe_before: float | None = None
    niqe_after: float | None = None
    degradations_after: dict[str, float] = Field(default_factory=dict)
    #: mean absolute change of the step's output from its input, in 8-bit levels (0-255)
    mean_change: float | None = None
    #: the verifier's predicted PSNR change of the step (dB), where it judged it
    predicted_gain_db: float | None = None
    seconds: float


class State(TypedDict):
    # Input (validated by RestoreInput in the perceive node)
    image: NotRequired[str | None]
    output: NotRequired[str | None]
    overwrite: NotRequired[bool]
    instructions: NotRequired[str | None]
    message: NotRequired[str | None]
    scale: NotRequired[Any]
    target_side: NotRequired[int | None]
    # Conversation: turn 1 is the first restoration, each chat message starts another
    turn: NotRequired[int]
    turn_start: NotRequired[int]
    requests: NotRequired[Annotated[list[str], operator.add]]
    reply: NotRequired[str]
    transcript: NotRequired[Annotated[list[dict[str, Any]], operator.add]]  # per turn: message, reply, output
    turn_image_id: NotRequired[str]  # the current image when this turn started (unchanged: no new file)
    changed: NotRequired[bool]  # whether this turn changed the image
    skip_tasks: NotRequired[Annotated[list[str], operator.add]]  # "skip" answers to approval prompts
    written: NotRequired[Annotated[list[str], operator.add]]
    # Run bookkeeping
    run_dir: NotRequired[str]
    started_at: NotRequired[float]
    original_id: NotRequired[str]
    current_id: NotRequired[str]
    alpha_id: NotRequired[str | None]
    visible_box: NotRequired[tuple[float, float, float, float] | None]  # the opaque part, as fractions
    notes: NotRequired[list[str]]
    size_request: NotRequired[dict[str, Any]]  # graph/sizing.py SizeRequest
    input_size: NotRequired[tuple[int, int]]  # height, width of the input photo
    size: NotRequired[dict[str, Any]]  # graph/sizing.py SizeReport of the last output
    degradations_before: NotRequired[dict[str, float]]  # the input's assessment
    quality_before: NotRequired[float]
    # Perception
    degradations: NotRequired[dict[str, float]]
    assessment: NotRequired[dict[str, Any]]
    quality: NotRequired[float]
    low_light_trust_network: NotRequired[bool]  # decided on the input photo (tools/perception/rules.py)
    plan: NotRequired[list[str]]
    # Execution
    pending: NotRequired[dict[str, Any] | None]
    steps: NotRequired[Annotated[list[dict[str, Any]], operator.add]]
    messages: NotRequired[Annotated[list[AnyMessage], add_messages]]
    done_reason: NotRequired[str]
    # Where the agent's own time went (summed over the thread): the brain's decisions, and the
    # assessments of the input and of every tool output with their verdicts.
    planning_seconds: NotRequired[Annotated[float, operator.add]]
    observing_seconds: NotRequired[Annotated[float, operator.add]]
