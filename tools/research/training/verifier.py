"""Train the step verifier (``tools/perception/verifier.py``) on tool outputs with a ground truth.

    python -m restoreagent.tools.research.training.verifier samples --split train --cases 600 --work W
    python -m restoreagent.tools.research.training.verifier samples --split calibration --cases 200 --work W
    python -m restoreagent.tools.research.training.verifier samples --split test --cases 200 --work W
    python -m restoreagent.tools.research.training.verifier train --work W

Splits (docs/VERIFIER.md): train = BSDS432 ``train`` + ``val`` (232 images, never used by an earlier
decision); calibration = Kodak24 + LIVE1 and the even-numbered real pairs (PolyU, City100), where the
margin is chosen; test = BSDS432 ``test`` (200) and the odd-numbered real pairs, reported only.

A case is a random crop degraded one of five ways, so that the critic sees what users have:
clean photos; **dim but correctly exposed** scenes (the clean crop darkened in linear light *is*
the ground truth, with camera noise), where brightening is harm; camera noise through a simple
camera pipeline (``realistic.camera_noise``) with mild JPEG; a single MiO degradation; a MiO
combination; with ``--dim-only``, ``--lens-only`` or ``--focus TASK``, extra dim scenes, optical softness
or MiO cases with TASK (every tool of it tried). The real
pairs of the calibration and test splits are sampled too. On each, the true tasks' tools and tools of
two false tasks are run; the best true step is kept and the next depth is sampled from there (two depths). One sample per step: the
verifier's features and ΔPSNR against the ground truth. Shards of cases are written atomically;
a rerun skips shards that exist (resumable).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np

from restoreagent.checkpoints import SHARED, checkpoint_file
from restoreagent.tools.base import DEGRADATIONS, ToolError
from restoreagent.tools.perception.assess import assess
from restoreagent.tools.perception.rules import apply_low_light_rule, trusts_network_low_light
from restoreagent.tools.perception.verifier import CLIP_DB, FEATURE_NAMES, PSNR_CAP, step_features
from restoreagent.tools.research.datasets import bsds432_files, default_clean_dir, load_rgb, random_crop
from restoreagent.tools.research.training import realistic
from restoreagent.tools.research.training.ensemble import fit_ensemble
from restoreagent.tools.util.files import atomic_write
from restoreagent.tools.util.imageio import IMAGE_SUFFIXES, to_uint8
from restoreagent.tools.util.metrics import psnr
from restoreagent.tools.util.synthesis import MIO_COMBOS, degrade, jpeg_compress

SHARD = 25
#: A task gets a margin of its own from this many calibration samples up (else the overall one).
MIN_TASK_SAMPLES = 40
#: Seeds of the --dim-only and --lens-only cases start here (apart from the ordinary cases').
DIM_SEED_OFFSET = 100_000
LENS_SEED_OFFSET = 200_000
#: Seeds of the --focus cases, per task (apart from the others').
FOCUS_SEED_OFFSET = {"low_light": 300_000, "low_resolution": 400_000}
CHECKPOINT = checkpoint_file("verifier.pt")


def focus_combos(task: str) -> tuple[tuple[str, ...], ...]:
    """The MiO cases with ``task``: the single degradation and the combinations that hold it."""
    return ((task,),) + tuple(c for c in MIO_COMBOS if task in c)


def _folder(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def clean_images(split: str, clean: Path) -> list[Path]:
    if split == "train":
        return bsds432_files(("train", "val"), clean)
    if split == "calibration":
        return _folder(clean / "kodak24") + _folder(clean / "live1")
    if split == "test":
        return bsds432_files(("test",), clean)
    raise ValueError(f"unknown split {split!r}")


REAL_SETS = {"polyu": ("noisy", "noise"), "city100": ("lr", "defocus_blur")}


def real_pairs(split: str, pairs: Path, sets: tuple[str, ...] = ("polyu",)) -> list[tuple[Path, Path, str]]:
    """(degraded, ground truth, true task) of the real pairs in ``split``: even indices calibrate, odd test."""
    out = []
    for name in sets:
        deg, task = REAL_SETS[name]
        files = _folder(pairs / name / deg)
        for i, f in enumerate(files):
            if (split == "calibration") == (i % 2 == 0):
                out.append((f, pairs / name / "gt" / f.name, task))
    return out


def _dim(clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A correctly exposed dim scene: less light in linear space, the same camera curve."""
    k = float(rng.uniform(0.12, 0.6))
    return np.power(np.power(clean, 2.2) * k, 1 / 2.2).astype(np.float32)


