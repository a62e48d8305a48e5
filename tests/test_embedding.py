"""Embedding: a node of a parent graph, interrupts through the parent, a tool for create_agent."""

from __future__ import annotations

from pathlib import Path

from langgraph.graph import END, START, StateGraph
from langgraph.types import Command
from typing_extensions import TypedDict

from restoreagent import Configuration, build_graph
from restoreagent.graph.agent_tool import as_tool
from restoreagent.tools import default_registry
from restoreagent.tools.registry import ToolRegistry


def _graph(tmp_path: Path, **kw):
    reg = ToolRegistry([default_registry[n] for n in ("denoise_nlmeans", "denoise_oidn", "lowlight_gamma")])
    return build_graph(Configuration(work_dir=tmp_path / "runs", weights_dir=tmp_path / "none", **kw), registry=reg)


class Album(TypedDict, total=False):
    photo: str
    restored: str
    log: list[str]


def _parent(restoration, checkpointer=None):
    def restore_node(state: Album) -> Album:
        result = restoration.invoke({"image": state["photo"]})
        return {"restored": result["output"], "log": [s["tool"] for s in result["steps"] if s["accepted"]]}

    g = StateGraph(Album)
    g.add_node("restore", restore_node)
    g.add_edge(START, "restore")
    g.add_edge("restore", END)
    return g.compile(checkpointer=checkpointer)


def test_runs_as_a_node_of_a_parent_graph_with_another_schema(tmp_path, noisy_png):
    out = _parent(_graph(tmp_path)).invoke({"photo": str(noisy_png)})
    assert Path(out["restored"]).is_file() and out["log"]
    assert set(out) == {"photo", "restored", "log"}


def test_interrupts_inside_the_subgraph_reach_the_parent_and_resume(tmp_path, noisy_png):
    from langgraph.checkpoint.sqlite import SqliteSaver

    with SqliteSaver.from_conn_string(str(tmp_path / "parent.sqlite")) as saver:
        parent = _parent(_graph(tmp_path, approve_tools=True), checkpointer=saver)
        cfg = {"configurable": {"thread_id": "album-1"}}
        out = parent.invoke({"photo": str(noisy_png)}, cfg)
        seen = []
        decisions = iter(["reject", {"action": "edit", "args": {}}, "approve", "approve", "approve"])
        while "__interrupt__" in out:
            (pending,) = out["__interrupt__"]
            assert pending.value["kind"] == "approve_tool" and "image_id" in pending.value["args"]
            seen.append(pending.value["tool"])
            out = parent.invoke(Command(resume=next(decisions)), cfg)
        assert len(seen) >= 2
        assert Path(out["restored"]).is_file()
        # The rejected first proposal was not applied; the edited/approved second one was.
        assert seen[0] not in out["log"] and seen[1] in out["log"]


def test_create_agent_can_call_restoration_as_a_tool(tmp_path, noisy_png):
    from langchain.agents import create_agent
    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
    from langchain_core.messages import AIMessage

    class ScriptedModel(GenericFakeChatModel):
        def bind_tools(self, tools, **kwargs):
            return self

    call = {"name": "restore_photo", "args": {"image_path": str(noisy_png)}, "id": "call-1", "type": "tool_call"}
    model = ScriptedModel(messages=iter([AIMessage(content="", tool_calls=[call]), AIMessage(content="Done.")]))
    tool = as_tool(_graph(tmp_path))
    assert set(tool.args) == {"image_path", "instructions"}
    agent = create_agent(model, tools=[tool])
    result = agent.invoke({"messages": [{"role": "user", "content": f"Please clean up {noisy_png}"}]})
    tool_msgs = [m for m in result["messages"] if m.type == "tool"]
    assert len(tool_msgs) == 1 and "Applied:" in tool_msgs[0].content and ".png" in tool_msgs[0].content
    assert result["messages"][-1].content == "Done."
