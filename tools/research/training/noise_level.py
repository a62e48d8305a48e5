"""Train the denoising-strength regressor (``tools/perception/noise_level.py``): the best FFDNet σ and its gain.

    python -m restoreagent.tools.research.training.noise_level samples --split train --cases 480 --work W
    python -m restoreagent.tools.research.training.noise_level samples --split calibration --cases 160 --work W
    python -m restoreagent.tools.research.training.noise_level train --work W

Splits are the verifier's (``tools/research/training/verifier.py``, docs/VERIFIER.md): train crops come from
BSDS432 train + val, calibration from Kodak24 + LIVE1 and the even-numbered PolyU pairs, and the
test split (BSDS432 test, odd PolyU pairs) is only reported by the harm benchmark.

A case is a random crop made one of five ways: clean; white (MiO) noise; camera noise through a raw
pipeline (demosaicking, white balance, tone curve, optional sharpening) with JPEG half the time; a
dim, correctly exposed scene with camera noise; JPEG only. FFDNet is run at every σ of :data:`GRID`
and the best σ (0 = leave the photo alone) and its ΔPSNR against the ground truth are the targets.
Shards are written atomically; a rerun skips those that exist.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from restoreagent.checkpoints import SHARED
from restoreagent.tools.perception.noise_level import (
    CHECKPOINT_HIDDEN,
    DEFAULT_CHECKPOINT,
    FEATURE_NAMES,
    GAIN_SCALE,
    noise_features,
)
from restoreagent.tools.research.datasets import default_clean_dir, load_rgb, random_crop
from restoreagent.tools.research.training import realistic
from restoreagent.tools.research.training.ensemble import fit_ensemble
from restoreagent.tools.research.training.verifier import _dim, _toolbox, clean_images, real_pairs
from restoreagent.tools.util.files import atomic_write
from restoreagent.tools.util.imageio import to_uint8
from restoreagent.tools.util.metrics import psnr
from restoreagent.tools.util.synthesis import degrade, jpeg_compress

SHARD = 40
#: FFDNet σ tried per case (0-255); 0 stands for "no denoising".
GRID = (0.0, 1.5, 3.0, 5.0, 7.0, 10.0, 13.0, 17.0, 22.0, 30.0, 42.0, 60.0)


def synthesize(clean: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, str]:
    u = rng.random()
    if u < 0.15:
        return clean, clean, "clean"
    if u < 0.35:
        return degrade(clean, ("noise",), seed=int(rng.integers(2**31)))[0], clean, "white"
    if u < 0.85:
        ref, kind = (_dim(clean, rng), "dim") if u >= 0.7 else (clean, "camera")
        noisy, ref = realistic.camera_noise(ref, rng)
        if rng.random() < 0.5:
            noisy = jpeg_compress(noisy, int(rng.integers(60, 98)))
        return noisy, ref, kind
    return jpeg_compress(clean, int(rng.integers(30, 96))), clean, "jpeg"


def label(image: np.ndarray, ref: np.ndarray, ffdnet) -> tuple[float, float]:
    """(best σ, its ΔPSNR) over :data:`GRID` for FFDNet on ``image``."""
    base = psnr(image, ref)
    gains = [0.0] + [psnr(ffdnet(image, ffdnet.Args(image_id="img-0000000000000000", sigma=s)), ref) - base
                     for s in GRID[1:]]
    best = int(np.argmax(gains))
    return GRID[best], float(gains[best])


def cmd_samples(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(1)
    ffdnet = _toolbox(Path(args.weights_dir)).tools["denoise_ffdnet"]
    out = Path(args.work) / "samples" / args.split
    out.mkdir(parents=True, exist_ok=True)
    files = clean_images(args.split, Path(args.clean_dir) if args.clean_dir else default_clean_dir())
    for shard in range(args.shard_start, (args.cases + SHARD - 1) // SHARD, args.shard_step):
        path = out / f"shard-{shard:04d}.json"
        if path.exists():
            continue
        rows = []
        for i in range(shard * SHARD, min(args.cases, (shard + 1) * SHARD)):
            rng = np.random.default_rng([{"train": 11, "calibration": 12, "test": 13}[args.split], i])
            crop = random_crop(load_rgb(files[int(rng.integers(len(files)))]), int(rng.choice([128, 160, 192])), rng)
            noisy, ref, kind = synthesize(crop, rng)
            noisy = to_uint8(noisy).astype(np.float32) / 255.0
            sigma, gain = label(noisy, ref, ffdnet)
            rows.append({"features": noise_features(noisy).tolist(), "sigma": sigma, "gain": gain, "kind": kind})
        atomic_write(path, json.dumps(rows))
        print(f"{args.split} shard {shard}: {len(rows)} cases", flush=True)
    if args.split == "calibration" and args.real_pairs:
        path = out / "real-polyu.json"
        if not path.exists():
            rows = []
            for deg, gt, _ in real_pairs("calibration", Path(args.real_pairs)):
                noisy, ref = load_rgb(deg), load_rgb(gt)
                sigma, gain = label(noisy, ref, ffdnet)
                rows.append({"features": noise_features(noisy).tolist(), "sigma": sigma, "gain": gain,
                             "kind": "real_polyu", "photo": deg.name})
                print(f"{deg.name}: best σ {sigma:g}, {gain:+.2f} dB", flush=True)
            atomic_write(path, json.dumps(rows))


def _load(work: Path, split: str) -> list[dict]:
    rows = []
    for p in sorted((work / "samples" / split).glob("*.json")):
        rows += json.loads(p.read_text())
    return rows


def _targets(rows: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray([r["features"] for r in rows], np.float32)
    y = np.asarray([[np.log1p(r["sigma"]), min(r["gain"], 2 * GAIN_SCALE) / GAIN_SCALE] for r in rows], np.float32)
    return x, y


def report(rows: list[dict], model) -> dict:
    """Per kind: the σ error (in log₂ units), and the gain FFDNet reaches at the predicted σ is not
    known without rerunning it, so the gain head's error and the share of "no gain" cases it flags."""
    x, _ = _targets(rows)
    sigma, gain = model.predict(x)
    out = {}
    for kind in sorted({r["kind"] for r in rows}) + ["all"]:
        idx = [i for i, r in enumerate(rows) if kind in ("all", r["kind"])]
        true_s = np.asarray([rows[i]["sigma"] for i in idx])
        true_g = np.asarray([rows[i]["gain"] for i in idx])
        out[kind] = {"n": len(idx),
                     "sigma_log2_error": round(float(np.abs(np.log2((sigma[idx] + 1) / (true_s + 1))).mean()), 3),
                     "gain_error_db": round(float(np.abs(gain[idx] - true_g).mean()), 3),
                     "true_gain_db": round(float(true_g.mean()), 3)}
    return out


