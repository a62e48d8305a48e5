"""The measured tool table: every tool on its own degradation, on held-out images.

``restoreagent bench-tools`` runs :func:`bench_tools` and writes ``docs/TOOLS.md``
plus ``checkpoints/tool_scores.json``; the toolbox orders each task's tools by
these measured gains, so the brain sees the best tool first.

Protocol: crops of the held-out ``eval`` split, each degraded with one MiO
degradation (parameters drawn by :func:`tools.util.synthesis.sample_params` from a
fixed seed per image), restored by the tool; the gain is PSNR/SSIM after minus
before. For super-resolution the "before" is the bicubic upscale of the small
image, so the gain is what the tool adds over plain interpolation.
"""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from restoreagent.tools.base import RestorationTool
from restoreagent.tools.research.datasets import load_rgb, split_files
from restoreagent.tools.util.files import atomic_write
from restoreagent.tools.util.metrics import psnr, ssim
from restoreagent.tools.util.synthesis import apply, sample_params


@dataclass
class ToolScore:
    name: str
    task: str
    model: str
    license: str
    commercial: bool
    learned: bool
    psnr_before: list[float] = field(default_factory=list)
    psnr_after: list[float] = field(default_factory=list)
    ssim_before: list[float] = field(default_factory=list)
    ssim_after: list[float] = field(default_factory=list)
    seconds: float = 0.0
    megapixels: float = 0.0
    error: str | None = None

    def summary(self) -> dict:
        n = len(self.psnr_after)
        mean = lambda xs: round(float(np.mean(xs)), 3) if xs else None  # noqa: E731
        return {
            "name": self.name, "task": self.task, "model": self.model, "license": self.license,
            "commercial": self.commercial, "learned": self.learned, "images": n,
            "psnr_before": mean(self.psnr_before), "psnr_after": mean(self.psnr_after),
            "psnr_gain": mean(list(np.subtract(self.psnr_after, self.psnr_before))) if n else None,
            "ssim_before": mean(self.ssim_before), "ssim_after": mean(self.ssim_after),
            "ssim_gain": mean(list(np.subtract(self.ssim_after, self.ssim_before))) if n else None,
            "s_per_mp": round(self.seconds / self.megapixels, 3) if self.megapixels else None,
            "error": self.error,
        }


def center_crop(rgb: np.ndarray, size: int) -> np.ndarray:
    h, w = rgb.shape[:2]
    s = min(size, h, w) // 4 * 4
    y, x = (h - s) // 2, (w - s) // 2
    return rgb[y : y + s, x : x + s]


def bicubic_up(rgb: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    return np.clip(cv2.resize(rgb, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC), 0, 1)


def bench_tools(
    tools: dict[str, RestorationTool],
    clean_dir: Path | None = None,
    images: int = 8,
    crop: int = 256,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> list[dict]:
    """Measure every tool on its own degradation; returns one summary dict per tool."""
    files = split_files("eval", clean_dir)
    step = max(1, len(files) // images)
    cleans = [center_crop(load_rgb(p), crop) for p in files[::step][:images]]
    cases: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    for task in sorted({t.spec.task for t in tools.values()}):
        cases[task] = []
        for i, clean in enumerate(cleans):
            rng = np.random.default_rng(seed * 1000 + i)
            cases[task].append((clean, apply(task, clean, sample_params(task, rng), rng)))
    scores = []
    for name, tool in tools.items():
        s = tool.spec
        score = ToolScore(name, s.task, s.model, s.license, s.commercial, s.learned)
        if progress:
            progress(name)
        try:
            tool.ensure_loaded()
            for clean, degraded in cases[s.task]:
                args = tool.Args(image_id="img-0000000000000000")
                t0 = time.perf_counter()
                out = tool(degraded, args)
                score.seconds += time.perf_counter() - t0
                score.megapixels += degraded.shape[0] * degraded.shape[1] / 1e6
                before = bicubic_up(degraded, clean.shape[:2]) if degraded.shape != clean.shape else degraded
                if out.shape != clean.shape:
                    out = bicubic_up(out, clean.shape[:2])
                score.psnr_before.append(psnr(before, clean))
                score.psnr_after.append(psnr(out, clean))
                score.ssim_before.append(ssim(before, clean))
                score.ssim_after.append(ssim(out, clean))
        except Exception as exc:  # a broken tool is reported in the table, not fatal
            score.error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        scores.append(score.summary())
    return scores


def write_scores(scores: list[dict], path: Path, meta: dict) -> None:
    atomic_write(path, json.dumps({"meta": meta, "tools": scores}, indent=1))


def render_markdown(scores: list[dict], meta: dict, skipped: list[tuple[str, str]]) -> str:
    lines = [
        "# Tools: measured on held-out images",
        "",
        "Generated by `restoreagent bench-tools` (do not edit by hand). "
        f"{meta['images']} held-out crops of {meta['crop']}×{meta['crop']} from the `eval` split "
        "(Kodak24, LIVE1), each degraded with the tool's own degradation at MiO-protocol strength "
        f"(seed {meta['seed']}). Gain = after − before; for super-resolution, *before* is the bicubic "
        "upscale of the ×1/4 image. Seconds per megapixel of input on this machine: "
        f"{meta['machine']}, {meta['threads']} torch thread(s).",
        "",
        "Command: `" + meta["command"] + "`",
        "",
    ]
    by_task: dict[str, list[dict]] = {}
    for s in scores:
        by_task.setdefault(s["task"], []).append(s)
    lines += ["| task | tool | model | licence | PSNR before → after (gain) | SSIM gain | s/MP |", "|---|---|---|---|---|---|---|"]
    for task in sorted(by_task):
        for s in sorted(by_task[task], key=lambda s: -(s["psnr_gain"] if s["psnr_gain"] is not None else -1e9)):
            lic = s["license"] + ("" if s["commercial"] else " (non-commercial)")
            if s["error"]:
                lines.append(f"| {task} | `{s['name']}` | {s['model']} | {lic} | failed: {s['error']} | | |")
                continue
            lines.append(
                f"| {task} | `{s['name']}` | {s['model']} | {lic} | {s['psnr_before']:.2f} → {s['psnr_after']:.2f} "
                f"(**{s['psnr_gain']:+.2f}**) | {s['ssim_gain']:+.3f} | {s['s_per_mp']:.2f} |"
            )
    lines += ["", "## Coverage", "", "| task | tools with a positive gain | of which commercially usable |", "|---|---|---|"]
    for task in sorted(by_task):
        good = [s for s in by_task[task] if s["psnr_gain"] and s["psnr_gain"] > 0]
        lines.append(f"| {task} | {len(good)} | {sum(s['commercial'] for s in good)} |")
    if skipped:
        lines += ["", "## Not measured (unavailable here)", ""]
        lines += [f"- `{name}`: {reason}" for name, reason in skipped]
    return "\n".join(lines) + "\n"


def machine_meta(images: int, crop: int, seed: int, command: str) -> dict:
    import torch

    return {
        "images": images, "crop": crop, "seed": seed, "command": command,
        "machine": f"{platform.machine()} {os.cpu_count()} cores", "threads": torch.get_num_threads(),
    }


def write_markdown(text: str, path: Path) -> None:
    atomic_write(path, text)
