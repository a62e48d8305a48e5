"""Small helpers shared by the scripts that fit the assessor's rule constants on the train split."""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np

from ..datasets import default_clean_dir, load_rgb, split_files


def train_images(argv: list[str] | None, doc: str) -> list[np.ndarray]:
    """The command line every fitting script shares (``--clean DIR``): the train split's images, one thread."""
    ap = argparse.ArgumentParser(description=doc.split("\n")[0])
    ap.add_argument("--clean", type=Path, default=None, help="clean images (default: ../shared/data/clean)")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    return [load_rgb(p) for p in split_files("train", args.clean or default_clean_dir())]


def f1(pred: np.ndarray, truth: np.ndarray) -> float:
    tp = float((pred & truth).sum())
    return 2 * tp / max(1.0, float(pred.sum() + truth.sum()))


def plateau(scores: np.ndarray) -> tuple[int, ...]:
    """Index of the best score averaged over each point's grid neighbours (edges: those that exist).

    A lone spike on a grid of thresholds is usually luck of the fitting set; the middle of a broad
    plateau is not.
    """
    padded = np.pad(scores, 1, constant_values=np.nan)
    windows = [padded[tuple(slice(1 + d, 1 + d + n) for d, n in zip(shift, scores.shape))]
               for shift in itertools.product((-1, 0, 1), repeat=scores.ndim)]
    return np.unravel_index(int(np.nanargmax(np.nanmean(windows, axis=0))), scores.shape)
