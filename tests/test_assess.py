"""The learned degradation assessor (tools/perception/assess.py + checkpoints/assessor.pt), no mocks.

Images: the four 192×192 scikit-image crops (``clean_images``), degraded with the
MiO protocol of tools.util.synthesis.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from restoreagent.tools.base import DEGRADATIONS
from restoreagent.tools.denoise import DenoiseNLMeans
from restoreagent.tools.lowlight import GammaTool
from restoreagent.tools.perception.assess import DEFAULT_CHECKPOINT, assess
from restoreagent.tools.perception.niqe import niqe, niqe_params
from restoreagent.tools.perception.report import PRESENT, Assessment
from restoreagent.tools.perception.rules import apply_low_light_rule, trusts_network_low_light
from restoreagent.tools.util import synthesis as syn

pytestmark = pytest.mark.skipif(not DEFAULT_CHECKPOINT.is_file(), reason="checkpoints/assessor.pt not trained yet")


def _check(a: Assessment) -> None:
    assert set(a.degradations) == set(DEGRADATIONS)
    assert all(0.0 <= v <= 1.0 for v in a.degradations.values())
    assert 0.0 <= a.quality <= 1.0
    assert a.present == sorted((k for k, v in a.degradations.items() if v >= PRESENT), key=lambda k: -a.degradations[k])


def test_learned_is_default_and_reports_all_eight(clean_images):
    for img in clean_images.values():
        a = assess(img)
        _check(a)
        assert a.assessor.startswith("assessornet")
        assert {"noise_sigma_255", "blockiness", "mean_luminance", "p_noise"} <= set(a.measures)


@pytest.fixture(scope="module")
def singles(clean_images):
    out = {}
    for name in DEGRADATIONS:
        for i, (key, img) in enumerate(clean_images.items()):
            deg, _ = syn.degrade(img, (name,), seed=100 + i)
            out[name, key] = assess(deg)
    return out


def test_each_single_mio_degradation_is_detected(singles, clean_images):
    missed = [(name, key, a.degradations[name]) for (name, key), a in singles.items() if name not in a.present]
    # every type found on at least 3 of the 4 crops, and at most 3 misses overall (of 32)
    per_type = {name: sum(1 for n, _, _ in missed if n == name) for name in DEGRADATIONS}
    assert all(v <= 1 for v in per_type.values()), missed
    assert len(missed) <= 3, missed


def test_clean_crops_have_few_false_alarms(clean_images):
    alarms = [(key, k) for key, img in clean_images.items() for k in assess(img, full_resolution_side=192).present]
    assert len(alarms) <= 1, alarms  # of 4 crops × 8 decisions


def test_noise_severity_increases_with_sigma(clean_images):
    means = []
    for sigma in (15, 30, 50):
        sev = [assess(syn.add_gaussian_noise(img, sigma, np.random.default_rng(i))).degradations["noise"]
               for i, img in enumerate(clean_images.values())]
        means.append(np.mean(sev))
    assert means[0] < means[1] < means[2], means
    assert means[0] >= PRESENT, means


def _restore(tool_cls, img, offline_context):
    tool = tool_cls(offline_context)
    return tool.process(img, tool.Args(image_id="img-0000000000000000"))


def test_good_restoration_reads_as_improvement(clean_images, offline_context):
    for i, img in enumerate(clean_images.values()):
        noisy = syn.add_gaussian_noise(img, 25, np.random.default_rng(i))
        before, after = assess(noisy), assess(_restore(DenoiseNLMeans, noisy, offline_context))
        assert after.degradations["noise"] < before.degradations["noise"] - 0.02, (before, after)
        assert after.quality > before.quality, (before, after)
        for other in ("motion_blur", "defocus_blur"):  # a denoiser is not a new blur
            assert after.degradations[other] < max(PRESENT, before.degradations[other] + 0.03), (other, after)

        dark = syn.darken(img, 0.6)
        before, after = assess(dark), assess(_restore(GammaTool, dark, offline_context))
        assert after.degradations["low_light"] < before.degradations["low_light"] - 0.02, (before, after)
        assert after.quality > before.quality, (before, after)


def test_network_vetoes_low_light_on_a_naturally_dark_clean_photo(shared_dir):
    from restoreagent.tools.util.imageio import load_image

    a = assess(load_image(shared_dir / "data" / "clean" / "kodak24" / "kodim05.png").rgb)
    assert a.measures["low_light_exposure"] >= PRESENT  # the luminance alone calls it dark
    assert a.measures["low_light_network_trusted"] == 1.0 and "low_light" not in a.present, a
    # without the network's veto (a photo that came in noisy) the exposure decides
    assert "low_light" in apply_low_light_rule(a, trust_network=False).present


def test_under_noise_the_network_vetoes_low_light_only_where_it_reads_clearly_not_dark():
    def report(noise: float, jpeg: float, learned: float | None) -> Assessment:
        measures = {"low_light_learned": learned} if learned is not None else {}
        return Assessment(degradations={**dict.fromkeys(DEGRADATIONS, 0.0), "noise": noise, "jpeg": jpeg},
                          present=[], quality=1.0, measures=measures)

    assert trusts_network_low_light(report(0.0, 0.0, 0.5))  # noise-free: always
    assert trusts_network_low_light(report(0.5, 0.0, 0.10), noisy_veto=0.14)
    assert not trusts_network_low_light(report(0.5, 0.0, 0.15), noisy_veto=0.14)
    # JPEG masks darkness further: the network must read the photo even less dark
    assert not trusts_network_low_light(report(0.5, 0.5, 0.10), noisy_veto=0.14, noisy_jpeg_veto=0.08)
    assert trusts_network_low_light(report(0.5, 0.5, 0.05), noisy_veto=0.14, noisy_jpeg_veto=0.08)
    assert not trusts_network_low_light(report(0.5, 0.0, None))  # no network reading (a custom assessor)


def test_naturally_dark_photo_made_noisy_and_compressed_is_not_called_underexposed(shared_dir):
    from restoreagent.tools.util.imageio import load_image

    photo = load_image(shared_dir / "data" / "clean" / "kodak24" / "kodim05.png").rgb
    noisy = syn.add_gaussian_noise(photo, 25, np.random.default_rng(0))
    a = assess(syn.apply("jpeg", noisy, {"quality": 20}, np.random.default_rng(0)))
    assert {"noise", "jpeg"} <= set(a.present) and a.measures["low_light_exposure"] >= PRESENT, a
    assert a.measures["low_light_network_trusted"] == 1.0 and "low_light" not in a.present, a


def test_dark_noisy_photo_stays_dark_after_denoising_under_the_inputs_rule(clean_images, offline_context):
    for i, img in enumerate(clean_images.values()):
        dark_noisy = syn.add_gaussian_noise(syn.darken(img, 0.55), 25, np.random.default_rng(i))
        first = assess(dark_noisy)
        assert first.measures["low_light_network_trusted"] == 0.0 and "low_light" in first.present, first
        denoised = _restore(DenoiseNLMeans, dark_noisy, offline_context)
        after = apply_low_light_rule(assess(denoised), trust_network=False)  # as the graph's observe node does
        assert after.degradations["low_light"] >= PRESENT, after
        assert abs(after.degradations["low_light"] - first.degradations["low_light"]) < 0.1, (first, after)


def test_512_is_fast_enough():
    rng = np.random.default_rng(0)
    img = syn.add_gaussian_noise(np.tile(np.linspace(0.2, 0.8, 512, dtype=np.float32), (512, 1))[..., None]
                                 .repeat(3, 2), 10, rng)
    assess(img)
    t = time.perf_counter()
    a = assess(img)
    assert time.perf_counter() - t < 1.5  # network ≈ 20–50 ms; rule measures ≈ 100 ms on a shared 2-core CPU
    _check(a)


def test_haze_is_also_read_at_scene_scale(monkeypatch):
    """On a full-size photo the network's 96-px crops see too little of the scene to judge haze;
    the reading of the photo scaled to SCENE_SIDE finds MiO haze (β 0.9) that they miss, and
    still reads the clean photos as haze-free."""
    from skimage import data

    import restoreagent.tools.perception.assess as assess_module

    for name in ("coffee", "rocket"):  # 400×600, 427×640
        photo = getattr(data, name)().astype(np.float32) / 255.0
        hazy = syn.add_haze(photo, 0.8, 0.9, syn.pseudo_depth(*photo.shape[:2], np.random.default_rng(0)))
        assert assess(hazy).degradations["haze"] >= PRESENT, name
        assert assess(photo).degradations["haze"] < PRESENT, name
        with monkeypatch.context() as m:
            m.setattr(assess_module, "SCENE_SIDE", 10**6)  # crops at the photo's own scale only
            assert assess(hazy).degradations["haze"] < PRESENT, name


def test_small_image_reads_as_low_resolution(clean_images):
    small = syn.downscale(clean_images["astronaut"], 4)  # 48×48
    a = assess(small)
    assert "low_resolution" in a.present
    assert a.measures["low_resolution_size_prior"] == 1.0


def test_size_prior_is_relative_to_the_full_resolution_side(clean_images, monkeypatch):
    from restoreagent import Configuration
    from restoreagent.tools.perception.rules import size_prior

    img = clean_images["coffee"]  # 192×192, sharp
    assert "low_resolution" in assess(img).present  # a 192-px photo is small by the default (512 px)
    a = assess(img, full_resolution_side=192)  # … but full size when the caller says so
    assert "low_resolution" not in a.present and a.measures["low_resolution_size_prior"] == 0.0
    assert size_prior(512, 700) == 0.0 and size_prior(64, 900) == 1.0
    assert abs(size_prior(128, 128) - 2 / 3) < 1e-9  # ×1/4: the severity target of a ×4 upsampling
    assert 0.19 < size_prior(340, 340) < 0.2 < size_prior(337, 337)
    monkeypatch.setenv("RESTOREAGENT_FULL_RESOLUTION_SIDE", "256")
    assert Configuration.from_env().full_resolution_side == 256


def test_fallback_without_checkpoint(clean_images, tmp_path):
    img = clean_images["coffee"]
    noisy = syn.add_gaussian_noise(img, 30, np.random.default_rng(0))
    a = assess(noisy, checkpoint=tmp_path / "missing.pt")
    _check(a)
    assert a.assessor.startswith("heuristic-v1") and "fallback" in a.assessor and "missing" in a.assessor
    assert "noise" in a.present
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    assert "unusable" in assess(img, checkpoint=bad).assessor


def test_niqe_measure_when_parameters_resolve(clean_images, weights_dir):
    params = niqe_params(weights_dir)
    assert params is not None
    img = clean_images["astronaut"]
    noisy = syn.add_gaussian_noise(img, 30, np.random.default_rng(0))
    assert niqe(noisy, *params) > niqe(img, *params)
    assert "niqe" in assess(img, weights_dir=weights_dir).measures


def test_folded_batchnorm_gives_the_trained_networks_outputs(clean_images):
    """The assessor folds its BatchNorms into the convolutions for speed; the outputs must not change."""
    import torch

    from restoreagent.tools.nets.assessor import AssessorNet
    from restoreagent.tools.perception.assess import load_learned

    learned = load_learned()
    ckpt = torch.load(DEFAULT_CHECKPOINT, map_location="cpu", weights_only=True)
    plain = AssessorNet(n=len(learned.names))
    plain.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in ckpt["state_dict"].items()})
    plain.eval()
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in learned.model.modules())
    x = torch.from_numpy(np.stack([img[:96, :96] for img in clean_images.values()])).permute(0, 3, 1, 2).float()
    with torch.inference_mode():
        for a, b in zip(learned.model(x), plain(x)):
            assert torch.allclose(a, b, atol=1e-4)


@pytest.fixture(scope="module")
def full_size_photos() -> dict[str, np.ndarray]:
    """The scikit-image photos at their own size (300–512 px high): ×1/4 makes them small images."""
    from skimage import data

    return {name: getattr(data, name)().astype(np.float32) / 255.0 for name in ("astronaut", "chelsea", "coffee", "rocket")}


def test_blur_before_a_downscale_is_found_in_a_small_image(full_size_photos):
    """A blur applied before ×1/4 is under a pixel wide afterwards: the network alone misses most
    of these (defocus reads 0.10 on coffee and rocket); the directional detail finds each and
    tells the two kinds apart."""
    for name, img in full_size_photos.items():
        defocus = assess(syn.downscale(syn.convolve(img, syn.disk_kernel(4))))
        motion = assess(syn.downscale(syn.convolve(img, syn.line_kernel(31, 30, 5))))
        sharp = assess(syn.downscale(img))
        assert "defocus_blur" in defocus.present and "motion_blur" not in defocus.present, (name, defocus.degradations)
        assert "motion_blur" in motion.present and "defocus_blur" not in motion.present, (name, motion.degradations)
        assert sharp.degradations["motion_blur"] < PRESENT, name
        assert sharp.degradations["defocus_blur"] < defocus.degradations["defocus_blur"] - 0.2, name
        assert {"detail_min", "detail_max"} <= set(defocus.measures)
    assert "detail_min" not in assess(full_size_photos["coffee"]).measures  # larger photos: the network alone


def test_small_image_blur_reading_stands_aside_for_noise_jpeg_and_the_networks_own_type(full_size_photos):
    from restoreagent.tools.perception.rules import add_small_image_blur, directional_detail

    assert directional_detail(np.full((64, 64, 3), 0.4, np.float32)) == (1.0, 1.0)  # flat: nothing to read
    assert directional_detail(np.zeros((2, 9, 3), np.float32)) == (1.0, 1.0)  # too thin for a second difference

    blurred = syn.downscale(syn.convolve(full_size_photos["coffee"], syn.disk_kernel(6)))
    cases = {  # network severities → whether the reading may raise defocus
        "clean": ({}, True),
        "noisy": ({"noise": 0.5}, False),
        "compressed": ({"jpeg": 0.4}, False),
        "motion found": ({"motion_blur": 0.3}, False),
    }
    for label, (network, raises) in cases.items():
        severities = {"defocus_blur": 0.05, **network}
        add_small_image_blur(severities, blurred, measures := {})
        assert (severities["defocus_blur"] >= PRESENT) == raises, label
        assert measures["detail_max"] < 0.9
