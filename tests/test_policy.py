"""The learned planner: oracle labels, the shipped ranker, and the default brain using it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from restoreagent.graph.planning.policy import DEFAULT_CHECKPOINT, LearnedRanker
from restoreagent.tools import default_registry
from restoreagent.tools.perception.assess import assess
from restoreagent.tools.research.evaluation.labels import label_case
from restoreagent.tools.research.evaluation.oracle import run_oracle
from restoreagent.tools.util.metrics import psnr
from restoreagent.tools.util.synthesis import add_gaussian_noise, darken, jpeg_compress


def test_label_q_values_agree_with_the_oracle(offline_context, clean_images):
    names = ["denoise_nlmeans", "denoise_oidn", "lowlight_gamma", "lowlight_clahe", "jpeg_deblock"]
    tools = {n: default_registry[n](offline_context) for n in names}
    clean = clean_images["coffee"][:64, :64]
    degraded = add_gaussian_noise(darken(clean, 0.55), 25, np.random.default_rng(0))
    label = label_case(degraded, clean, ("noise", "low_light"), tools, assess, false_floor=0.0, false_nodes=3)
    oracle = run_oracle(degraded, clean, ["noise", "low_light"], tools)
    root = next(n for n in label["nodes"] if n["depth"] == 0)
    true_moves = [m for m in root["moves"] if m["true"]]
    assert len(true_moves) == 4  # 2 tasks × 2 tools
    # The best first move's Q-value is the oracle's best leaf score.
    assert max(m["q"] for m in true_moves) == pytest.approx(oracle.best.score, abs=1e-4)
    assert label["best_score"] == pytest.approx(oracle.best.score, abs=1e-4)
    assert root["stop"] == pytest.approx(0.5 * oracle.input_psnr / 40 + 0.5 * oracle.input_ssim, abs=1e-4)
    # Each first move's Q is the best of its two leaves.
    leaves = {leaf.pipeline: leaf.score for leaf in oracle.leaves}
    for m in true_moves:
        below = [s for p, s in leaves.items() if p[0] == m["tool"]]
        assert m["q"] == pytest.approx(max(below), abs=1e-4)
    # The leaves are the four-times-two complete pipelines; stopping there is their score.
    leaf_nodes = [n for n in label["nodes"] if n["depth"] == 2]
    assert len(leaf_nodes) == len(oracle.leaves) == 8
    for n in leaf_nodes:
        assert n["stop"] == pytest.approx(leaves[tuple(n["prefix"])], abs=1e-4)
        assert all(not m["true"] for m in n["moves"])
    # The false alarm (JPEG is not among the true degradations): damage added to the best continuation.
    false = [m for m in root["moves"] if not m["true"]]
    assert false and all(m["task"] == "jpeg" for m in false)
    for m in false:
        assert m["q"] == pytest.approx(root["value"] + m["after"] - root["stop"], abs=1e-4)
    assert set(root["degradations"]) >= {"noise", "low_light"} and "p_noise" in root["measures"]


def test_a_clean_case_makes_every_move_a_false_alarm(offline_context, clean_images):
    from restoreagent.tools.research.evaluation.labels import PSNR_CAP
    from restoreagent.tools.research.training.policy import case_targets, parse_combos

    assert parse_combos("clean,noise+jpeg") == [("clean", ()), ("A", ("noise", "jpeg"))]
    names = ["denoise_nlmeans", "lowlight_gamma", "jpeg_deblock"]
    tools = {n: default_registry[n](offline_context) for n in names}
    clean = clean_images["coffee"][:64, :64]
    label = label_case(clean, clean, (), tools, assess, false_floor=0.0)
    (root,) = label["nodes"]
    # Its own reference: stopping scores the capped PSNR and SSIM 1, the best there is.
    assert root["stop"] == pytest.approx(0.5 * PSNR_CAP / 40 + 0.5) == label["best_score"]
    assert label["best_pipeline"] == [] and {m["tool"] for m in root["moves"]} == set(names)
    assert not any(m["true"] for m in root["moves"])
    ((_, advantages, _),) = case_targets(label, mode="oracle")
    # No tool gains on a clean photo: each loses, or leaves it as it was (an adaptive gamma here).
    assert max(advantages) <= 0.0 and min(advantages) < -1.0
    # False moves are labelled where the severity or the presence probability flags the task.
    by_presence = label_case(clean, clean, (), tools, assess, false_floor=2.0, false_presence=0.0)
    assert {m["tool"] for m in by_presence["nodes"][0]["moves"]} == set(names)
    assert not label_case(clean, clean, (), tools, assess, false_floor=2.0, false_presence=2.0)["nodes"][0]["moves"]


def _context(rgb: np.ndarray, history=()) -> dict:
    report = assess(rgb, full_resolution_side=192)  # the 192-px crops are full size
    return {"image_id": "img-0000000000000000", "degradations": report.degradations, "present_threshold": 0.2,
            "quality": report.quality, "measures": report.measures, "history": list(history)}


@pytest.fixture(scope="module")
def ranker() -> LearnedRanker:
    assert DEFAULT_CHECKPOINT.is_file(), "the policy checkpoint must ship with the package"
    return LearnedRanker.load()


def _center(name: str, size: int) -> np.ndarray:
    from skimage import data

    img = getattr(data, name)().astype(np.float32) / 255.0
    h, w = img.shape[:2]
    return img[(h - size) // 2 : (h - size) // 2 + size, (w - size) // 2 : (w - size) // 2 + size]


BY_TASK = {"noise": ["denoise_dncnn", "denoise_ffdnet", "denoise_oidn", "denoise_nlmeans"],
           "jpeg": ["jpeg_dncnn3", "jpeg_ours", "jpeg_deblock"], "haze": ["dehaze_dcp", "dehaze_gcanet", "dehaze_aodnet"],
           "rain": ["derain_prenet", "derain_gcanet", "derain_classical"],
           "low_light": ["lowlight_clahe", "lowlight_gamma", "lowlight_zero_dce", "lowlight_zero_dce_pp"],
           "motion_blur": ["deblur_motion_ours", "deblur_motion_wiener"],
           "defocus_blur": ["deblur_defocus_ours", "deblur_defocus_wiener"],
           "low_resolution": ["sr_fsrcnn", "sr_realesrgan_compact", "sr_lanczos"]}


def test_shipped_ranker_prefers_the_true_degradations(ranker, clean_images):
    from restoreagent.graph.brains.offline import choose

    clean = clean_images["astronaut"]
    degraded = jpeg_compress(add_gaussian_noise(clean, 30, np.random.default_rng(1)), 20)
    moves = [("noise", "denoise_dncnn"), ("noise", "denoise_ffdnet"), ("jpeg", "jpeg_dncnn3"),
             ("haze", "dehaze_dcp"), ("rain", "derain_classical"), ("low_light", "lowlight_clahe"),
             ("motion_blur", "deblur_motion_wiener")]
    every = LearnedRanker.load(margin=-1e9)  # keep every move, to compare them
    ranked = every.rank(_context(degraded), moves)
    order = [(t, n) for t, n, _ in ranked]
    assert order[0][0] in ("noise", "jpeg") and ranked[0][2] > 1.0, ranked
    best_true = min(order.index(m) for m in moves[:3])
    assert all(order.index(absent) > best_true for absent in moves[3:]), ranked
    # The shipped margin keeps the best true move.
    assert ranker.rank(_context(degraded), moves)[0][:2] == order[0]
    # Without the measures (a context with only severities and quality) it still picks a true move.
    ctx = _context(degraded)
    del ctx["measures"]
    assert every.rank(ctx, moves)[0][0] in ("noise", "jpeg")
    # On clean photos (256 px: no size prior) the brain proposes nothing.
    bound = [t for tools in BY_TASK.values() for t in tools]
    for name in ("astronaut", "chelsea", "coffee"):
        ctx = {**_context(_center(name, 256)), "tools_by_task": BY_TASK}
        assert choose(ctx, bound, ranker=ranker) is None, name


def test_choose_keeps_the_brain_contract(ranker):
    from restoreagent.graph.brains.offline import choose

    by_task = {"noise": ["denoise_dncnn", "denoise_nlmeans"], "jpeg": ["jpeg_dncnn3", "jpeg_deblock"],
               "haze": ["dehaze_dcp"]}
    ctx = {"degradations": {"noise": 0.7, "jpeg": 0.5, "haze": 0.0}, "quality": 0.4, "present_threshold": 0.2,
           "tools_by_task": by_task, "history": []}
    bound = [t for ts in by_task.values() for t in ts]
    first = choose(ctx, bound, ranker=ranker)
    assert first and first[0] in ("noise", "jpeg")
    # skip_tasks and unbound tools are honoured
    assert choose({**ctx, "skip_tasks": ["noise", "jpeg"]}, bound, ranker=ranker) is None
    assert choose(ctx, ["denoise_nlmeans"], ranker=ranker) in (("noise", "denoise_nlmeans"), None)
    # after a roll-back the same tool is never proposed again; an accepted task is done
    rolled = {**ctx, "history": [{"tool": first[1], "task": first[0], "accepted": False, "reason": "x"}]}
    nxt = choose(rolled, bound, ranker=ranker)
    assert nxt is None or nxt[1] != first[1]
    done = {**ctx, "history": [{"tool": first[1], "task": first[0], "accepted": True, "reason": "x"}]}
    nxt = choose(done, bound, ranker=ranker)
    assert nxt is None or nxt[0] != first[0]
    # a step undone by the user counts as neither done nor used
    undone = {**ctx, "history": [{"tool": first[1], "task": first[0], "accepted": True, "reason": "x", "active": False}]}
    assert choose(undone, bound, ranker=ranker) == first
    # at most max_tries_per_task tools per task
    tried = {**ctx, "history": [{"tool": t, "task": "noise", "accepted": False, "reason": "x"} for t in by_task["noise"]]}
    nxt = choose(tried, bound, ranker=ranker, max_tries_per_task=1)
    assert nxt is None or nxt[0] != "noise"


def test_a_degradation_the_photo_came_in_with_is_tried(ranker, shared_dir):
    """A real hazy photo: the ranker, trained on synthetic haze, predicts that every dehazer loses
    (as if the photo were clean), yet the haze it was found with is tried, for the observe node to
    judge; a reading that only appeared after a step, or low light below its floor, is not."""
    from restoreagent.graph.brains.offline import FALLBACK_FLOOR, choose
    from restoreagent.tools.util.imageio import load_image

    report = assess(load_image(shared_dir / "data" / "real" / "hazy" / "test5.jpg").rgb)
    ctx = {"image_id": "img-0000000000000000", "degradations": report.degradations, "present_threshold": 0.2,
           "quality": report.quality, "history": [], "tools_by_task": BY_TASK, "found_in_input": report.present,
           # denoising is offered first on this photo (tests/test_noise_level.py); here: what comes after
           "measures": {**report.measures, "denoise_gain_db": 0.0}}
    assert "haze" in report.present and report.degradations["haze"] < FALLBACK_FLOOR["low_light"]
    hazes = [("haze", t) for t in BY_TASK["haze"]]
    assert ranker.rank(ctx, hazes) == [], "the ranker should see no gain here; else this test proves nothing"
    bound = [t for tools in BY_TASK.values() for t in tools]
    task, tool = choose(ctx, bound, ranker=ranker)
    assert task == "haze", (task, tool)
    # after a roll-back the next dehazer; once every one was rolled back, the ranker's word (stop)
    tried = {**ctx, "history": [{"tool": tool, "task": "haze", "accepted": False, "reason": "x"}]}
    task2, tool2 = choose(tried, bound, ranker=ranker)
    assert task2 == "haze" and tool2 != tool
    every = {**ctx, "history": [{"tool": t, "task": "haze", "accepted": False, "reason": "x"} for t in BY_TASK["haze"]]}
    assert choose(every, bound, ranker=ranker) is None
    # haze that only appeared after a step is the ranker's to judge
    assert choose({**ctx, "found_in_input": []}, bound, ranker=ranker) is None
    # while the photo is still small, the full-scale tasks wait for super-resolution
    small = {**ctx, "found_in_input": ["haze", "low_resolution"]}
    assert (choose(small, bound, ranker=ranker) or ("",))[0] != "haze"
    # low light needs its own, higher floor (naturally dark photos exist)
    dim = {**ctx, "found_in_input": ["low_light"], "degradations": {**ctx["degradations"], "haze": 0.0, "low_light": 0.3}}
    assert choose(dim, bound, ranker=ranker) is None


def test_without_a_checkpoint_the_rules_decide(tmp_path):
    from restoreagent.graph.brains.offline import TASK_ORDER, OfflinePolicy, choose

    brain = OfflinePolicy(learned=True, checkpoint=tmp_path / "missing.pt")
    assert brain.ranker() is None and OfflinePolicy(learned=False).ranker() is None
    assert OfflinePolicy().ranker() is not None  # the learned planner is the default
    ctx = {"degradations": {"low_light": 0.9, "jpeg": 0.5}, "present_threshold": 0.2,
           "tools_by_task": {"low_light": ["lowlight_gamma"], "jpeg": ["jpeg_deblock"]}, "history": []}
    assert TASK_ORDER.index("jpeg") < TASK_ORDER.index("low_light")
    assert choose(ctx, ["lowlight_gamma", "jpeg_deblock"], ranker=brain.ranker()) == ("jpeg", "jpeg_deblock")


def test_learned_brain_restores_noise_and_jpeg(tmp_path, clean_images):
    from restoreagent import Configuration, build_graph
    from restoreagent.graph.brains.offline import OfflinePolicy
    from restoreagent.tools.util.imageio import load_image, save_png

    brain = OfflinePolicy(learned=True)
    assert brain.ranker() is not None, "the shipped ranker must load"
    clean = clean_images["chelsea"]
    degraded = jpeg_compress(add_gaussian_noise(clean, 25, np.random.default_rng(2)), 25)
    path = tmp_path / "in.png"
    save_png(degraded, path)
    graph = build_graph(Configuration(work_dir=tmp_path / "runs", weights_dir=tmp_path / "no-weights", device="cpu",
                                      full_resolution_side=192), brain=brain)
    state = graph.invoke({"image": str(path)})
    out = load_image(state["output"]).rgb
    accepted = [s for s in state["steps"] if s["accepted"]]
    assert accepted and accepted[0]["task"] in ("noise", "jpeg")
    assert len(state["steps"]) <= 4
    assert psnr(out, clean) > psnr(load_image(path).rgb, clean) + 1.0


def test_label_script_resumes(tmp_path, shared_dir):
    from restoreagent.tools.research.training.policy import main

    work = tmp_path / "work"
    args = ["labels", "--work", str(work), "--crop", "40", "--weights-dir", str(tmp_path / "no-weights"),
            "--clean-dir", str(shared_dir / "data/clean")]
    assert main([*args, "--count", "1"]) == 0
    first = work / "labels/00000.json"
    stamp = first.stat().st_mtime_ns
    label = json.loads(first.read_text())
    assert label["combo"] == ["rain", "haze"] and label["nodes"] and label["source"].split("/")[0] in (
        "cbsd68", "set14", "set5")
    assert main([*args, "--count", "2"]) == 0
    assert first.stat().st_mtime_ns == stamp  # done: not recomputed
    assert (work / "labels/00001.json").is_file()
    log = (work / "labels.log").read_text()
    assert log.count("[1/") == 1 and "[2/2]" in log


@pytest.mark.parametrize("learned", [True, False])
def test_a_photo_below_full_resolution_is_upscaled_by_two(tmp_path, learned):
    """A clean 256-px photo with full resolution 512 px: the size prior reads it ×2 small, the brain
    upscales it (the ranker, trained on ×1/4 crops only, predicts no gain there), at ×2 and not the
    tools' default ×4, whose result still looks upsampled and is rolled back."""
    import cv2
    from skimage import data

    from restoreagent import Configuration, build_graph
    from restoreagent.graph.brains.offline import OfflinePolicy
    from restoreagent.tools.util.imageio import load_image, save_png

    photo = cv2.resize(data.astronaut().astype(np.float32) / 255.0, (256, 256), interpolation=cv2.INTER_AREA)
    path = tmp_path / "small.png"
    save_png(photo, path)
    # The planner's choice and the assessor's checks: the verifier rolls this step back (its gain is
    # under the low-resolution margin, docs/VERIFIER.md), so it is off here.
    graph = build_graph(Configuration(work_dir=tmp_path / "runs", weights_dir=tmp_path / "no-weights", device="cpu",
                                      verify_steps=False), brain=OfflinePolicy(learned=learned))
    state = graph.invoke({"image": str(path)})
    sr = [s for s in state["steps"] if s["task"] == "low_resolution"]
    assert sr and all(s["args"].get("scale") == 2 for s in sr), state["steps"]
    assert sr[-1]["accepted"], sr
    assert load_image(state["output"]).rgb.shape[:2] == (512, 512)


