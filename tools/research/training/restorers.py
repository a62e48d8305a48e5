"""Train our compact restorers (motion deblurring, defocus deblurring, colour JPEG, super-resolution).

    python -m restoreagent.tools.research.training.restorers --task motion_blur --minutes 20

* Data: random crops of the ``train`` split (CBSD68, Set14, Set5; never ``eval``),
  flipped/rotated, degraded on the fly with the MiO parameters of
  :mod:`restoreagent.tools.util.synthesis` (70 % of samples) or a slightly wider range
  (30 %, for robustness). Super-resolution also trains on BSDS432 ``train`` + ``val`` (the
  varied set, never its ``test`` part): ×1/4 (70 %) or ×1/2, a mild JPEG on a quarter of them.
* Loss: Charbonnier; Adam with a cosine learning-rate schedule over the *training
  time* (``--minutes``), so a run that is cut off and resumed follows the same schedule.
* Resumable: the full state (model, optimizer, step, elapsed time, RNG states) is
  written atomically to ``--work`` every ``--save-every`` seconds and at the end; the
  next invocation with the same ``--work`` continues from it.
* At the end the small inference checkpoint (fp16 weights + config) is exported to
  ``--out`` and the model is evaluated on fixed held-out ``eval`` crops against the
  classical fallback (``--eval-only`` re-runs just that on an exported checkpoint).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from restoreagent.checkpoints import REPO
from restoreagent.tools.nets.restorer import build_restorer
from restoreagent.tools.research.datasets import bsds432_files, load_rgb, random_crop, split_files
from restoreagent.tools.util.synthesis import (
    apply,
    convolve,
    disk_kernel,
    downscale,
    jpeg_compress,
    line_kernel,
    sample_params,
)

TASKS = ("motion_blur", "defocus_blur", "jpeg", "low_resolution")

CHECKPOINT_NAMES = {"motion_blur": "deblur_motion.pt", "defocus_blur": "deblur_defocus.pt", "jpeg": "jpeg_color.pt",
                    "low_resolution": "sr_ours.pt"}
#: Network configuration per task. Every model also sees the classical result (deblocked /
#: Wiener-deconvolved) and predicts a correction to it.
NET_CONFIGS: dict[str, dict[str, Any]] = {
    task: {"in_channels": 6, "width": 16, "enc_blocks": [1, 1, 2], "middle_blocks": 2, "dec_blocks": [1, 1, 1]}
    for task in TASKS
}
#: Border (pixels) blurred along with a crop and cut off afterwards, so no crop sees a padded edge.
MARGIN = {"motion_blur": 20, "defocus_blur": 10, "jpeg": 0, "low_resolution": 0}


# -- degradations ------------------------------------------------------------------------------
def training_params(task: str, rng: np.random.Generator) -> dict[str, Any]:
    """MiO parameters 70 % of the time, else a slightly wider range."""
    if task == "low_resolution":  # MiO's ×1/4, or ×1/2; a mild JPEG of the small photo now and then
        return {"factor": 4 if rng.random() < 0.7 else 2,
                "quality": int(rng.integers(50, 96)) if rng.random() < 0.25 else None}
    if rng.random() < 0.7:
        return sample_params(task, rng)
    if task == "motion_blur":
        return {"radius": int(rng.integers(5, 19)), "sigma": float(rng.uniform(2, 9)), "angle": float(rng.uniform(0, 180))}
    if task == "defocus_blur":
        return {"radius": float(rng.uniform(1.5, 7.5))}
    return {"quality": int(rng.integers(6, 41))}


def degrade(task: str, rgb: np.ndarray, params: dict[str, Any]) -> np.ndarray:
    """The degraded crop as the network sees it (super-resolution: the small photo, Lanczos-upscaled)."""
    if task == "low_resolution":
        from restoreagent.tools.superres import upscale_lanczos

        small = downscale(rgb, params["factor"])
        if params.get("quality"):
            small = jpeg_compress(small, params["quality"])
        return upscale_lanczos(small, params["factor"])
    if task == "motion_blur":
        return convolve(rgb, line_kernel(2 * int(params["radius"]) + 1, params["angle"], params["sigma"]))
    if task == "defocus_blur":
        return convolve(rgb, disk_kernel(params["radius"]))
    return jpeg_compress(rgb, params["quality"])


def hint(task: str, degraded: np.ndarray, params: dict[str, Any] | None, rng: np.random.Generator | None) -> np.ndarray | None:
    """The classical result the network refines (None: the network is blind).

    In training the classical filter gets the true parameter, rounded as the estimator
    reports it and sometimes off by one step, so the network learns to fix small misses.
    """
    if task == "low_resolution":
        from restoreagent.tools.superres import sr_hint

        return sr_hint(degraded, 4 if params is None else params["factor"])
    if task == "jpeg":
        from restoreagent.tools.jpeg import deblock_classical

        return deblock_classical(degraded, None if params is None else params["quality"])
    if task == "defocus_blur":
        from restoreagent.tools.deblur import deconvolve_defocus, estimate_defocus_radius

        if params is None:
            radius = estimate_defocus_radius(degraded)
        else:
            radius = float(np.clip(round(2 * params["radius"]) / 2, 1.5, 8.0))
            if rng is not None and rng.random() < 0.15:
                radius = float(np.clip(radius + rng.choice([-0.5, 0.5]), 1.5, 8.0))
        return np.clip(deconvolve_defocus(degraded, radius), 0, 1)
    if task == "motion_blur":
        from restoreagent.tools.deblur import deconvolve_motion, estimate_motion_kernel, motion_kernel

        if params is None or rng is None or rng.random() < 0.5:
            # Mostly what the tool will do: the blind estimate (on the crop, so a bit noisier).
            r, s, a = estimate_motion_kernel(degraded)
        else:
            r, s, a = int(params["radius"]), float(params["sigma"]), float(params["angle"] + rng.normal(0, 4))
        return np.clip(deconvolve_motion(degraded, motion_kernel(r, s, a)), 0, 1)
    return None


def make_batch(
    task: str, images: list[np.ndarray], batch: int, crop: int, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    xs, bs, ys = [], [], []
    m = MARGIN[task]
    for _ in range(batch):
        img = images[int(rng.integers(len(images)))]
        patch = random_crop(img, crop + 2 * m, rng)
        if rng.random() < 0.5:
            patch = patch[:, ::-1]
        patch = np.ascontiguousarray(np.rot90(patch, int(rng.integers(4))))
        params = training_params(task, rng)
        deg = degrade(task, patch, params)
        h = hint(task, deg, params, rng)
        cut = (slice(m, m + crop), slice(m, m + crop))
        clean, deg = patch[cut], deg[cut]
        base = deg if h is None else h[cut]
        inp = deg if h is None else np.concatenate([deg, base], axis=2)
        xs.append(inp.transpose(2, 0, 1))
        bs.append(base.transpose(2, 0, 1))
        ys.append(clean.transpose(2, 0, 1))

    def t(a: list[np.ndarray]) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(np.stack(a), dtype=np.float32))

    return t(xs), t(bs), t(ys)


def charbonnier(x: torch.Tensor, y: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    return torch.sqrt((x - y) ** 2 + eps * eps).mean()


# -- state ---------------------------------------------------------------------------------------
def _atomic_save(obj: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def export_checkpoint(net: torch.nn.Module, config: dict[str, Any], meta: dict[str, Any], out: Path) -> None:
    """The small inference file: fp16 weights, the config and some metadata."""
    sd = {k: v.detach().to(torch.float16) for k, v in net.state_dict().items()}
    _atomic_save({"config": config, "state_dict": sd, "meta": meta}, out)


def train(args: argparse.Namespace) -> Path:
    task = args.task
    work = Path(args.work)
    state_path = work / "state.pt"
    config = NET_CONFIGS[task]
    net = build_restorer(config)
    opt = torch.optim.Adam(net.parameters(), lr=args.lr, betas=(0.9, 0.9))
    rng = np.random.default_rng(args.seed)
    torch.manual_seed(args.seed)
    step, elapsed = 0, 0.0
    if state_path.exists():
        st = torch.load(state_path, map_location="cpu", weights_only=False)
        if st["task"] != task:
            raise SystemExit(f"{state_path} holds a {st['task']} run, not {task}")
        net.load_state_dict(st["model"])
        opt.load_state_dict(st["optimizer"])
        step, elapsed = int(st["step"]), float(st["elapsed"])
        rng.bit_generator.state = st["numpy_rng"]
        torch.set_rng_state(st["torch_rng"])
        print(f"resumed from {state_path} at step {step} ({elapsed / 60:.1f} min trained)", flush=True)
    else:
        print(f"new run: {task}, {sum(p.numel() for p in net.parameters())} parameters", flush=True)

    def save() -> None:
        _atomic_save(
            {
                "task": task, "config": config, "model": net.state_dict(), "optimizer": opt.state_dict(),
                "step": step, "elapsed": elapsed, "numpy_rng": rng.bit_generator.state,
                "torch_rng": torch.get_rng_state(), "args": vars(args),
            },
            state_path,
        )

    files = split_files("train", args.clean_dir)
    if task == "low_resolution":
        files += bsds432_files(("train", "val"), args.clean_dir)
    images = [load_rgb(p) for p in files]
    total = args.minutes * 60.0
    last_save = time.monotonic()
    losses: list[float] = []
    net.train()
    started = step
    while elapsed < total and (args.steps is None or step < args.steps):
        t0 = time.monotonic()
        lr = args.lr_min + 0.5 * (args.lr - args.lr_min) * (1 + math.cos(math.pi * min(elapsed / total, 1.0)))
        for g in opt.param_groups:
            g["lr"] = lr
        x, base, y = make_batch(task, images, args.batch, args.crop, rng)
        loss = charbonnier(net(x, base), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 0.5)
        opt.step()
        step += 1
        elapsed += time.monotonic() - t0
        losses.append(loss.item())
        if step % args.log_every == 0:
            print(f"step {step} loss {np.mean(losses):.5f} lr {lr:.2e} trained {elapsed / 60:.2f} min", flush=True)
            losses = []
        if time.monotonic() - last_save > args.save_every:
            save()
            last_save = time.monotonic()
    save()
    print(f"trained steps {started}..{step}; total {step} steps, {elapsed / 60:.2f} min; state in {state_path}", flush=True)
    out = Path(args.out) if args.out else REPO / "checkpoints" / CHECKPOINT_NAMES[task]
    if elapsed >= total or args.export:
        meta = {"task": task, "steps": step, "train_minutes": round(elapsed / 60, 2), "batch": args.batch,
                "crop": args.crop, "params": sum(p.numel() for p in net.parameters())}
        export_checkpoint(net.eval(), config, meta, out)
        print(f"exported {out} ({out.stat().st_size / 1e6:.2f} MB)", flush=True)
    return out


# -- held-out evaluation -------------------------------------------------------------------------
CLASSICAL = {"motion_blur": "deblur_motion_wiener", "defocus_blur": "deblur_defocus_wiener", "jpeg": "jpeg_deblock",
             "low_resolution": "sr_lanczos"}
OURS = {"motion_blur": "deblur_motion_ours", "defocus_blur": "deblur_defocus_ours", "jpeg": "jpeg_ours",
        "low_resolution": "sr_ours"}


def eval_set(task: str, count: int, size: int, clean_dir: Path | None) -> list[tuple[np.ndarray, np.ndarray]]:
    """Fixed (clean, degraded) pairs: centre crops of evenly spaced ``eval`` images, MiO
    parameters drawn from seed 1000 + i."""
    files = split_files("eval", clean_dir)
    idx = np.linspace(0, len(files) - 1, count).round().astype(int)
    pairs = []
    for i, k in enumerate(idx):
        img = load_rgb(files[k])
        h, w = img.shape[:2]
        s = min(size, h, w)
        clean = img[(h - s) // 2 : (h - s) // 2 + s, (w - s) // 2 : (w - s) // 2 + s]
        rng = np.random.default_rng(1000 + i)
        deg = apply(task, clean, sample_params(task, rng), rng)
        pairs.append((clean, deg))
    return pairs


def evaluate(task: str, checkpoint: Path, count: int = 16, size: int = 256, clean_dir: Path | None = None) -> dict[str, Any]:
    import tempfile

    from restoreagent.tools import deblur, jpeg, superres  # noqa: F401  (registers the tools)
    from restoreagent.tools.base import ToolContext
    from restoreagent.tools.registry import default_registry
    from restoreagent.tools.superres import upscale_bicubic
    from restoreagent.tools.util.metrics import psnr, ssim
    from restoreagent.tools.weights import WeightsResolver

    empty = Path(tempfile.mkdtemp())
    ctx = ToolContext(weights=WeightsResolver(weights_dir=empty, cache_dir=empty), device="cpu",
                      extra={"checkpoints": {OURS[task]: str(checkpoint)}})
    pairs = eval_set(task, count, size, clean_dir)
    rows: dict[str, dict[str, float]] = {}
    # super-resolution is measured against the bicubic upscale, as everywhere (tools/superres.py)
    seen = [upscale_bicubic(d, c.shape[0] // d.shape[0]) if d.shape != c.shape else d for c, d in pairs]
    before = [(psnr(s, c), ssim(s, c)) for (c, _), s in zip(pairs, seen)]
    rows["degraded"] = {"psnr": float(np.mean([b[0] for b in before])), "ssim": float(np.mean([b[1] for b in before]))}
    for label, name in (("classical", CLASSICAL[task]), ("ours", OURS[task])):
        tool = default_registry[name](ctx)
        tool.ensure_loaded()
        args = tool.Args(image_id="eval")
        scores, secs, mp = [], 0.0, 0.0
        for c, d in pairs:
            t0 = time.perf_counter()
            out = tool(d, args)
            secs += time.perf_counter() - t0
            mp += d.shape[0] * d.shape[1] / 1e6
            scores.append((psnr(out, c), ssim(out, c)))
        rows[label] = {"tool": name, "psnr": float(np.mean([s[0] for s in scores])),
                       "ssim": float(np.mean([s[1] for s in scores])), "s_per_mp": secs / mp,
                       "wins_vs_classical": None}
        rows[label]["_psnr_each"] = [s[0] for s in scores]
    ours, cl = rows["ours"].pop("_psnr_each"), rows["classical"].pop("_psnr_each")
    rows["ours"]["wins_vs_classical"] = int(sum(o > c for o, c in zip(ours, cl)))
    rows["classical"].pop("wins_vs_classical")
    result = {"task": task, "images": count, "size": size, "seeds": "1000+i", **rows}
    print(json.dumps(result, indent=1), flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", choices=TASKS, required=True)
    p.add_argument("--minutes", type=float, default=20.0, help="total training time (across resumed sessions)")
    p.add_argument("--steps", type=int, default=None, help="stop at this total step count (tests, smoke runs)")
    p.add_argument("--out", default=None, help="exported checkpoint (default: checkpoints/<name>.pt in the package)")
    p.add_argument("--work", default=None, help="folder of the resumable state (default: ./train-work/<task>)")
    p.add_argument("--clean-dir", default=None, help="clean images (default: RESTOREAGENT_CLEAN_DIR or ../shared/data/clean)")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--crop", type=int, default=None, help="crop size (default 96 for blur, 64 for jpeg)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--lr-min", type=float, default=1e-5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--save-every", type=float, default=180.0, help="seconds between state saves")
    p.add_argument("--log-every", type=int, default=50)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--export", action="store_true", help="export the checkpoint even if training time is not used up")
    p.add_argument("--no-eval", action="store_true")
    p.add_argument("--eval-only", action="store_true", help="only evaluate the exported checkpoint --out")
    p.add_argument("--eval-count", type=int, default=16)
    p.add_argument("--eval-size", type=int, default=256)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        import cv2

        cv2.setNumThreads(1)
    except ImportError:  # pragma: no cover
        pass
    if args.crop is None:
        args.crop = 64 if args.task == "jpeg" else 96
    if args.work is None:
        args.work = str(Path("train-work") / args.task)
    clean = Path(args.clean_dir) if args.clean_dir else None
    args.clean_dir = clean
    if args.eval_only:
        out = Path(args.out) if args.out else REPO / "checkpoints" / CHECKPOINT_NAMES[args.task]
    else:
        out = train(args)
    if not args.no_eval and out.exists():
        result = evaluate(args.task, out, args.eval_count, args.eval_size, clean)
        out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