def cmd_train(args: argparse.Namespace) -> None:
    import torch

    from restoreagent.tools.perception.noise_level import NoiseLevel

    torch.set_num_threads(args.threads)
    work = Path(args.work)
    xtr, ytr = _targets(_load(work, "train"))
    mean, std, members = fit_ensemble(
        xtr, ytr, CHECKPOINT_HIDDEN, 2, args.members, args.epochs, 128,
        lambda pred, target: torch.nn.functional.huber_loss(pred, target, delta=0.2))
    ckpt = {"features": list(FEATURE_NAMES), "mean": torch.as_tensor(mean), "std": torch.as_tensor(std),
            "members": members, "hidden": CHECKPOINT_HIDDEN}
    out = Path(args.out)
    torch.save(ckpt, out)
    model = NoiseLevel(out)
    figures = {"train_cases": len(xtr), "grid": list(GRID), "calibration": report(_load(work, "calibration"), model)}
    atomic_write(out.with_suffix(".json"), json.dumps(figures, indent=1))
    print(json.dumps(figures, indent=1))


def main(argv: list[str] | None = None) -> None:
    shared = SHARED
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("samples", help="label synthesized crops of a split with FFDNet's best σ; resumable")
    s.add_argument("--split", choices=("train", "calibration", "test"), required=True)
    s.add_argument("--cases", type=int, default=480)
    s.add_argument("--work", required=True)
    s.add_argument("--clean-dir")
    s.add_argument("--weights-dir", default=str(shared / "weights"))
    s.add_argument("--real-pairs", default=str(shared / "data" / "pairs"))
    s.add_argument("--shard-start", type=int, default=0)
    s.add_argument("--shard-step", type=int, default=1)
    t = sub.add_parser("train", help="train the ensemble and report on the calibration split")
    t.add_argument("--work", required=True)
    t.add_argument("--out", default=str(DEFAULT_CHECKPOINT))
    t.add_argument("--members", type=int, default=3)
    t.add_argument("--epochs", type=int, default=150)
    t.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    {"samples": cmd_samples, "train": cmd_train}[args.cmd](args)


if __name__ == "__main__":
    main()