def test_sr_scale_follows_the_size_prior():
    from restoreagent.graph.brains.offline import sr_scale, too_small

    def ctx(prior):
        return {"measures": {"low_resolution_size_prior": prior}, "present_threshold": 0.2}

    assert sr_scale(ctx(0.33)) == 2 and sr_scale(ctx(0.5)) == 2  # ×2 and ×2.8 too small
    assert sr_scale(ctx(0.67)) is None and sr_scale(ctx(0.0)) is None  # ×4: the default; full size: untouched
    assert too_small(ctx(0.33)) and not too_small(ctx(0.1)) and not too_small({})


def test_a_tool_newer_than_the_ranker_is_taken_when_it_measured_better(ranker):
    """``sr_ours`` came after the shipped ranker (it reads 0 in its one-hot): when the ranker chooses to
    upscale, the newer tool goes first if the context lists it ahead (a better held-out gain), not if it
    is listed behind the ranker's tool or was already tried."""
    from restoreagent.graph.brains.offline import choose
    from restoreagent.tools.util.synthesis import downscale

    assert "sr_ours" not in ranker.tools, "the ranker knows sr_ours now: this test proves nothing"
    ctx = _context(downscale(_center("astronaut", 192), 4))
    older = ["sr_fsrcnn", "sr_realesrgan_compact", "sr_lanczos"]
    bound = ["sr_ours", *older]
    behind = choose({**ctx, "tools_by_task": {"low_resolution": [*older, "sr_ours"]}}, bound, ranker=ranker)
    assert behind is not None and behind[0] == "low_resolution" and behind[1] in older, behind
    assert choose({**ctx, "tools_by_task": {"low_resolution": ["sr_ours", *older]}}, bound, ranker=ranker) == (
        "low_resolution", "sr_ours")
    tried = {**ctx, "tools_by_task": {"low_resolution": ["sr_ours", *older]},
             "history": [{"tool": "sr_ours", "task": "low_resolution", "accepted": False, "reason": "x"}]}
    assert choose(tried, bound, ranker=ranker) == behind
