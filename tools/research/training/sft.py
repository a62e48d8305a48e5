"""Oracle-labelled fine-tuning data: image + instruction → plan JSON.

This is the data RestoreAgent fine-tunes its multimodal LLM on. Each example is
one degraded image (written next to the JSONL) and a conversation in the common
chat-template format (``{"messages": [...]}`` with an image content part):

* system — the brain's system prompt with the tool catalogue;
* user — the image and the instruction;
* assistant — the oracle's best pipeline as JSON:
  ``{"degradations": [...], "plan": [{"task": ..., "tool": ...}, ...]}``.

Images come from the ``train`` split only, so a model fine-tuned on this data can
still be scored on the held-out images.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from restoreagent.tools.research.datasets import load_rgb, split_files
from restoreagent.tools.research.evaluation.benchmark import COMBOS
from restoreagent.tools.research.evaluation.oracle import run_oracle
from restoreagent.tools.research.evaluation.toolbench import center_crop
from restoreagent.tools.util.files import atomic_write
from restoreagent.tools.util.imageio import save_png
from restoreagent.tools.util.synthesis import degrade

INSTRUCTION = (
    "Restore this photo. List the degradations you see, then the restoration steps in order, "
    "one tool per step, as JSON."
)


def export_sft(
    toolbox: Any,
    out_dir: Path,
    limit: int,
    crop: int = 256,
    seed: int = 0,
    clean_dir: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """Write ``limit`` oracle-labelled examples to ``out_dir/sft.jsonl`` (+ ``images/``)."""
    files = split_files("train", clean_dir)
    by_task = toolbox.tools_by_task()
    system = toolbox.system_prompt()
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(limit):
        group, combo = COMBOS[i % len(COMBOS)]
        if any(t not in by_task for t in combo):
            continue
        path = files[i % len(files)]
        clean = center_crop(load_rgb(path), crop)
        degraded, params = degrade(clean, combo, seed=seed * 100_000 + i)
        name = f"{i:05d}_{path.stem}_{'+'.join(combo)}.png"
        save_png(degraded, out_dir / "images" / name, overwrite=True)
        if progress:
            progress(f"[{i + 1}/{limit}] {name}")
        best = run_oracle(degraded, clean, combo, toolbox.tools).best
        plan = {
            "degradations": list(combo),
            "plan": [{"task": toolbox.tools[t].spec.task, "tool": t} for t in best.pipeline],
        }
        lines.append(json.dumps({
            "messages": [
                {"role": "system", "content": system},
                {"role": "user", "content": [{"type": "image", "image": f"images/{name}"},
                                             {"type": "text", "text": INSTRUCTION}]},
                {"role": "assistant", "content": json.dumps(plan)},
            ],
            "meta": {"group": group, "source": path.name, "params": params,
                     "oracle_psnr": round(best.psnr, 3), "oracle_ssim": round(best.ssim, 4)},
        }))
    return atomic_write(out_dir / "sft.jsonl", "\n".join(lines) + "\n")
