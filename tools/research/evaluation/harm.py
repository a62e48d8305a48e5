"""``restoreagent bench-harm``: does the agent make photos worse? Per photo and per category.

Categories, on images that no decision looked at (the test split, docs/VERIFIER.md):

* ``clean`` — undegraded crops: every change is a false alarm;
* ``single:<degradation>`` — one MiO degradation each;
* ``mio:<combination>`` — the 16 MiO combinations;
* ``real:<set>`` — real degraded photos with a ground truth (``data/pairs``: PolyU real sensor
  noise, City100 real optical blur), the pairs of the chosen split.

Each agent variant restores every photo; per category the summary gives the mean PSNR gain, the
share of photos made worse by more than 0.5 dB and by more than 1 dB, and the worst photo; a
contact sheet shows the worst cases. ``--baseline`` also runs the agent without the step
verifier (the assessor's readings alone decide, as before), on the same photos.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from restoreagent.tools.base import DEGRADATIONS
from restoreagent.tools.research.datasets import load_rgb
from restoreagent.tools.research.evaluation.oracle import match_size
from restoreagent.tools.research.evaluation.toolbench import center_crop, write_markdown
from restoreagent.tools.research.training.verifier import clean_images, real_pairs
from restoreagent.tools.util.figures import contact_sheet
from restoreagent.tools.util.files import atomic_save_image, atomic_write
from restoreagent.tools.util.imageio import load_image, save_png, to_uint8
from restoreagent.tools.util.metrics import psnr
from restoreagent.tools.util.synthesis import MIO_COMBOS, degrade

WORSE_DB = 0.5


@dataclass
class HarmCase:
    id: str
    category: str
    clean: np.ndarray
    degraded: np.ndarray
    full_side: int  #: the photo's full resolution (only a ×1/4 input reads as low resolution)


def make_harm_cases(clean_dir: Path, pairs_dir: Path | None, split: str, per_category: int, crop: int,
                    seed: int = 0) -> list[HarmCase]:
    """Synthetic cases from the split's clean images, then the split's real pairs."""
    files = clean_images(split, clean_dir)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(files))
    cases: list[HarmCase] = []
    n = 0

    def nxt() -> tuple[str, np.ndarray]:
        nonlocal n
        f = files[order[n % len(files)]]
        n += 1
        return f.stem, center_crop(load_rgb(f), crop)

    for i in range(per_category):
        name, clean = nxt()
        cases.append(HarmCase(f"clean_{i}_{name}", "clean", clean, clean, crop))
    for combos, prefix in (([(d,) for d in DEGRADATIONS], "single"), (list(MIO_COMBOS), "mio")):
        for combo in combos:
            for i in range(per_category if prefix == "single" else max(1, per_category // 2)):
                name, clean = nxt()
                deg, _ = degrade(clean, combo, seed=seed * 100_000 + n)
                label = "+".join(combo)
                cases.append(HarmCase(f"{prefix}_{label}_{i}_{name}", f"{prefix}:{label}", clean,
                                      to_uint8(deg).astype(np.float32) / 255.0, crop))
    if pairs_dir is not None and pairs_dir.is_dir():
        for deg, gt, _task in real_pairs(split, pairs_dir, sets=("polyu", "city100")):
            img, ref = load_rgb(deg), load_rgb(gt)
            cases.append(HarmCase(f"real_{deg.parent.parent.name}_{deg.stem}", f"real:{deg.parent.parent.name}",
                                  ref, img, min(img.shape[:2])))
    return cases


def run_harm(cases: list[HarmCase], out_dir: Path, graphs: dict[str, Callable[[int], Any]],
             progress: Callable[[str], None] | None = None) -> dict:
    """Restore every case with every agent variant (``graphs``: name → graph for a full side)."""
    (out_dir / "cases").mkdir(parents=True, exist_ok=True)
    rows = []
    outputs: dict[tuple[str, str], np.ndarray] = {}
    for k, case in enumerate(cases, 1):
        if progress:
            progress(f"[{k}/{len(cases)}] {case.id}")
        path = out_dir / "cases" / f"{case.id}.png"
        save_png(case.degraded, path, overwrite=True)
        before = min(50.0, psnr(match_size(case.degraded, case.clean.shape), case.clean))
        row: dict[str, Any] = {"id": case.id, "category": case.category, "input_psnr": round(before, 3)}
        for name, graph_for in graphs.items():
            t0 = time.perf_counter()
            state = graph_for(case.full_side).invoke({"image": str(path)})
            out = match_size(load_image(state["output"]).rgb, case.clean.shape)
            outputs[(case.id, name)] = out
            after = min(50.0, psnr(out, case.clean))
            row[name] = {"psnr": round(after, 3), "gain": round(after - before, 3),
                         "executions": len(state["steps"]),
                         "pipeline": [s["tool"] for s in state["steps"] if s["accepted"]],
                         "seconds": round(time.perf_counter() - t0, 2)}
        rows.append(row)
    report = {"cases": rows, "agents": list(graphs)}
    atomic_write(out_dir / "results.json", json.dumps(report, indent=1))
    write_markdown(summarize(rows, list(graphs)), out_dir / "summary.md")
    main = list(graphs)[0]
    worst = sorted(rows, key=lambda r: r[main]["gain"])[:4]
    if worst:
        panels = [np.hstack([match_size(c.degraded, c.clean.shape), outputs[(c.id, main)], c.clean])
                  for r in worst for c in cases if c.id == r["id"]]
        side = 256
        panels = [match_size(p, (side, side * 3, 3)) for p in panels]
        atomic_save_image(contact_sheet([(f"worst for {main}: input | agent | ground truth", np.vstack(panels))],
                                        height=side * len(panels)), out_dir / "contact.png")
    return report


def _category_rows(rows: list[dict]) -> list[tuple[str, list[dict]]]:
    cats: dict[str, list[dict]] = {}
    for r in rows:
        cats.setdefault(r["category"], []).append(r)
    groups = [("clean", "clean"), ("single", "single:"), ("mio", "mio:"), ("real", "real:")]
    out = []
    for label, prefix in groups:
        members = [r for r in rows if r["category"].startswith(prefix)]
        if members:
            out.append((f"**{label} (all)**", members))
    out += sorted(cats.items())
    return out


def summarize(rows: list[dict], agents: list[str]) -> str:
    lines = ["# Do no harm: the agent on photos no decision looked at", ""]
    for agent in agents:
        lines += [f"## {agent}", "", "| category | photos | mean gain (dB) | worse > 0.5 dB | worse > 1 dB | worst photo | executions |",
                  "|---|---|---|---|---|---|---|"]
        for cat, members in _category_rows(rows):
            g = np.array([r[agent]["gain"] for r in members])
            worst = min(members, key=lambda r: r[agent]["gain"])
            ex = np.mean([r[agent]["executions"] for r in members])
            lines.append(f"| {cat} | {len(g)} | {g.mean():+.2f} | {(g < -WORSE_DB).mean() * 100:.0f} % | "
                         f"{(g < -1.0).mean() * 100:.0f} % | {worst['id']} ({worst[agent]['gain']:+.2f}) | {ex:.1f} |")
        lines.append("")
    return "\n".join(lines)
