"""``build_graph``: the compiled LangGraph state machine.

    perceive ─┐
              ├→ brain ─┬─ act → observe ─┐
    converse ─┘    ↑    │                 │
                   │    └─ finish → END   │
                   └──────────────────────┘

A thread's first call (``{"image": ...}``) starts at perceive; a later call on the
same thread (``{"message": "undo the last step"}``) starts at converse.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from langchain_core.language_models import BaseChatModel
from langgraph.graph import END, START, StateGraph

from restoreagent.graph.brains.offline import OfflinePolicy
from restoreagent.graph.configuration import Configuration
from restoreagent.graph.nodes import Assessor, Nodes
from restoreagent.graph.state import RestoreInput, State
from restoreagent.graph.toolbox import Toolbox
from restoreagent.tools.perception.assess import assess
from restoreagent.tools.perception.verifier import Verifier, load_verifier
from restoreagent.tools.registry import ToolRegistry


def build_graph(
    config: Configuration | None = None,
    *,
    brain: BaseChatModel | None = None,
    registry: ToolRegistry | None = None,
    assessor: Assessor | None = None,
    checkpointer: Any = None,
    interrupt_before: list[str] | None = None,
    toolbox: Toolbox | None = None,
    verifier: Verifier | None = None,
):
    """Build the restoration graph.

    Args:
        config: run settings; default ``Configuration.from_env()``.
        brain: any tool-calling langchain-core chat model; default the offline policy.
        registry: the tools to offer; default every built-in tool.
        assessor: image → :class:`~restoreagent.tools.perception.report.Assessment`; default the built-in assessor
            (with ``config.weights_dir`` for NIQE and ``config.full_resolution_side``).
        checkpointer: a LangGraph checkpointer; none by default, so the graph also
            runs under ``langgraph dev`` and as a subgraph.
        interrupt_before: node names to pause before (e.g. ``["act"]``).
        toolbox: a ready :class:`Toolbox` to share loaded models between graphs.
        verifier: the step verifier; default the shipped one (``checkpoints/verifier.pt``) when
            ``config.verify_steps``, none otherwise.

    Returns:
        A compiled graph: ``graph.invoke({"image": "photo.jpg"})``.
    """
    config = config or Configuration.from_env()
    if toolbox is None:
        if registry is None:
            from restoreagent.tools import default_registry

            registry = default_registry
        toolbox = Toolbox(registry, config)
    if assessor is None:
        # NIQE's parameters are found in the same weights folder as the tools' weights
        assessor = partial(assess, weights_dir=config.weights_dir, full_resolution_side=config.full_resolution_side)
    if verifier is None and config.verify_steps:
        verifier = load_verifier()
    nodes = Nodes(config, toolbox, brain or OfflinePolicy(), assessor, verifier)

    builder = StateGraph(State, input_schema=RestoreInput)
    builder.add_node("perceive", nodes.perceive)
    builder.add_node("converse", nodes.converse)
    builder.add_node("brain", nodes.brain)
    builder.add_node("act", nodes.act)
    builder.add_node("observe", nodes.observe)
    builder.add_node("finish", nodes.finish)
    builder.add_conditional_edges(START, nodes.route_start, ["perceive", "converse"])
    builder.add_edge("perceive", "brain")
    builder.add_edge("converse", "brain")
    builder.add_conditional_edges("brain", nodes.route_after_brain, ["act", "finish"])
    builder.add_edge("act", "observe")
    builder.add_edge("observe", "brain")
    builder.add_edge("finish", END)
    return builder.compile(checkpointer=checkpointer, interrupt_before=interrupt_before, name="restoreagent")
