"""The web page (``restoreagent ui``): chat-style restoration in a browser, built on Gradio.

Every photo is a thread: a :class:`~restoreagent.graph.chat.Conversation` in the same SQLite
file as ``restoreagent chat``. The browser keeps only the ids of its threads (localStorage),
and the page is drawn from the thread's checkpoint, so a reload, or a restart of the server,
shows the same conversation. Uploads stay on this machine: the server listens on loopback by
default, with no share link, no analytics and no web fonts fetched from elsewhere.
"""

from __future__ import annotations

import json
import os
import queue
import sys
import threading
from pathlib import Path
from typing import Any, Callable, Iterator

from pydantic import BaseModel, Field

from restoreagent.graph.api import result_from_state
from restoreagent.graph.chat import Conversation, Turn, default_db_path
from restoreagent.graph.configuration import Configuration
from restoreagent.graph.conversation import REVERT, active_flags, without_ids
from restoreagent.graph.store import ArtifactStore
from restoreagent.tools.base import DEGRADATIONS, ToolError
from restoreagent.tools.util.files import atomic_write
from restoreagent.tools.util.imageio import ImageError, load_image, save_png

#: What a handler reports instead of failing: the page shows it, the server keeps running.
EXPECTED = (ImageError, ToolError, ValueError, OSError)
_DONE = object()


class PageSettings(BaseModel):
    """How ``restoreagent ui`` serves the page."""

    host: str = Field(default="127.0.0.1", description="Interface to listen on (loopback: nothing leaves the machine).")
    port: int | None = Field(default=None, ge=1, le=65535, description="Port (default: Gradio's, 7860 or the next free).")
    max_upload_mb: int = Field(default=200, ge=1, description="Larger uploads are refused by the server.")


class Studio:
    """The page's back end: one configuration, toolbox and brain for every thread.

    Args:
        config: run settings (their ``scale`` / ``target_side`` are the page's defaults).
        brain: a tool-calling chat model (default: the offline policy).
        db_path: the threads' SQLite file (default: the one ``restoreagent chat`` uses).
        toolbox: loaded tools to share (default: every available tool for ``config``).
    """

    def __init__(self, config: Configuration, brain: Any = None, db_path: str | os.PathLike | None = None,
                 toolbox: Any = None) -> None:
        from restoreagent.graph.toolbox import Toolbox
        from restoreagent.tools import default_registry

        self.config = config
        self.brain = brain
        self.db_path = Path(db_path) if db_path else default_db_path()
        self.toolbox = toolbox or Toolbox(default_registry, config)

    def conversation(self, thread_id: str | None = None, approve: bool = False) -> Conversation:
        config = self.config.model_copy(update={"approve_tools": approve})
        return Conversation(config, brain=self.brain, db_path=self.db_path, thread_id=thread_id, toolbox=self.toolbox)

    def check_upload(self, path: str) -> str | None:
        """Why an upload cannot be restored (in the user's words, naming the file), or None."""
        name = Path(path).name
        try:
            load_image(path, self.config.max_pixels)
        except ImageError as exc:
            return str(exc).replace(str(path), name)
        return None


def stream_turn(work: Callable[[Callable[[dict], None]], Turn | None]) -> Iterator[dict]:
    """Run ``work(on_event)`` in a thread and yield its progress events as they happen (a
    Gradio generator cannot receive callbacks); re-raises what ``work`` raised."""
    events: queue.Queue = queue.Queue()
    failure: list[BaseException] = []

    def target() -> None:
        try:
            work(events.put)
        except BaseException as exc:  # handed to the page's thread, which reports it
            failure.append(exc)
        finally:
            events.put(_DONE)

    threading.Thread(target=target, daemon=True).start()
    while (event := events.get()) is not _DONE:
        yield event
    if failure:
        raise failure[0]


def progress_line(event: dict) -> str | None:
    """One line of the live step list for a graph event (None: not shown)."""
    kind = event.get("event")
    if kind == "assessed":
        return "assessed: " + ", ".join(f"{k} {v:.2f}" for k, v in event["degradations"].items() if v >= 0.1)
    if kind == "tool_start":
        return f"step {event['step']}: {event['tool']} running …"
    if kind == "tool_progress":
        return f"step {event['step']}: {event['tool']} {event['tiles_done']}/{event['tiles']} tiles"
    if kind == "observed":
        verdict = "kept" if event["accepted"] else "not kept"
        return f"step {event['step']}: {event['tool']} {verdict}: {event['reason']}"
    return None


