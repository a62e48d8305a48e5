"""Provider brains: the real langchain-openai client against a local OpenAI-compatible server."""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from restoreagent import Configuration, build_graph
from restoreagent.graph.brains.factory import BrainSpecError, make_brain
from restoreagent.graph.brains.offline import OfflinePolicy
from restoreagent.tools import default_registry
from restoreagent.tools.registry import ToolRegistry

pytest.importorskip("langchain_openai", reason="the openai extra (langchain-openai) is not installed")


class FakeOpenAI(BaseHTTPRequestHandler):
    """/v1/chat/completions: first a tool call on the image id in the prompt, then a final answer."""

    requests: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server API)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append(body)
        text = json.dumps(body["messages"])
        image_id = re.search(r"img-[0-9a-f]{16}", text).group(0)
        already_called = any(m.get("role") == "tool" for m in body["messages"]) or len(type(self).requests) > 1
        if already_called:
            message = {"role": "assistant", "content": "The noise is gone; done."}
            finish = "stop"
        else:
            message = {"role": "assistant", "content": None, "tool_calls": [{
                "id": "call_1", "type": "function",
                "function": {"name": "denoise_nlmeans", "arguments": json.dumps({"image_id": image_id})}}]}
            finish = "tool_calls"
        reply = {"id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                 "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                 "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture()
def server():
    FakeOpenAI.requests = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), FakeOpenAI)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()


def test_openai_compatible_server_drives_the_graph(tmp_path, noisy_png, server):
    brain = make_brain("openai:local-vlm", base_url=server, api_key="sk-local", max_retries=0)
    reg = ToolRegistry([default_registry[n] for n in ("denoise_nlmeans", "lowlight_gamma")])
    graph = build_graph(Configuration(work_dir=tmp_path / "runs", weights_dir=tmp_path / "none"),
                        brain=brain, registry=reg)
    state = graph.invoke({"image": str(noisy_png)})
    assert [s["tool"] for s in state["steps"]] == ["denoise_nlmeans"] and state["steps"][0]["accepted"]
    assert state["reply"] == "The noise is gone; done."

    first = FakeOpenAI.requests[0]
    assert {t["function"]["name"] for t in first["tools"]} == {"denoise_nlmeans", "lowlight_gamma", "revert"}
    user = next(m for m in first["messages"] if m["role"] == "user")
    parts = {p["type"]: p for p in user["content"]}
    assert parts["image_url"]["image_url"]["url"].startswith("data:image/png;base64,")
    assert "denoise_nlmeans" in first["messages"][0]["content"]  # the system prompt's tool catalogue


def test_brain_specs():
    assert isinstance(make_brain(None), OfflinePolicy) and make_brain("offline").learned  # the learned planner
    assert make_brain("offline:learned").learned and not make_brain("offline:rules").learned
    for spec, message in [("gpt", "unknown brain"), ("openai", "needs a model name"), ("qwen-vl", "model folder")]:
        with pytest.raises(BrainSpecError, match=message):
            make_brain(spec)