def _lens(clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Real optical softness, as City100's shorter focal length makes it: detail lost to a lower
    resolution and a smooth lens PSF, in linear light, maybe saved as a mild JPEG. Neither MiO's disk
    nor its line: a deblurrer fitted to those may ring or over-sharpen here, and the truth says which."""
    h, w = clean.shape[:2]
    lin = np.power(clean, 2.2)
    f = float(rng.uniform(1.1, 2.5))
    small = cv2.resize(lin, (max(8, round(w / f)), max(8, round(h / f))), interpolation=cv2.INTER_AREA)
    soft = cv2.GaussianBlur(cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC), (0, 0), float(rng.uniform(0.2, 1.2)))
    out = np.power(np.clip(soft, 0, 1), 1 / 2.2).astype(np.float32)
    return jpeg_compress(out, int(rng.integers(70, 96))) if rng.random() < 0.5 else out


def synthesize(clean: np.ndarray, rng: np.random.Generator, dim_only: bool = False, lens_only: bool = False,
               focus: str | None = None) -> tuple[np.ndarray, np.ndarray, tuple[str, ...], str]:
    """(degraded, ground truth, true tasks, kind) for one case (``dim_only``: a dim scene; ``lens_only``:
    optical softness; ``focus``: a MiO case with that degradation)."""
    if lens_only:
        return _lens(clean, rng), clean, ("defocus_blur",), "lens"
    if focus:
        combos = focus_combos(focus)
        combo = combos[int(rng.integers(len(combos)))]
        degraded, _ = degrade(clean, combo, seed=int(rng.integers(2**31)))
        return degraded, clean, combo, "single" if len(combo) == 1 else "mio"
    u = float(rng.uniform(0.12, 0.3)) if dim_only else rng.random()
    if u < 0.12:
        return clean, clean, (), "clean"
    if u < 0.3:
        ref, tasks = _dim(clean, rng), ()
        kind = "dim"
        if rng.random() < 0.8:
            noisy, ref = realistic.camera_noise(ref, rng)
            return _maybe_jpeg(noisy, ref, ("noise",), kind, rng)
        return ref, ref, tasks, kind
    if u < 0.45:
        noisy, ref = realistic.camera_noise(clean, rng)
        return _maybe_jpeg(noisy, ref, ("noise",), "camera", rng)
    if u < 0.75:
        combo: tuple[str, ...] = (DEGRADATIONS[int(rng.integers(len(DEGRADATIONS)))],)
        kind = "single"
    else:
        combo, kind = MIO_COMBOS[int(rng.integers(len(MIO_COMBOS)))], "mio"
    degraded, _ = degrade(clean, combo, seed=int(rng.integers(2**31)))
    return degraded, clean, combo, kind


def _maybe_jpeg(img, ref, tasks, kind, rng):
    if rng.random() < 0.5:
        img = jpeg_compress(img, int(rng.integers(60, 96)))
    return img, ref, tasks, kind


def _psnr(img: np.ndarray, ref: np.ndarray) -> float:
    from restoreagent.tools.research.evaluation.oracle import match_size

    return min(PSNR_CAP, psnr(match_size(img, ref.shape), ref))


def _run(tool, image):
    try:
        return tool(image, tool.Args(image_id="img-0000000000000000"))
    except ToolError:
        return None


def sample_case(degraded: np.ndarray, ref: np.ndarray, tasks: tuple[str, ...], tools_by_task: dict,
                tools: dict, rng: np.random.Generator, side: int, depths: int = 2,
                all_tools: bool = False, always: tuple[str, ...] = ()) -> list[dict]:
    """Samples from the steps tried on one case (see the module docstring); every tool of the
    tasks in ``always`` is tried at every depth as well (a true task's too, after it was done)."""
    def report(img, trust):
        return apply_low_light_rule(assess(img, full_resolution_side=side), trust).model_dump()

    first = assess(degraded, full_resolution_side=side)
    trust = trusts_network_low_light(first)
    cur, cur_rep = degraded, apply_low_light_rule(first, trust).model_dump()
    cur_psnr, done, rows = _psnr(degraded, ref), set(), []
    for depth in range(depths):
        remaining = [t for t in tasks if t not in done and t in tools_by_task]
        false = [t for t in tools_by_task if t not in tasks]
        picks = []
        for t in remaining:
            names = tools_by_task[t]
            picks += [(t, n) for n in (names if all_tools else rng.permutation(names)[:2])]
        for t in (false if all_tools else rng.permutation(false)[:2 if depth == 0 else 1]):
            names = tools_by_task[t]
            picks += [(t, n) for n in (names[:1] if all_tools else [names[int(rng.integers(len(names)))]])]
        picks += [(t, n) for t in always if t in tools_by_task
                  for n in tools_by_task[t] if (t, n) not in picks]
        best = None
        for task, name in picks:
            out = _run(tools[name], cur)
            if out is None:
                continue
            rep = report(out, trust)
            gain = _psnr(out, ref) - cur_psnr
            rows.append({"features": step_features(cur, out, task, cur_rep, rep).tolist(), "gain": gain,
                         "task": task, "tool": name, "true_task": task in tasks, "depth": depth})
            if task in tasks and gain > 0 and (best is None or gain > best[0]):
                best = (gain, task, out, rep)
        if best is None:
            break
        cur_psnr, done = cur_psnr + best[0], done | {best[1]}
        cur, cur_rep = best[2], best[3]
    return rows


def _toolbox(weights_dir: Path | None):
    from restoreagent.graph.configuration import Configuration
    from restoreagent.graph.toolbox import Toolbox
    from restoreagent.tools import default_registry

    return Toolbox(default_registry, Configuration(weights_dir=weights_dir, device="cpu"))


def cmd_samples(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(1)
    clean_dir = Path(args.clean_dir) if args.clean_dir else default_clean_dir()
    toolbox = _toolbox(Path(args.weights_dir) if args.weights_dir else None)
    tools, by_task = toolbox.tools, toolbox.tools_by_task()
    out = Path(args.work) / "samples" / args.split
    out.mkdir(parents=True, exist_ok=True)
    files = clean_images(args.split, clean_dir)
    t_end = time.time() + args.minutes * 60 if args.minutes else float("inf")
    shards = range(args.shard_start, (args.cases + SHARD - 1) // SHARD, args.shard_step)
    # --dim-only: extra cases of dim, correctly exposed scenes with every low-light tool tried at each
    # depth (after denoising too), where brightening is harm; --focus TASK: MiO cases with TASK and every
    # tool of it tried at each depth (low_light: the dim scenes' counterweight, tried and not kept;
    # low_resolution: sr_ours, which came after the ordinary cases); --lens-only: optical softness with both
    # deblurring tasks tried; each with its own seeds and shard names.
    prefix, offset, always = (("dim", DIM_SEED_OFFSET, ("low_light",)) if args.dim_only
                              else (f"focus-{args.focus}", FOCUS_SEED_OFFSET[args.focus], (args.focus,)) if args.focus
                              else ("lens", LENS_SEED_OFFSET, ("motion_blur",)) if args.lens_only else ("shard", 0, ()))
    for shard in shards:
        path = out / f"{prefix}-{shard:04d}.json"
        if path.exists() or time.time() > t_end:
            continue
        rows = []
        for i in range(shard * SHARD, min(args.cases, (shard + 1) * SHARD)):
            rng = np.random.default_rng([{"train": 1, "calibration": 2, "test": 3}[args.split], i + offset])
            img = load_rgb(files[int(rng.integers(len(files)))])
            side = int(rng.choice([160, 192, 256]))
            clean = random_crop(img, side, rng)
            degraded, ref, tasks, kind = synthesize(clean, rng, dim_only=args.dim_only, lens_only=args.lens_only,
                                                    focus=args.focus)
            degraded = to_uint8(degraded).astype(np.float32) / 255.0
            for r in sample_case(degraded, ref, tasks, by_task, tools, rng, side, always=always):
                rows.append({**r, "case": i, "kind": kind})
        atomic_write(path, json.dumps(rows))
        print(f"{args.split} shard {shard}: {len(rows)} samples", flush=True)
    if args.split != "train" and args.real_pairs and not (args.dim_only or args.lens_only or args.focus):
        _real_samples(args, toolbox, out)


#: Tone steps tried at every depth of a real pair: on real photos they did the worst harm (a dim
#: indoor shot brightened after denoising loses 20-30 dB), so calibration must see them where the agent goes.
REAL_ALWAYS = ("low_light", "haze")


def _real_samples(args, toolbox, out: Path) -> None:
    """On each real pair of the split, two depths as the agent goes: two tools of the true task, one of
    each of two false tasks and every tone tool (:data:`REAL_ALWAYS`); the next depth from the best true step."""
    pairs, by_task = Path(args.real_pairs), toolbox.tools_by_task()
    for n, (deg, gt, task) in enumerate(real_pairs(args.split, pairs, ("polyu", "city100"))):
        path = out / f"pair-{n:04d}.json"
        if path.exists():
            continue
        img, ref = load_rgb(deg), load_rgb(gt)
        rng = np.random.default_rng(n)
        rows = [{**r, "case": f"real:{deg.parent.parent.name}/{deg.name}", "kind": f"real_{task}"}
                for r in sample_case(img, ref, (task,), by_task, toolbox.tools, rng,
                                     max(512, min(img.shape[:2])), depths=2, always=REAL_ALWAYS)]
        atomic_write(path, json.dumps(rows))
        print(f"real {deg.name}: {len(rows)} samples", flush=True)


def load_samples(work: Path, split: str) -> list[dict]:
    rows = []
    for p in sorted((work / "samples" / split).glob("*.json")):
        rows += json.loads(p.read_text())
    return rows


def _arrays(rows):
    x = np.asarray([r["features"] for r in rows], np.float32)
    y = np.clip(np.asarray([r["gain"] for r in rows], np.float32), -CLIP_DB, CLIP_DB)
    return x, y


def utility(gains: np.ndarray, accept: np.ndarray) -> float:
    """What the accepted steps did, harm counting double (do no harm first)."""
    g = gains[accept]
    return float(np.where(g > 0, g, 2 * g).sum())


def choose_margin(gains: np.ndarray, score: np.ndarray) -> float:
    """The margin on the calibration samples' scores with the best :func:`utility` (grid −0.5…3 dB).

    Among margins equally good, the most cautious: no calibration step lies between them, so nothing
    there says that the steps a lower margin would also accept are safe."""
    grid = np.round(np.arange(-0.5, 3.01, 0.05), 2)
    return float(max(grid, key=lambda t: (round(utility(gains, score > t), 6), t)))


def cmd_train(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads)
    work = Path(args.work)
    xtr, ytr = _arrays(load_samples(work, "train"))

    def loss(out, target):
        pred = out.squeeze(-1)
        # a wrong sign (accept a harmful step, or reject a helpful one) costs double
        w = 1.0 + (torch.sign(pred) != torch.sign(target)).float()
        return (w * torch.nn.functional.huber_loss(pred, target, delta=0.1, reduction="none")).mean()

    mean, std, members = fit_ensemble(xtr, ytr / CLIP_DB, args.hidden, 1, args.members, args.epochs, 256, loss)
    ckpt = {"features": list(FEATURE_NAMES), "mean": torch.as_tensor(mean), "std": torch.as_tensor(std),
            "members": members, "hidden": args.hidden, "margin": 0.0, "risk": args.risk}
    out = Path(args.out)
    torch.save(ckpt, out)
    from restoreagent.tools.perception.verifier import Verifier

    verifier = Verifier(out)
    calibration = load_samples(work, "calibration")
    xc, yc = _arrays(calibration)
    mc, sc = verifier.predict(xc)
    score = mc - args.risk * sc
    # Margins are chosen on the calibration split only: the best utility over a grid, overall and per
    # task where the task has enough samples (a tone step that ruins a real dim photo costs 20-30 dB,
    # a deblurring step rarely more than 3: one margin for both serves neither).
    margin = choose_margin(yc, score)
    tasks = np.asarray([r["task"] for r in calibration])
    margins = {str(task): choose_margin(yc[tasks == task], score[tasks == task])
               for task in sorted(set(tasks)) if (tasks == task).sum() >= MIN_TASK_SAMPLES}
    ckpt["margin"], ckpt["margins"] = margin, margins
    torch.save(ckpt, out)
    verifier = Verifier(out)

    def accepts(rows, mean, spread):
        return mean - args.risk * spread > np.asarray([verifier.margin_for(r["task"]) for r in rows])

    report = {"train_samples": len(ytr), "calibration_samples": len(yc), "margin_db": margin,
              "task_margins_db": margins, "risk": args.risk,
              "calibration": evaluate(yc, accepts(calibration, mc, sc), calibration, mc)}
    if (work / "samples" / "test").is_dir():
        rows = load_samples(work, "test")
        xs, ys = _arrays(rows)
        ms, ss = verifier.predict(xs)
        report["test"] = evaluate(ys, accepts(rows, ms, ss), rows, ms)
    ckpt["report"] = json.dumps(report)
    torch.save(ckpt, out)
    atomic_write(out.with_suffix(".json"), json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))


def evaluate(gains: np.ndarray, accept: np.ndarray, rows: list[dict], predicted: np.ndarray | None = None) -> dict:
    """Accuracy of accept/reject against the sign of the true ΔPSNR, overall and per kind of case
    (and, given ``predicted``, of the sign of the predicted ΔPSNR itself, with no margin)."""
    def stats(mask):
        g, a = gains[mask], accept[mask]
        if not len(g):
            return {}
        extra = {} if predicted is None else {"predicted_sign_accuracy": round(float(((g > 0) == (predicted[mask] > 0)).mean()), 4)}
        return {"n": int(len(g)), "sign_accuracy": round(float(((g > 0) == a).mean()), 4), **extra,
                "accepted": int(a.sum()), "harmful_accepted": int((a & (g < -0.5)).sum()),
                "helpful_rejected": int((~a & (g > 0.5)).sum()),
                "gain_accepted_db": round(float(g[a].sum()), 1), "gain_all_positive_db": round(float(g[g > 0].sum()), 1)}

    kinds = np.asarray([r["kind"] for r in rows])
    out = {"all": stats(np.ones(len(gains), bool)),
           "clear (|gain| >= 0.1 dB)": stats(np.abs(gains) >= 0.1)}
    for k in sorted(set(kinds)):
        out[k] = stats(kinds == k)
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("samples", help="run tools on synthesized cases of a split; resumable")
    s.add_argument("--split", choices=("train", "calibration", "test"), required=True)
    s.add_argument("--cases", type=int, default=600)
    s.add_argument("--work", required=True)
    s.add_argument("--clean-dir")
    s.add_argument("--weights-dir", default=str(SHARED / "weights"))
    s.add_argument("--real-pairs", default=str(SHARED / "data" / "pairs"))
    s.add_argument("--minutes", type=float, default=0.0, help="stop starting shards after this long (0: no limit)")
    s.add_argument("--shard-start", type=int, default=0, help="with --shard-step: run every k-th shard (parallel workers)")
    s.add_argument("--shard-step", type=int, default=1)
    s.add_argument("--dim-only", action="store_true", help="extra dim-scene cases, every low-light tool tried")
    s.add_argument("--lens-only", action="store_true", help="extra optical-softness cases, both deblurring tasks tried")
    s.add_argument("--focus", choices=tuple(FOCUS_SEED_OFFSET),
                   help="extra MiO cases with this degradation, every tool of it tried at each depth")
    t = sub.add_parser("train", help="train the ensemble, choose the margin on calibration, report test")
    t.add_argument("--work", required=True)
    t.add_argument("--out", default=str(CHECKPOINT))
    t.add_argument("--members", type=int, default=5)
    t.add_argument("--hidden", type=int, default=96)
    t.add_argument("--epochs", type=int, default=60)
    t.add_argument("--risk", type=float, default=0.5)
    t.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    {"samples": cmd_samples, "train": cmd_train}[args.cmd](args)


if __name__ == "__main__":
    main()