def _preview(run_dir: Path, image_id: str) -> str:
    """An 8-bit PNG of a stored (16-bit) image, for the browser."""
    target = run_dir / "page" / f"{image_id}.png"
    if not target.exists():
        save_png(ArtifactStore(run_dir).get(image_id), target, overwrite=True)
    return str(target)


def steps_table(state: dict[str, Any]) -> str:
    """The thread's steps as a Markdown table: what ran, its verdict and why."""
    steps = state.get("steps", [])
    if not steps:
        return "No step has run yet."
    active = active_flags(state["current_id"], state["original_id"], steps)
    rows = ["| step | tool | task | verdict | reason |", "|---|---|---|---|---|"]
    for s in steps:
        if s["tool"] == REVERT:
            verdict = "undo"
        elif s["accepted"]:
            verdict = "kept" if active[s["index"]] else "undone"
        else:
            verdict = "no visible change" if s["reason"].startswith("no visible change") else "rolled back"
        reason = without_ids(s["reason"], state["original_id"], steps).replace("|", "/")
        rows.append(f"| {s['index']} | {s['tool']} | {s['task']} | {verdict} | {reason} |")
    return "\n".join(rows)


def write_report(state: dict[str, Any]) -> str:
    """The thread's report as JSON beside its images (the page's download)."""
    before = {"degradations": state.get("degradations_before", state["degradations"]),
              "quality": state.get("quality_before", state["quality"])}
    report = result_from_state(state, before).model_dump(mode="json")
    path = Path(state["run_dir"]) / "page" / f"report-turn{state.get('turn', 1)}.json"
    atomic_write(path, json.dumps(report, indent=2))
    return str(path)


