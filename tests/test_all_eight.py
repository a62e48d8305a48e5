"""The agent restores each of the eight degradations, also with permissive licences only."""

from __future__ import annotations

import pytest

from restoreagent import Configuration, build_graph
from restoreagent.tools import default_registry
from restoreagent.tools.research.evaluation.oracle import match_size
from restoreagent.tools.util.imageio import load_image, save_png
from restoreagent.tools.util.metrics import psnr
from restoreagent.tools.util.synthesis import SYNTHESIS_ORDER, degrade


@pytest.fixture(scope="module", params=[True, False], ids=["permissive-only", "all-licences"])
def graph(request, weights_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("eight")
    config = Configuration(work_dir=root / "runs", weights_dir=weights_dir, cache_dir=root / "cache",
                           permissive_only=request.param, full_resolution_side=192,  # the 192-px crops are full size
                           verify_steps=False)  # tool coverage; the verifier's verdicts: test_verifier.py
    return build_graph(config), request.param


@pytest.mark.parametrize("degradation", SYNTHESIS_ORDER)
def test_each_degradation_is_found_and_improved(graph, degradation, clean_images, tmp_path):
    graph, permissive = graph
    clean = clean_images["coffee"]
    degraded, _ = degrade(clean, (degradation,), seed=SYNTHESIS_ORDER.index(degradation))
    path = save_png(degraded, tmp_path / "in.png")
    state = graph.invoke({"image": str(path)})
    assert degradation in state["plan"]
    used = [s["tool"] for s in state["steps"] if s["accepted"]]
    assert any(default_registry[t].spec.task == degradation for t in used), used
    if permissive:
        assert all(default_registry[s["tool"]].spec.commercial for s in state["steps"])
    before = psnr(match_size(degraded, clean.shape), clean)
    after = psnr(match_size(load_image(state["output"]).rgb, clean.shape), clean)
    assert after > before + 0.5, (used, before, after)
