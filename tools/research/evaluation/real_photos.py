"""``restoreagent bench-real``: the agent on real degraded photos.

The MiO benchmark (:mod:`.benchmark`) has ground truth but synthetic degradations. Real photos
have the opposite, so this reports what can be measured without a reference, per folder of
``shared/data/real``:

* whether the assessor finds the degradation the folder is known for (``tools.research.evaluation.perception.REAL_SETS``);
* which tools the agent ran (accepted) and how many it rolled back;
* NIQE (lower is better; :func:`tools.perception.niqe.niqe`) of the photo and of the result. NIQE rewards
  natural-looking detail and is only a rough guide: it is not what the agent optimises (its
  observe node uses the assessor), and after ×4 super-resolution it compares images of different size;
* for the folders with pairs (``rain_pairs``: ``input/`` and ``target/``), PSNR and SSIM against the target.

Outputs in ``--out``: ``results.json`` (per photo), ``summary.md`` (per folder) and
``contact.png`` (one photo per folder: input | restored), plus the restored photos in ``restored/``.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PIL import Image

from restoreagent.graph.api import restore
from restoreagent.tools.perception.niqe import niqe, niqe_params
from restoreagent.tools.research.evaluation.perception import REAL_SETS
from restoreagent.tools.research.evaluation.toolbench import write_markdown
from restoreagent.tools.util.figures import contact_sheet, stack_rows
from restoreagent.tools.util.files import atomic_save_image, atomic_write
from restoreagent.tools.util.imageio import IMAGE_SUFFIXES, load_image
from restoreagent.tools.util.metrics import psnr, ssim

#: Folders with a known degradation, plus the mixed ones (known: None) and the pairs.
FOLDERS: dict[str, str | None] = {**REAL_SETS, "mixed_diffbir/real47": None, "rain_pairs/input": "rain"}
#: Folders whose photos have a reference in a sibling folder.
TARGETS = {"rain_pairs/input": "rain_pairs/target"}


@dataclass(frozen=True)
class RealCase:
    folder: str
    path: Path
    known: str | None
    target: Path | None


def find_cases(real_dir: Path, per_folder: int) -> list[RealCase]:
    """Up to ``per_folder`` photos of each folder of ``real_dir``, evenly spaced in name order."""
    if not real_dir.is_dir():
        raise FileNotFoundError(f"{real_dir} is not a folder of real photos (expected e.g. ../shared/data/real)")
    cases = []
    for folder, known in FOLDERS.items():
        d = real_dir / folder
        paths = sorted(p for p in d.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) if d.is_dir() else []
        if not paths:
            continue
        pick = np.unique(np.linspace(0, len(paths) - 1, min(per_folder, len(paths))).round().astype(int))
        for i in pick:
            target = real_dir / TARGETS[folder] / paths[i].name if folder in TARGETS else None
            cases.append(RealCase(folder, paths[i], known, target if target and target.is_file() else None))
    if not cases:
        raise FileNotFoundError(f"no photos in the known folders of {real_dir} ({', '.join(FOLDERS)})")
    return cases


def _niqe(rgb: np.ndarray, params) -> float | None:
    if params is None:
        return None
    try:
        return round(niqe(rgb, *params), 3)
    except ValueError:  # smaller than two 96×96 blocks
        return None


def run_real(cases: list[RealCase], out_dir: Path, graph: Any, weights_dir: Path | None,
             progress: Callable[[str], None] = lambda m: None) -> dict:
    """Restore every case with ``graph``; write results.json, summary.md, contact.png and restored/."""
    restored_dir = out_dir / "restored"
    restored_dir.mkdir(parents=True, exist_ok=True)
    params = niqe_params(weights_dir)
    rows, sheet_rows = [], {}
    for i, case in enumerate(cases, 1):
        progress(f"[{i}/{len(cases)}] {case.folder}/{case.path.name}")
        before = load_image(case.path).rgb
        t0 = time.perf_counter()
        result = restore(case.path, restored_dir / f"{case.folder.replace('/', '_')}__{case.path.stem}.png",
                         overwrite=True, graph=graph)
        seconds = time.perf_counter() - t0
        after = load_image(result.output).rgb
        found = [k for k, v in result.degradations_before.items() if v >= 0.2]
        row: dict[str, Any] = {
            "folder": case.folder, "photo": case.path.name, "size": list(before.shape[:2]),
            "known": case.known, "found": sorted(found, key=lambda k: -result.degradations_before[k]),
            "detected": None if case.known is None else case.known in found,
            "pipeline": [s.tool for s in result.accepted_steps],
            "rolled_back": [s.tool for s in result.steps if not s.accepted],
            "output_size": list(after.shape[:2]), "seconds": round(seconds, 2),
            "niqe_before": _niqe(before, params), "niqe_after": _niqe(after, params),
        }
        if case.target is not None:
            ref = load_image(case.target).rgb
            row["psnr_before"], row["ssim_before"] = round(psnr(before, ref), 2), round(ssim(before, ref), 4)
            if after.shape == ref.shape:
                row["psnr_after"], row["ssim_after"] = round(psnr(after, ref), 2), round(ssim(after, ref), 4)
        rows.append(row)
        if case.folder not in sheet_rows:
            sheet_rows[case.folder] = (before, after, row)
    report = {"photos": rows, "niqe": params is not None}
    atomic_write(out_dir / "results.json", json.dumps(report, indent=1))
    write_markdown(summarize(rows), out_dir / "summary.md")
    atomic_save_image(_contact(sheet_rows), out_dir / "contact.png")
    return report


def _contact(sheet_rows: dict[str, tuple[np.ndarray, np.ndarray, dict]]) -> Image.Image:
    """One row per folder: the photo and the agent's result, side by side."""
    rows = []
    for folder, (before, after, row) in sheet_rows.items():
        steps = " > ".join(row["pipeline"]) or "left as is"  # the default font has no arrow glyph
        rows.append(contact_sheet([(f"{folder}: {row['photo']}", before), (steps, after)], height=240))
    return stack_rows(rows)


