"""The training script for our compact restorers: runs, saves a resumable state, resumes.

A fake tiny clean-image folder is made in tmp_path (the ``train`` split's folders), so
this needs no shared data; the real command-line entry point runs in-process.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from restoreagent.tools.nets.restorer import build_restorer, load_restorer
from restoreagent.tools.research.datasets import SPLITS
from restoreagent.tools.research.training import restorers


@pytest.fixture()
def tiny_clean_dir(tmp_path: Path, clean_images: dict[str, np.ndarray]) -> Path:
    root = tmp_path / "clean"
    for i, folder in enumerate(SPLITS["train"]):
        (root / folder).mkdir(parents=True)
        for j, img in enumerate(list(clean_images.values())[i : i + 2]):
            small = (img[:80, :96] * 255 + 0.5).astype(np.uint8)
            Image.fromarray(small).save(root / folder / f"img{j}.png")
    return root


def _run(task: str, steps: int, work: Path, clean: Path, *extra: str) -> None:
    argv = ["--task", task, "--steps", str(steps), "--minutes", "5", "--crop", "32", "--batch", "2",
            "--work", str(work), "--clean-dir", str(clean), "--no-eval", "--log-every", "1", *extra]
    assert restorers.main(argv) == 0


def test_network_starts_as_identity_and_pads_odd_sizes() -> None:
    net = build_restorer({"in_channels": 6}).eval()
    x = torch.rand(1, 6, 37, 45)
    with torch.no_grad():
        y = net(x, x[:, 3:])
    assert y.shape == (1, 3, 37, 45)
    assert torch.allclose(y, x[:, 3:])  # the last layer starts at zero: output = base


@pytest.mark.parametrize("task", ["motion_blur", "jpeg"])
def test_training_runs_saves_and_resumes(task: str, tiny_clean_dir: Path, tmp_path: Path, capsys) -> None:
    work = tmp_path / "work"
    _run(task, 3, work, tiny_clean_dir)
    state = torch.load(work / "state.pt", map_location="cpu", weights_only=False)
    assert state["step"] == 3 and state["task"] == task
    assert {"model", "optimizer", "numpy_rng", "torch_rng", "elapsed"} <= set(state)
    first = {k: v.clone() for k, v in state["model"].items()}
    capsys.readouterr()

    out = tmp_path / "model.pt"
    _run(task, 5, work, tiny_clean_dir, "--export", "--out", str(out))
    log = capsys.readouterr().out
    assert "resumed from" in log and "at step 3" in log
    assert "step 4 " in log and "step 5 " in log and "step 1 " not in log  # the counter continued
    state = torch.load(work / "state.pt", map_location="cpu", weights_only=False)
    assert state["step"] == 5
    assert any(not torch.equal(first[k], state["model"][k]) for k in first)  # it kept training

    net, info = load_restorer(out)
    assert info["meta"]["steps"] == 5 and info["meta"]["task"] == task
    assert out.stat().st_size < 5e6


def test_defocus_batch_has_the_wiener_hint(tiny_clean_dir: Path) -> None:
    from restoreagent.tools.research.datasets import load_rgb, split_files

    images = [load_rgb(p) for p in split_files("train", tiny_clean_dir)]
    x, base, y = restorers.make_batch("defocus_blur", images, 2, 32, np.random.default_rng(0))
    assert x.shape == (2, 6, 32, 32) and base.shape == y.shape == (2, 3, 32, 32)
    assert torch.equal(x[:, 3:], base)


def test_camera_like_degradations_for_the_assessor(tmp_path: Path) -> None:
    from restoreagent.tools.perception.rules import blockiness
    from restoreagent.tools.research.training import realistic
    from restoreagent.tools.util.synthesis import jpeg_compress

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:97, :130].astype(np.float32)
    img = np.stack([0.5 + 0.3 * np.sin(xx / 9), 0.4 + 0.2 * np.cos(yy / 7), 0.3 + 0.0 * xx], -1).astype(np.float32)
    # camera noise: measured against the same processing without noise, stronger with the shot level
    sigmas = []
    for shot in (5e-4, 5e-3, 2e-2):
        noisy, ref = realistic.camera_noise(img, np.random.default_rng(1), strength=shot)
        assert noisy.shape == ref.shape == (96, 130, 3)  # even-cropped for the mosaic
        assert np.abs(ref - img[:96]).mean() < 0.02  # demosaicing the noise-free mosaic gives the image back
        sigmas.append(float(np.std(noisy - ref)) * 255)
    assert sigmas[0] < 4 < sigmas[1] < sigmas[2] < 40
    # the noise has colour and is spatially correlated (neighbours agree more than white noise)
    n = (noisy - ref)[..., 0]
    corr = float(np.corrcoef(n[:, :-1].ravel(), n[:, 1:].ravel())[0, 1])
    assert corr > 0.1
    c = realistic.correlated_noise(img, 10.0, rng)
    assert abs(float(np.std(c - img)) * 255 - 10.0) < 1.5
    # a web JPEG resized after compression loses the 8×8 grid that the blockiness measure reads
    big = np.ascontiguousarray(np.tile(img, (3, 3, 1))[:256, :256])
    aligned = jpeg_compress(big, 10)
    shifted = jpeg_compress(big, 10, subsampling=2)
    assert np.array_equal(aligned, shifted)  # same encoder, 4:2:0 by default
    out, visible = realistic.web_jpeg(big, 10, np.random.default_rng(3))
    assert 0.75 <= visible <= 1.0 and out.dtype == np.float32
    assert blockiness(aligned) > blockiness(big) + 0.2
    cartoon = realistic.cartoonize(big, rng)
    assert cartoon.shape == big.shape and len(np.unique(cartoon.reshape(-1, 3), axis=0)) < 200


def test_detail_rule_fit_picks_the_middle_of_a_plateau_and_separates_the_blurs() -> None:
    from skimage import data

    from restoreagent.tools.perception.assess import load_learned
    from restoreagent.tools.research.training import assessor_rules
    from restoreagent.tools.research.training.assessor_rules import plateau

    scores = np.zeros((5, 5))
    scores[0, 0] = 1.0  # a lone spike
    scores[2:5, 2:5] = 0.9  # a plateau
    assert plateau(scores) == (3, 3)
    photos = [getattr(data, n)().astype(np.float32) / 255.0 for n in ("astronaut", "coffee", "rocket")]
    fitted = assessor_rules.fit_small(assessor_rules.small_cases(photos, load_learned()))
    assert fitted["f1_sum"] > 1.6, fitted  # defocus and motion each found and told apart
    assert fitted["DETAIL_MOTION"] < fitted["DETAIL_DEFOCUS"] and fitted["DETAIL_SLOPE"] > 0


def test_low_light_veto_fit_runs_on_the_assessors_reports_and_keeps_its_thresholds_on_the_grid() -> None:
    from skimage import data

    from restoreagent.tools.perception.assess import load_learned
    from restoreagent.tools.research.training import assessor_rules

    photos = [getattr(data, n)().astype(np.float32) / 255.0 for n in ("astronaut", "coffee", "rocket")]
    rows = assessor_rules.veto_cases(photos, load_learned())
    assert len(rows) == len(photos) * (1 + len(assessor_rules.COMBOS))
    assert sum(r["dark"] for r in rows) == len(photos) * 5  # four MiO combinations with dark, and the night photo
    fitted = assessor_rules.fit_veto(rows)
    assert fitted["NOISY_VETO"] in assessor_rules.GRID_VETO and fitted["NOISY_JPEG_VETO"] in assessor_rules.GRID_VETO
    assert fitted["f1"] > 0.5, fitted
