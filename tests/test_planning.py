"""The exhaustive oracle, the baselines and `restoreagent bench`."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from restoreagent.tools import default_registry
from restoreagent.tools.research.evaluation.baselines import FIXED_ORDER, fixed_pipeline, random_pipeline
from restoreagent.tools.research.evaluation.oracle import enumerate_pipelines, run_oracle
from restoreagent.tools.util.synthesis import add_gaussian_noise, darken


def test_enumeration_counts_orders_times_tools():
    by_task = {"noise": ["a", "b", "c"], "jpeg": ["d", "e"], "haze": ["f"]}
    pipes = enumerate_pipelines(["noise", "jpeg", "haze"], by_task)
    assert len(pipes) == math.factorial(3) * 3 * 2 * 1 == len(set(pipes))


def test_oracle_shares_prefixes_and_finds_the_best(offline_context, clean_images):
    names = ["denoise_nlmeans", "denoise_oidn", "lowlight_gamma", "lowlight_clahe"]
    tools = {n: default_registry[n](offline_context) for n in names}
    clean = clean_images["coffee"][:96, :96]
    degraded = add_gaussian_noise(darken(clean, 0.55), 25, np.random.default_rng(0))
    runs = []
    result = run_oracle(degraded, clean, ["noise", "low_light"], tools, on_run=runs.append)
    assert len(result.leaves) == 2 * 2 * 2
    # Prefix tree: 2 orders × 2 first tools, then 4 prefixes × 2 second tools.
    assert result.tool_runs == len(runs) == 4 + 8
    assert len(set(runs)) == len(runs)
    best = result.best
    assert all(best.score >= leaf.score for leaf in result.leaves)
    assert result.rank(best.pipeline) == 1 and result.percentile(best.score) == 100.0
    assert best.psnr > result.input_psnr + 3
    with pytest.raises(KeyError):
        result.rank(("lowlight_gamma",))
    # Inner nodes are scored too: the input and the four one-tool prefixes.
    assert sorted(len(node.pipeline) for node in result.inner) == [0, 1, 1, 1, 1]
    assert result.best_within(["noise", "low_light"]) == best
    untouched = result.best_within([])
    assert untouched.pipeline == () and untouched.psnr == result.input_psnr
    noise_only = result.best_within(["noise", "haze"])  # a task outside the tree is ignored
    assert [result.task_of[n] for n in noise_only.pipeline] == ["noise"]
    assert untouched.score < noise_only.score < best.score
    assert noise_only == max((n for n in result.inner if len(n.pipeline) == 1 and n.pipeline[0].startswith("denoise")),
                             key=lambda n: n.score)


def test_baselines_follow_their_rules():
    by_task = {"noise": ["n1", "n2"], "jpeg": ["j1"], "low_light": ["l1", "l2"]}
    assert fixed_pipeline(["low_light", "noise", "jpeg"], by_task) == ("j1", "n1", "l1")
    assert FIXED_ORDER.index("jpeg") == 0
    rng = np.random.default_rng(0)
    seen = {random_pipeline(["noise", "low_light"], by_task, rng) for _ in range(50)}
    assert len(seen) > 4 and all(len(p) == 2 for p in seen)


def test_bench_command_writes_results_summary_and_picture(tmp_path, shared_dir):
    env = {**os.environ, "RESTOREAGENT_WORK_DIR": str(tmp_path / "runs"), "RESTOREAGENT_WEIGHTS_DIR": str(tmp_path / "none")}
    # Case 3 of the cycle is dark+noise, which the weight-free tools cover.
    res = subprocess.run([sys.executable, "-m", "restoreagent", "bench", "--images", str(shared_dir / "data/clean/kodak24"),
                          "--out", "out", "--limit", "3", "--crop", "64"], cwd=tmp_path, capture_output=True, text=True,
                         timeout=600, env=env)
    assert res.returncode == 0, res.stderr
    report = json.loads((tmp_path / "out/results.json").read_text())
    case = next(c for c in report["cases"] if c["combo"] == ["low_light", "noise"])
    for planner in ("agent", "oracle", "fixed", "random"):
        assert {"psnr", "ssim", "executions", "seconds", "pipeline"} <= set(case[planner])
    assert case["oracle"]["score"] >= max(case[p]["score"] for p in ("fixed", "random")) - 1e-9
    assert 0 <= case["agent"]["percentile"] <= 100
    # The oracle on the degradations the agent found: between the input and the full oracle.
    found = case["found"]
    assert set(found["tasks"]) <= set(case["combo"])
    assert case["input"]["score"] - 1e-4 <= found["score"] <= case["oracle"]["score"] + 1e-4
    assert isinstance(case["agent"]["false_alarms_treated"], list)
    summary = (tmp_path / "out/summary.md").read_text()
    assert "oracle on found only" in summary and "| low_light+noise | 1 |" in summary
    assert 0 < case["agent"]["planning_observing"] < case["agent"]["overhead"] < 1
    assert "## Group A" in (tmp_path / "out/summary.md").read_text()
    assert (tmp_path / "out/contact.png").is_file()


def test_bench_reads_a_prepared_set_and_writes_one(tmp_path, clean_images):
    """Every run writes its cases as a prepared set (manifest + degraded + clean); --prepared reruns exactly them."""
    from restoreagent.tools.util.imageio import save_png

    for name in ("astronaut", "chelsea", "coffee"):
        save_png(clean_images[name], tmp_path / "clean" / f"{name}.png")
    env = {**os.environ, "RESTOREAGENT_WORK_DIR": str(tmp_path / "runs"), "RESTOREAGENT_WEIGHTS_DIR": str(tmp_path / "none")}

    def bench(*args):
        return subprocess.run([sys.executable, "-m", "restoreagent", "bench", "--planners", "agent,fixed", *args],
                              cwd=tmp_path, capture_output=True, text=True, timeout=600, env=env)

    first = bench("--images", "clean", "--out", "one", "--limit", "3", "--crop", "64")
    assert first.returncode == 0, first.stderr
    manifest = json.loads((tmp_path / "one/cases/manifest.json").read_text())
    assert [c["combo"] for c in manifest["cases"]] == [["rain", "haze"], ["motion_blur", "low_resolution"],
                                                       ["low_light", "noise"]]
    again = bench("--prepared", "one/cases", "--out", "two")
    assert again.returncode == 0, again.stderr
    one, two = (json.loads((tmp_path / d / "results.json").read_text())["cases"] for d in ("one", "two"))
    for a, b in zip(one, two, strict=True):
        assert a["id"] == b["id"] and a["combo"] == b["combo"] and a["input"] == b["input"]
        for planner in ("agent", "fixed"):  # the same 8-bit inputs: the same results
            assert a[planner]["pipeline"] == b[planner]["pipeline"] and a[planner]["psnr"] == b[planner]["psnr"]

    repeat = bench("--images", "clean", "--out", "one", "--limit", "3", "--crop", "64")
    assert repeat.returncode == 2 and "pass --overwrite" in repeat.stderr
    both = bench("--images", "clean", "--prepared", "one/cases", "--out", "x")
    assert both.returncode == 2 and "either --images" in both.stderr
    bad = json.loads((tmp_path / "one/cases/manifest.json").read_text())
    bad["cases"][0]["combo"] = ["fog"]
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad/manifest.json").write_text(json.dumps(bad))
    broken = bench("--prepared", "bad", "--out", "y")
    assert broken.returncode == 2 and "unknown degradation(s) fog" in broken.stderr and "Traceback" not in broken.stderr


def test_export_sft_writes_oracle_labelled_chat_examples(tmp_path, shared_dir):
    env = {**os.environ, "RESTOREAGENT_WEIGHTS_DIR": str(tmp_path / "none")}
    # Cases 3 and 5 of the MiO cycle (dark+noise, noise+jpeg) are covered by weight-free tools.
    res = subprocess.run([sys.executable, "-m", "restoreagent", "export-sft", "--out", "sft", "--limit", "5",
                          "--crop", "48", "--clean-dir", str(shared_dir / "data/clean")],
                         cwd=tmp_path, capture_output=True, text=True, timeout=600, env=env)
    assert res.returncode == 0, res.stderr
    rows = [json.loads(line) for line in (tmp_path / "sft/sft.jsonl").read_text().splitlines()]
    assert rows and all(len(r["messages"]) == 3 for r in rows)
    for r in rows:
        system, user, assistant = r["messages"]
        assert "Available tools" in system["content"]
        image = next(part["image"] for part in user["content"] if part["type"] == "image")
        assert (tmp_path / "sft" / image).is_file()
        plan = json.loads(assistant["content"])
        assert sorted(step["task"] for step in plan["plan"]) == sorted(plan["degradations"])
        assert r["meta"]["source"] not in {p.name for p in (shared_dir / "data/clean/kodak24").iterdir()}
