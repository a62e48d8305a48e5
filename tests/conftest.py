"""Shared fixtures. Tests that need ../shared skip with a reason when it is absent."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

# Two cores here: keep torch and OpenCV from oversubscribing them.
torch.set_num_threads(1)
try:
    import cv2

    cv2.setNumThreads(1)
except ImportError:  # pragma: no cover
    pass

# The test photos are 192-px crops that stand for full-size photos: tell every configuration read
# from the environment (CLI subprocesses, restore(), the langgraph server) not to upscale them.
os.environ.setdefault("RESTOREAGENT_FULL_RESOLUTION_SIDE", "192")

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("RESTOREAGENT_SHARED", REPO.parent / "shared"))


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"needs the shared data folder {SHARED} (set RESTOREAGENT_SHARED)")
    return SHARED


@pytest.fixture(scope="session")
def weights_dir(shared_dir: Path) -> Path:
    d = Path(os.environ.get("RESTOREAGENT_WEIGHTS_DIR", shared_dir / "weights"))
    if not d.is_dir():
        pytest.skip(f"needs pretrained weights in {d}")
    return d


@pytest.fixture(scope="session")
def tool_context(weights_dir: Path, tmp_path_factory):
    from restoreagent.tools.base import ToolContext
    from restoreagent.tools.weights import WeightsResolver

    cache = tmp_path_factory.mktemp("weights-cache")
    return ToolContext(weights=WeightsResolver(weights_dir=weights_dir, cache_dir=cache), device="cpu")


@pytest.fixture(scope="session")
def offline_context(tmp_path_factory):
    """A context with no weights at all: only weight-free tools are available."""
    from restoreagent.tools.base import ToolContext
    from restoreagent.tools.weights import WeightsResolver

    empty = tmp_path_factory.mktemp("no-weights")
    return ToolContext(weights=WeightsResolver(weights_dir=empty, cache_dir=empty), device="cpu")


def crop(img: np.ndarray, size: int = 192) -> np.ndarray:
    h, w = img.shape[:2]
    y, x = (h - size) // 2, (w - size) // 2
    return img[y : y + size, x : x + size]


@pytest.fixture(scope="session")
def clean_images() -> dict[str, np.ndarray]:
    """Public-domain images bundled with scikit-image, float32 RGB in [0, 1], 192×192 crops."""
    from skimage import data

    out = {}
    for name in ("astronaut", "chelsea", "coffee", "rocket"):
        out[name] = crop(getattr(data, name)().astype(np.float32) / 255.0)
    return out



@pytest.fixture()
def noisy_png(tmp_path: Path, clean_images) -> Path:
    """The astronaut crop with Gaussian noise σ=30, saved as PNG."""
    from PIL import Image

    from restoreagent.tools.util.synthesis import add_gaussian_noise

    noisy = add_gaussian_noise(clean_images["astronaut"], 30, np.random.default_rng(0))
    path = tmp_path / "noisy.png"
    Image.fromarray((noisy * 255 + 0.5).astype(np.uint8)).save(path)
    return path
