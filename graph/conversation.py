"""Conversation support: the ``revert`` control tool and the image lineage.

A thread is one photo and its history of steps. After a restoration the user
can talk to the agent ("undo the last step", "skip dehazing"); undoing means
moving the current image back to an earlier artifact with the ``revert``
control tool. The *lineage* is the chain of accepted steps that produced the
current image; steps off that chain were undone and count as not done.
"""

from __future__ import annotations

import re
from typing import Any, Sequence

from langchain_core.tools import StructuredTool
from pydantic import BaseModel, Field

REVERT = "revert"
#: A step whose output differs from its input by less than this mean absolute change (in 8-bit
#: levels) made no visible change: it is reported so and not kept.
VISIBLE_CHANGE = 0.2

_IMAGE_ID = re.compile(r"img-[0-9a-f]{16}")


class RevertArgs(BaseModel):
    """Arguments of the ``revert`` control tool."""

    image_id: str = Field(
        description="An earlier image of this conversation: the original or the output of an accepted step."
    )
    reason: str = Field(default="", description="Why, in a few words (shown to the user).")


def _not_called_directly(**_: Any) -> str:
    raise RuntimeError("revert is executed by the graph's act node, not as a function")


revert_tool = StructuredTool.from_function(
    func=_not_called_directly,
    name=REVERT,
    description=(
        "Undo: make an earlier image of this conversation the current one again (the original, or the "
        "output of an accepted step, by image id from the history). Use it when the user asks to undo "
        "or to skip a step that was already done."
    ),
    args_schema=RevertArgs,
)


def known_images(original_id: str, steps: Sequence[dict[str, Any]]) -> set[str]:
    """Image ids a revert may target: the original and every accepted step's output."""
    return {original_id} | {s["output_id"] for s in steps if s["accepted"] and s.get("output_id")}


def lineage(current_id: str, original_id: str, steps: Sequence[dict[str, Any]]) -> list[int]:
    """Indices of the accepted restoration steps that produced ``current_id``, oldest first."""
    chain: list[int] = []
    image, before = current_id, len(steps) + 1
    while image != original_id:
        producer = next(
            (s for s in reversed(steps) if s["index"] < before and s["accepted"]
             and s["tool"] != REVERT and s.get("output_id") == image),
            None,
        )
        if producer is None:
            break
        chain.append(producer["index"])
        image, before = producer["input_id"], producer["index"]
    return chain[::-1]


def active_flags(current_id: str, original_id: str, steps: Sequence[dict[str, Any]]) -> dict[int, bool]:
    """Per step: does it still count? Accepted steps count when on the lineage; rolled-back
    attempts when they were tried on an image of the lineage; reverts never."""
    chain = set(lineage(current_id, original_id, steps))
    images = {original_id} | {s["output_id"] for s in steps if s["index"] in chain}
    flags = {}
    for s in steps:
        if s["tool"] == REVERT:
            flags[s["index"]] = False
        elif s["accepted"]:
            flags[s["index"]] = s["index"] in chain
        else:
            flags[s["index"]] = s["input_id"] in images
    return flags


def describe_image(image_id: str, original_id: str, steps: Sequence[dict[str, Any]]) -> str:
    """An image id in the user's words: "the original photo", "the result of step 2 (denoise_oidn)"."""
    if image_id == original_id:
        return "the original photo"
    producer = next((s for s in steps if s.get("output_id") == image_id and s["accepted"] and s["tool"] != REVERT), None)
    return f"the result of step {producer['index']} ({producer['tool']})" if producer else "an earlier version"


def without_ids(text: str, original_id: str, steps: Sequence[dict[str, Any]]) -> str:
    """``text`` with every internal image id replaced by its description (replies, prompts)."""
    return _IMAGE_ID.sub(lambda m: describe_image(m.group(0), original_id, steps), text)
