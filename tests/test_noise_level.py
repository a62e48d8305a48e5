"""The denoising-strength regressor (tools/perception/noise_level.py) and the planner's offer of denoising."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from restoreagent.tools.perception.noise_level import FEATURE_NAMES, load_noise_level, noise_features
from restoreagent.tools.perception.noise_sigma import estimate_sigma
from restoreagent.tools.util.synthesis import add_gaussian_noise


def test_white_noise_is_read_at_its_level_and_a_clean_photo_offers_nothing(clean_images):
    level = load_noise_level()
    assert level is not None, "checkpoints/noise_level.pt is shipped"
    clean = clean_images["coffee"]
    noisy = add_gaussian_noise(clean, 25.0, np.random.default_rng(0))
    sigma, gain = level(noisy)
    assert 15.0 < sigma < 40.0 and gain > 3.0, (sigma, gain)
    assert noise_features(noisy).shape == (len(FEATURE_NAMES),)
    _, clean_gain = level(clean)
    assert clean_gain < 0.3, clean_gain


def test_real_camera_noise_gets_a_stronger_and_better_sigma_than_the_blind_estimate(shared_dir, tool_context):
    """What the regressor is for: on a real photo (a PolyU calibration pair) the demosaicked, JPEG'd noise
    hides from the finest scale; FFDNet told the regressor's σ gains more than told the blind one."""
    from restoreagent.tools import default_registry
    from restoreagent.tools.research.datasets import load_rgb
    from restoreagent.tools.util.metrics import psnr

    name = "Canon5D2_5_160_3200_chair_11.JPG"
    noisy = load_rgb(shared_dir / "data" / "pairs" / "polyu" / "noisy" / name)[128:384, 128:384]
    clean = load_rgb(shared_dir / "data" / "pairs" / "polyu" / "gt" / name)[128:384, 128:384]
    sigma, gain = load_noise_level()(noisy)
    blind = 255.0 * estimate_sigma(noisy)
    assert sigma > 1.5 * blind and gain > 0.3, (sigma, blind, gain)
    ffdnet = default_registry["denoise_ffdnet"](tool_context)
    told = {s: psnr(ffdnet(noisy, ffdnet.Args(image_id="img-0000000000000000", sigma=s)), clean) for s in (sigma, blind)}
    assert told[sigma] > told[blind] + 0.5 and told[sigma] > psnr(noisy, clean) + 1.0, told


def _context(gain: float, noise_severity: float = 0.0) -> dict:
    from restoreagent.tools.base import DEGRADATIONS

    return {"degradations": {k: (noise_severity if k == "noise" else 0.0) for k in DEGRADATIONS},
            "present_threshold": 0.2, "quality": 0.9, "history": [],
            "measures": {"denoise_gain_db": gain, "denoise_sigma_255": 8.0},
            "tools_by_task": {"noise": ["denoise_dncnn", "denoise_ffdnet", "denoise_nlmeans"],
                              "low_light": ["lowlight_gamma"]}}


def test_the_planner_offers_denoising_from_the_predicted_gain_not_the_severity():
    from restoreagent.graph.brains.offline import DENOISE_OFFER_DB, choose, load_ranker

    ranker = load_ranker()
    bound = ["denoise_dncnn", "denoise_ffdnet", "denoise_nlmeans", "lowlight_gamma"]
    assert choose(_context(DENOISE_OFFER_DB + 0.5), bound, ranker=ranker) == ("noise", "denoise_ffdnet")
    # the user's choice of denoiser wins; a rejected FFDNet is not offered again
    prefer = {"noise": ("denoise_nlmeans",)}
    assert choose(_context(2.0), bound, preference=prefer, ranker=ranker) == ("noise", "denoise_nlmeans")
    tried = _context(2.0)
    tried["history"] = [{"task": "noise", "tool": "denoise_ffdnet", "accepted": False}]
    assert choose(tried, bound, ranker=ranker) != ("noise", "denoise_ffdnet")
    assert choose(_context(0.0), bound, ranker=ranker) != ("noise", "denoise_ffdnet")


def test_the_shipped_regressor_reports_calibration_figures():
    report = json.loads((Path(__file__).resolve().parents[1] / "checkpoints" / "noise_level.json").read_text())
    assert report["train_cases"] >= 400 and report["calibration"]["real_polyu"]["n"] > 20