def build_page(studio: Studio):
    """The Gradio Blocks of the page, driven by ``studio``."""
    import gradio as gr
    import pandas as pd

    default_scale = str(studio.config.scale)
    with gr.Blocks(title="RestoreAgent", analytics_enabled=False) as page:
        browser = gr.BrowserState({"current": None, "threads": {}}, storage_key="restoreagent-threads")
        gr.Markdown("# RestoreAgent\nUpload a photo (or several): the agent assesses it, restores it step by step, "
                    "and then takes requests in the chat. Nothing leaves this machine.")
        with gr.Row():
            with gr.Column(scale=1):
                upload = gr.File(label="Photos", file_count="multiple", elem_id="upload")
                with gr.Row():
                    scale = gr.Radio(["auto", "1", "2", "4"], value=default_scale, label="Output scale",
                                     info="auto: the agent upscales a photo that reads as low resolution; 1: keep the size")
                    target_side = gr.Number(value=studio.config.target_side or 0, precision=0, minimum=0,
                                            label="Target short side (px, 0: use the scale)")
                approve = gr.Checkbox(value=studio.config.approve_tools, label="Ask before each step", elem_id="approve")
                threads = gr.Dropdown(choices=[], label="Photo (thread)", elem_id="threads", interactive=True)
                notice = gr.Markdown("", elem_id="notice")
                chart = gr.BarPlot(x="degradation", y="severity", y_lim=[0, 1], sort=list(DEGRADATIONS), x_label_angle=-40,
                                   label="Assessment of the photo (severity 0–1)", elem_id="assessment")
            with gr.Column(scale=2):
                slider = gr.ImageSlider(label="Before / after", type="filepath", format="png", elem_id="result",
                                        interactive=False)
                with gr.Column(visible=False, elem_id="approval") as approval:
                    approval_text = gr.Markdown(elem_id="approval-text")
                    approval_args = gr.Textbox(label="Arguments (edit, then press Edit)", lines=2, elem_id="approval-args")
                    with gr.Row():
                        approve_btn = gr.Button("Approve", variant="primary", elem_id="approve-step")
                        edit_btn = gr.Button("Edit", elem_id="edit-step")
                        reject_btn = gr.Button("Reject", variant="stop", elem_id="reject-step")
                        skip_btn = gr.Button("Skip this task", elem_id="skip-step")
                steps = gr.Markdown("", elem_id="steps")
                strip = gr.Gallery(label="Step by step", columns=6, height=180, format="png", elem_id="strip",
                                   preview=False, object_fit="contain")
                with gr.Row():
                    png = gr.DownloadButton("Download PNG", visible=False, elem_id="download-png")
                    report = gr.DownloadButton("Download report", visible=False, elem_id="download-report")
                chatbot = gr.Chatbot(label="Chat", height=300, elem_id="chat")
                message = gr.Textbox(placeholder="e.g. undo the last step · that is too dark · what did you do?",
                                     label="Message", elem_id="message", submit_btn=True)
        view = [notice, chart, steps, slider, strip, png, report, chatbot, approval, approval_text, approval_args,
                threads, browser]

        def render(saved: dict, note: str = "", progress: list[str] | None = None) -> dict:
            """Every output, drawn from the current thread's checkpoint."""
            saved = _threads(saved)
            choices = [(name, tid) for tid, name in saved["threads"].items()]
            out: dict = {notice: note, threads: gr.Dropdown(choices=choices, value=saved["current"]), browser: saved}
            state: dict[str, Any] = {}
            pending = None
            if saved["current"]:
                with studio.conversation(saved["current"]) as conv:
                    state, pending = conv.state(), conv.pending_approval()
            if not state.get("current_id"):
                return {**out, chart: None, steps: "\n".join(progress or []), slider: None, strip: [],
                        png: gr.DownloadButton(visible=False), report: gr.DownloadButton(visible=False),
                        chatbot: [], approval: gr.Column(visible=False)}
            run_dir = Path(state["run_dir"])
            severities = state.get("degradations_before", state["degradations"])
            bars = pd.DataFrame({"degradation": list(severities), "severity": list(severities.values())})
            kept = [s for s in state.get("steps", []) if s["accepted"] and s["tool"] != REVERT]
            out.update({
                chart: bars,
                steps: steps_table(state) + ("\n\n" + "\n".join(progress) if progress else ""),
                strip: [(_preview(run_dir, state["original_id"]), "original")]
                + [(_preview(run_dir, s["output_id"]), f"step {s['index']}: {s['tool']}") for s in kept],
                chatbot: _messages(state),
                approval: gr.Column(visible=pending is not None),
            })
            if pending is not None:
                args = {k: v for k, v in pending["args"].items() if k != "image_id"}
                out.update({approval_text: f"**Proposed step {pending['step']}:** {pending['description']}.",
                            approval_args: json.dumps(args)})
            if state.get("output") and Path(state["output"]).is_file():
                out.update({slider: (_preview(run_dir, state["original_id"]), state["output"]),
                            png: gr.DownloadButton(value=state["output"], visible=True),
                            report: gr.DownloadButton(value=write_report(state), visible=True)})
            else:  # paused before the first output
                out.update({slider: None, png: gr.DownloadButton(visible=False),
                            report: gr.DownloadButton(visible=False)})
            return out

        def run(saved: dict, work: Callable, note: str = "") -> Iterator[dict]:
            """Stream a turn: the live step list while it runs, then the whole page."""
            lines: list[str] = []
            try:
                for event in stream_turn(work):
                    if (line := progress_line(event)) is not None:
                        lines = [x for x in lines if not x.startswith(line.split(":")[0] + ":")] + [line]
                        yield {notice: note + "working …", steps: "\n\n".join(lines)}
            except EXPECTED as exc:
                yield render(saved, f"**Error:** {str(exc).splitlines()[0]}")
                return
            except Exception as exc:  # the page's boundary: report it, keep serving
                print(f"restoreagent ui: {type(exc).__name__}: {exc}", file=sys.stderr)
                yield render(saved, f"**Unexpected error:** {type(exc).__name__}: {str(exc).splitlines()[0]}")
                return
            yield render(saved, note)

        def on_upload(files: list[str] | None, approve_on: bool, scale_value: str, side: float | None,
                      saved: dict) -> Iterator[dict]:
            saved = _threads(saved)
            problems: list[str] = []
            for path in files or []:
                name = Path(path).name
                if (problem := studio.check_upload(path)) is not None:
                    problems.append(f"**Cannot restore {name}:** {problem}")
                    yield render(saved, "\n\n".join(problems))
                    continue
                conv = studio.conversation(None, approve_on)
                saved = {"current": conv.thread_id, "threads": {**saved["threads"], conv.thread_id: name}}
                size = {"target_side": int(side)} if side else {"scale": scale_value}

                def work(on_event, conv=conv, path=path, size=size):
                    with conv:
                        return conv.start(path, on_event=on_event, **size)

                yield from run(saved, work, "\n\n".join(problems) + ("\n\n" if problems else ""))
            yield {upload: None, browser: saved}  # emptied, so that the next upload holds only the new photos

        def on_message(text: str, approve_on: bool, saved: dict) -> Iterator[dict]:
            saved = _threads(saved)
            if not text.strip():
                yield {notice: "Type a message first."}
                return
            if not saved.get("current"):
                yield {notice: "Upload a photo first."}
                return

            def work(on_event):
                with studio.conversation(saved["current"], approve_on) as conv:
                    return conv.say(text, on_event=on_event)

            yield {message: ""}
            yield from run(saved, work)

        def decide(action: str) -> Callable:
            def handler(args_text: str, approve_on: bool, saved: dict) -> Iterator[dict]:
                saved = _threads(saved)
                decision: Any = action
                if action == "edit":
                    try:
                        args = json.loads(args_text or "{}")
                    except json.JSONDecodeError as exc:
                        yield {notice: f"**Error:** the arguments are not valid JSON ({exc.msg})."}
                        return
                    decision = {"action": "edit", "args": args if isinstance(args, dict) else {}}

                def work(on_event):
                    with studio.conversation(saved["current"], approve_on) as conv:
                        return conv.resume(decision, on_event=on_event)

                yield from run(saved, work)

            return handler

        def on_pick(thread_id: str | None, saved: dict) -> dict:
            return render({**saved, "current": thread_id})

        upload.upload(on_upload, [upload, approve, scale, target_side, browser], [*view, upload])
        message.submit(on_message, [message, approve, browser], [*view, message])
        for button, action in ((approve_btn, "approve"), (edit_btn, "edit"), (reject_btn, "reject"),
                               (skip_btn, "skip")):
            button.click(decide(action), [approval_args, approve, browser], view)
        threads.input(on_pick, [threads, browser], view)
        page.load(lambda saved: render(saved), [browser], view)
    return page


