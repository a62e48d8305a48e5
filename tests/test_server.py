"""A real `langgraph dev` server, driven with langgraph_sdk: thread, streamed run, interrupt, state."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from restoreagent.tools.util.synthesis import add_gaussian_noise

REPO = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    exe = shutil.which("langgraph") or str(Path(sys.executable).with_name("langgraph"))
    if not Path(exe).exists():
        pytest.skip("langgraph-cli[inmem] is not installed (pip install -e '.[test]')")
    port = _free_port()
    root = tmp_path_factory.mktemp("server")
    env = {**os.environ, "RESTOREAGENT_WORK_DIR": str(root / "runs"), "RESTOREAGENT_WEIGHTS_DIR": str(root / "none"),
           "RESTOREAGENT_FULL_RESOLUTION_SIDE": "192",
           "LANGSMITH_TRACING": "false", "LANGGRAPH_CLI_NO_ANALYTICS": "1", "PYTHONUNBUFFERED": "1"}
    log = open(root / "server.log", "w")
    proc = subprocess.Popen([exe, "dev", "--no-browser", "--no-reload", "--port", str(port), "--config",
                             str(REPO / "langgraph.json")], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            try:
                with urllib.request.urlopen(url + "/ok", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError("langgraph dev did not start: " + (root / "server.log").read_text()[-2000:])
                time.sleep(0.5)
        yield url, root
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def test_sdk_thread_stream_interrupt_resume_and_state(server, clean_images):
    from langgraph_sdk import get_sync_client

    url, root = server
    noisy = add_gaussian_noise(clean_images["coffee"], 30, np.random.default_rng(0))
    photo = root / "photo.png"  # images go by path: the server reads this file
    Image.fromarray((noisy * 255 + 0.5).astype(np.uint8)).save(photo)

    client = get_sync_client(url=url)
    thread = client.threads.create()
    tid = thread["thread_id"]
    first = list(client.runs.stream(tid, "restoreagent", input={"image": str(photo)},
                                    stream_mode=["custom", "updates"], interrupt_before=["act"]))
    custom = [c.data for c in first if c.event == "custom"]
    assert custom[0]["event"] == "assessed" and any(e["event"] == "decided" for e in custom)
    paused = client.threads.get_state(tid)
    assert paused["next"] == ["act"] and paused["values"]["pending"]["name"]

    second = list(client.runs.stream(tid, "restoreagent", input=None, stream_mode=["custom", "updates"]))
    events = [c.data["event"] for c in second if c.event == "custom"]
    assert "tool_start" in events and "observed" in events and events[-1] == "finished"

    final = client.threads.get_state(tid)["values"]
    assert final["steps"] and any(s["accepted"] for s in final["steps"])
    assert Path(final["output"]).is_file()
    assert Image.open(final["output"]).size == (192, 192)

    # Chat on the same server thread: a follow-up message starts a new turn.
    chat = list(client.runs.stream(tid, "restoreagent", input={"message": "undo the last step"},
                                   stream_mode=["custom"]))
    chat_events = [c.data for c in chat if c.event == "custom"]
    assert chat_events[0] == {"event": "message", "turn": 2, "text": "undo the last step"}
    after = client.threads.get_state(tid)["values"]
    last_kept = [s for s in final["steps"] if s["accepted"]][-1]
    assert after["steps"][-1]["tool"] == "revert" and after["current_id"] == last_kept["input_id"]
    assert after["output"] != final["output"] and Path(after["output"]).is_file()
