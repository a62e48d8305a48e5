"""Would NIQE make the observe node's verdict better? A study on the train split.

The graph observes NIQE after every step (``measures["niqe"]``, and ``Step.niqe_before`` /
``niqe_after``), but its verdict (:func:`restoreagent.graph.nodes.judge`) reads the residual
severities and the quality score only. This runs the default agent on MiO cases made from the train
split's images (a 256² centre crop each, the 16 combinations cycling, as in
:func:`~restoreagent.tools.research.evaluation.benchmark.synthesize_cases`), scores every accepted step
against the ground truth, and prints, for the rule "roll back a step that raised NIQE by more than
t", how many harmful (< −0.3 dB) and helpful (> +0.3 dB) steps it would have rolled back, and the
PSNR change those steps made (first order: the later steps are taken as they were); then the agent's
mean gain end to end, without the veto and with each limit (``Configuration.niqe_rise_limit``).

Measured (docs/BENCHMARKS.md, "NIQE in the verdict"): a little better on the train split, worse on
every held-out set, so the veto is off by default.

``python -m restoreagent.tools.research.evaluation.niqe_study [--clean DIR] [--weights-dir DIR] [--limit N]``
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from restoreagent.graph.store import ArtifactStore
from restoreagent.tools.research.datasets import default_clean_dir, load_rgb, split_files
from restoreagent.tools.research.evaluation.benchmark import synthesize_cases
from restoreagent.tools.research.evaluation.oracle import match_size
from restoreagent.tools.util.imageio import save_png
from restoreagent.tools.util.metrics import psnr

CROP = 256
THRESHOLDS = (0.5, 1.0, 1.5, 2.0, 3.0)
#: A step counts as harmful or helpful beyond this PSNR change (dB).
CLEAR = 0.3


def run_cases(clean_dir: Path, weights_dir: Path | None, limit: int | None, work: Path,
              limits: tuple[float | None, ...]) -> dict[float | None, list[dict]]:
    """Per NIQE rise limit (None: no veto), per case: the restored PSNR and every accepted tool step
    with its PSNR change against the ground truth and NIQE before and after (None where unread)."""
    from restoreagent.graph.configuration import Configuration
    from restoreagent.graph.graph import build_graph
    from restoreagent.graph.toolbox import Toolbox
    from restoreagent.tools import default_registry

    config = Configuration.from_env(weights_dir=weights_dir, work_dir=work / "runs",
                                    full_resolution_side=CROP)  # the protocol's full resolution
    toolbox = Toolbox(default_registry, config)
    images = [(p.stem, rgb) for p in split_files("train", clean_dir) if min((rgb := load_rgb(p)).shape[:2]) >= CROP]
    images = images[:limit]
    cases = [(case.id, case.clean, save_png(case.degraded, work / f"{case.id}.png"))
             for case in synthesize_cases(images, len(images), CROP, seed=0)]
    out: dict[float | None, list[dict]] = {}
    for limit_ in limits:
        graph = build_graph(config.model_copy(update={"niqe_rise_limit": limit_}), toolbox=toolbox)
        out[limit_] = []
        for n, (name, clean, photo) in enumerate(cases, 1):
            state = graph.invoke({"image": str(photo)})
            store = ArtifactStore(state["run_dir"])

            def score(image_id: str) -> float:
                return psnr(match_size(store.get(image_id), clean.shape), clean)

            steps = [{"tool": s["tool"], "dpsnr": score(s["output_id"]) - score(s["input_id"]),
                      "niqe": (s["niqe_before"], s["niqe_after"])}
                     for s in state["steps"] if s["accepted"] and s["task"] != "undo"]
            out[limit_].append({"case": name, "psnr": score(state["current_id"]),
                                "input": psnr(match_size(load_rgb(photo), clean.shape), clean), "steps": steps})
            print(f"[limit {limit_}] [{n}/{len(cases)}] {name}", flush=True)
    return out


def veto_table(rows: list[dict]) -> list[str]:
    """Markdown rows: what the veto at each threshold would have rolled back."""
    read = [r for r in rows if None not in r["niqe"]]
    lines = [f"accepted steps: {len(rows)}, with NIQE on both sides: {len(read)}", "",
             "| veto: NIQE rose by more than | steps rolled back | harmful among them (dB) | helpful among them (dB) | "
             "PSNR change of all of them (dB) |", "|---|---|---|---|---|"]
    for t in THRESHOLDS:
        hit = [r for r in read if r["niqe"][1] - r["niqe"][0] > t]
        harm = [r["dpsnr"] for r in hit if r["dpsnr"] < -CLEAR]
        help_ = [r["dpsnr"] for r in hit if r["dpsnr"] > CLEAR]
        lines.append(f"| {t:g} | {len(hit)} | {len(harm)} ({sum(harm):+.2f}) | {len(help_)} ({sum(help_):+.2f}) | "
                     f"{sum(r['dpsnr'] for r in hit):+.2f} |")
    harmful = [r["niqe"][1] - r["niqe"][0] for r in read if r["dpsnr"] < -CLEAR]
    helpful = [r["niqe"][1] - r["niqe"][0] for r in read if r["dpsnr"] > CLEAR]
    if harmful and helpful:
        lines += ["", f"median NIQE change: harmful steps {np.median(harmful):+.2f} ({len(harmful)}), "
                      f"helpful steps {np.median(helpful):+.2f} ({len(helpful)})"]
    return lines


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clean", type=Path, default=None, help="clean images (default: ../shared/data/clean)")
    ap.add_argument("--weights-dir", type=Path, default=None, help="pretrained weights, NIQE's parameters among them")
    ap.add_argument("--limit", type=int, default=None, help="at most N train images (quick check)")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="niqe-study-") as tmp:
        runs = run_cases(args.clean or default_clean_dir(), args.weights_dir, args.limit, Path(tmp),
                         (None, *THRESHOLDS))
    print("\n".join(veto_table([s for case in runs[None] for s in case["steps"]])))
    print("\n| NIQE rise limit | mean gain over the input (dB), end to end | accepted steps |\n|---|---|---|")
    for limit_, cases in runs.items():
        gain = np.mean([c["psnr"] - c["input"] for c in cases])
        print(f"| {'none' if limit_ is None else f'{limit_:g}'} | {gain:+.3f} | {sum(len(c['steps']) for c in cases)} |")


if __name__ == "__main__":
    main()
