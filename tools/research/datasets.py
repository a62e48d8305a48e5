"""The clean-image split used for training and for held-out evaluation.

Learned components are trained on ``train`` and scored on ``eval`` only, so no
figure we publish comes from an image a model has seen. The folders are those
of ``../shared/data/clean`` (pass its path; nothing is bundled).

* train: CBSD68 (68), Set14 (14), Set5 (5)
* eval:  Kodak24 (24), LIVE1 (29)
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from restoreagent.checkpoints import SHARED
from restoreagent.tools.util.imageio import IMAGE_SUFFIXES

SPLITS: dict[str, tuple[str, ...]] = {
    "train": ("cbsd68", "set14", "set5"),
    "eval": ("kodak24", "live1"),
}


def default_clean_dir() -> Path:
    """``RESTOREAGENT_CLEAN_DIR``, else ``../shared/data/clean`` beside the repository."""
    env = os.environ.get("RESTOREAGENT_CLEAN_DIR")
    if env:
        return Path(env)
    return SHARED / "data" / "clean"


def split_files(split: str, clean_dir: Path | None = None) -> list[Path]:
    """Sorted image paths of a split; raises FileNotFoundError if the folders are missing."""
    root = Path(clean_dir) if clean_dir else default_clean_dir()
    files: list[Path] = []
    for folder in SPLITS[split]:
        d = root / folder
        if not d.is_dir():
            raise FileNotFoundError(f"clean image folder {d} not found (set RESTOREAGENT_CLEAN_DIR)")
        files += sorted(p for p in d.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    return files


def bsds432_files(parts: tuple[str, ...], clean_dir: Path | None = None) -> list[Path]:
    """The BSDS432 images of ``parts`` (``train``, ``val``, ``test``; its ``MANIFEST.tsv``), in its order:
    the varied set that #27's splits are made of (docs/VERIFIER.md)."""
    root = (Path(clean_dir) if clean_dir else default_clean_dir()) / "bsds432"
    rows = [line.split("\t") for line in (root / "MANIFEST.tsv").read_text().splitlines() if line.strip()]
    return [root / r[1] for r in rows if r[0] in parts]


def load_rgb(path: Path) -> np.ndarray:
    """An image as RGB float32 in [0, 1] (grayscale images are replicated)."""
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB")).astype(np.float32) / 255.0


def random_crop(rgb: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """A ``size``×``size`` crop (reflect-padded if the image is smaller)."""
    h, w = rgb.shape[:2]
    if h < size or w < size:
        rgb = np.pad(rgb, ((0, max(0, size - h)), (0, max(0, size - w)), (0, 0)), mode="reflect")
        h, w = rgb.shape[:2]
    y, x = int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))
    return rgb[y : y + size, x : x + size]