def _threads(saved: Any) -> dict[str, Any]:
    """The browser's record of its threads, rebuilt from what it sent: a yield that leaves the
    browser state out can make the browser store Gradio's no-change marker alongside it."""
    saved = saved if isinstance(saved, dict) else {}
    threads = saved.get("threads")
    return {"current": saved.get("current"), "threads": dict(threads) if isinstance(threads, dict) else {}}


def _messages(state: dict[str, Any]) -> list[dict[str, str]]:
    """The chat transcript of a thread, for gr.Chatbot."""
    out: list[dict[str, str]] = []
    for entry in state.get("transcript", []):
        if entry.get("message"):
            out.append({"role": "user", "content": entry["message"]})
        out.append({"role": "assistant", "content": entry["reply"] or "Done."})
    return out


def serve(studio: Studio, settings: PageSettings, on_ready: Callable[[str], None] = print) -> None:
    """Serve the page until interrupted; ``on_ready`` gets its address."""
    import gradio as gr

    page = build_page(studio)
    # System fonts: the default theme would fetch web fonts from elsewhere.
    theme = gr.themes.Default(font=["system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])
    page.queue(default_concurrency_limit=1).launch(
        server_name=settings.host, server_port=settings.port, share=False, inbrowser=False, quiet=True,
        prevent_thread_lock=True, ssr_mode=False, theme=theme, max_file_size=f"{settings.max_upload_mb}mb",
        allowed_paths=[str(studio.config.work_dir)], footer_links=[],
    )
    on_ready(page.local_url)
    try:
        page.block_thread()
    finally:
        page.close()
