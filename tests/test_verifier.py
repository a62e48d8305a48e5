"""The step verifier: features, the shipped checkpoint's decisions, the observe node, the harm benchmark."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from restoreagent.tools.perception.assess import assess
from restoreagent.tools.perception.verifier import FEATURE_NAMES, load_verifier, step_features
from restoreagent.tools.util.synthesis import add_gaussian_noise


def _tool(name: str, offline_context):
    from restoreagent.tools import default_registry

    return default_registry[name](offline_context)


def _dim(clean: np.ndarray, k: float = 0.25) -> np.ndarray:
    """A correctly exposed dim scene (the ground truth *is* dim)."""
    return np.power(np.power(clean, 2.2) * k, 1 / 2.2).astype(np.float32)


def _verdict(before, after, task):
    return load_verifier()(before, after, task, assess(before).model_dump(), assess(after).model_dump())


def test_features_are_finite_and_named(clean_images):
    img = clean_images["coffee"]
    up = np.repeat(np.repeat(img, 2, axis=0), 2, axis=1)  # a super-resolution step changes the size
    for after in (img, up, np.zeros_like(img)):
        f = step_features(img, after, "low_resolution", assess(img).model_dump(), assess(after).model_dump())
        assert f.shape == (len(FEATURE_NAMES),) and np.isfinite(f).all()


def test_rejects_brightening_a_dim_photo_and_accepts_denoising(clean_images, offline_context):
    """The harm the issue found: gamma on a dim but correctly exposed photo with camera noise (as in
    PolyU's indoor shots); and a step that helps. (A noise-free dim photo is the very image a MiO
    darkening makes, so no verifier can tell those two apart: see docs/VERIFIER.md.)"""
    from restoreagent.tools.research.training.realistic import camera_noise

    gamma = _tool("lowlight_gamma", offline_context)
    for seed, name in enumerate(("astronaut", "chelsea")):
        dim, _ = camera_noise(_dim(clean_images[name]), np.random.default_rng(seed), strength=2e-3)
        bright = gamma(dim, gamma.Args(image_id="img-0000000000000000"))
        verdict = _verdict(dim, bright, "low_light")
        assert not verdict.accept, (name, verdict)
    nlm = _tool("denoise_nlmeans", offline_context)
    noisy = add_gaussian_noise(clean_images["coffee"], 30.0, np.random.default_rng(0))
    verdict = _verdict(noisy, nlm(noisy, nlm.Args(image_id="img-0000000000000000")), "noise")
    assert verdict.accept and verdict.gain_db > 1.0, verdict


def test_the_shipped_checkpoint_reports_held_out_figures():
    report = json.loads((Path(__file__).resolve().parents[1] / "checkpoints" / "verifier.json").read_text())
    assert report["train_samples"] > 1000 and report["calibration_samples"] > 100
    assert report["test"]["all"]["n"] > 100  # measured on held-out tool outputs


def test_utility_counts_harm_double_and_ties_choose_the_most_cautious_margin():
    from restoreagent.tools.research.training.verifier import choose_margin, evaluate, utility

    gains = np.array([2.0, -1.0, 0.5, -3.0])
    accept = np.array([True, True, False, False])
    assert utility(gains, accept) == pytest.approx(0.0)
    rows = [{"kind": "a"}, {"kind": "a"}, {"kind": "b"}, {"kind": "b"}]
    stats = evaluate(gains, accept, rows)
    assert stats["all"]["sign_accuracy"] == 0.5 and stats["a"]["harmful_accepted"] == 1
    assert stats["b"]["helpful_rejected"] == 0 and stats["b"]["sign_accuracy"] == 0.5
    # Scores 2.0 (helpful) and -1.0 (harmful): every margin in [-1, 2) keeps only the helpful step.
    assert choose_margin(np.array([3.0, -5.0]), np.array([2.0, -1.0])) == pytest.approx(1.95)


def test_the_graph_does_no_harm_on_a_dim_photo(clean_images, tmp_path):
    """End to end: a dim photo with camera noise is not brightened: it comes back close to what it was."""
    from restoreagent import restore
    from restoreagent.tools.research.training.realistic import camera_noise
    from restoreagent.tools.util.imageio import save_png
    from restoreagent.tools.util.metrics import psnr

    dim, _ = camera_noise(_dim(clean_images["chelsea"], 0.2), np.random.default_rng(3), strength=2e-3)
    src = save_png(dim, tmp_path / "dim.png")
    result = restore(src, tmp_path / "out.png", work_dir=tmp_path / "runs", full_resolution_side=192)
    out = np.asarray(result.image().convert("RGB")).astype(np.float32) / 255.0
    assert abs(float(out.mean()) - float(dim.mean())) < 0.02, [(s.tool, s.accepted, s.reason) for s in result.steps]
    judged = [s for s in result.steps if s.predicted_gain_db is not None]
    assert all("verifier" in s.reason for s in judged)


def test_harm_benchmark_reports_each_category(shared_dir, tmp_path):
    from restoreagent.graph.configuration import Configuration
    from restoreagent.graph.graph import build_graph
    from restoreagent.tools.research.evaluation.harm import make_harm_cases, run_harm

    cases = make_harm_cases(shared_dir / "data" / "clean", shared_dir / "data" / "pairs", "test", 1, 96)
    cats = {c.category for c in cases}
    assert {"clean", "single:noise", "mio:noise+jpeg", "real:polyu", "real:city100"} <= cats
    picked = [next(c for c in cases if c.category == k) for k in ("clean", "single:noise")]
    graph = build_graph(Configuration(work_dir=tmp_path / "runs", full_resolution_side=96))
    report = run_harm(picked, tmp_path / "out", {"agent": lambda side: graph})
    assert [r["category"] for r in report["cases"]] == ["clean", "single:noise"]
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert "| clean | 1 |" in summary and "single:noise" in summary
    assert (tmp_path / "out" / "contact.png").is_file()