def _mean(values: list[float | None]) -> str:
    kept = [v for v in values if v is not None]
    return f"{np.mean(kept):.2f}" if kept else "—"


def summarize(rows: list[dict]) -> str:
    lines = ["# The agent on real photos", "",
             "| folder | photos | known degradation | found | pipelines (most common) | roll-backs | "
             "NIQE before → after | seconds per photo |",
             "|---|---|---|---|---|---|---|---|"]
    for folder in dict.fromkeys(r["folder"] for r in rows):
        rs = [r for r in rows if r["folder"] == folder]
        known = rs[0]["known"]
        found = f"{sum(bool(r['detected']) for r in rs)}/{len(rs)}" if known else \
            ", ".join(f"{k} {n}" for k, n in Counter(k for r in rs for k in r["found"]).most_common(3))
        pipes = Counter(" → ".join(r["pipeline"]) or "(none)" for r in rs).most_common(2)
        lines.append(f"| {folder} | {len(rs)} | {known or 'mixed'} | {found} | "
                     + "; ".join(f"{p} ×{n}" for p, n in pipes)
                     + f" | {sum(len(r['rolled_back']) for r in rs)} | "
                     f"{_mean([r['niqe_before'] for r in rs])} → {_mean([r['niqe_after'] for r in rs])} | "
                     f"{_mean([r['seconds'] for r in rs])} |")
    pairs = [r for r in rows if "psnr_before" in r]
    if pairs:
        lines += ["", "Pairs with a reference (PSNR dB / SSIM):", "",
                  "| photo | before | after | pipeline |", "|---|---|---|---|"]
        for r in pairs:
            after = f"{r['psnr_after']:.2f} / {r['ssim_after']:.3f}" if "psnr_after" in r else "(size changed)"
            lines.append(f"| {r['folder']}/{r['photo']} | {r['psnr_before']:.2f} / {r['ssim_before']:.3f} | {after} | "
                         f"{' → '.join(r['pipeline']) or '(none)'} |")
    return "\n".join(lines) + "\n"
