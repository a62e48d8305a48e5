"""``python -m restoreagent.tools.research.evaluation.niqe_study``: whether NIQE should judge a step (train split)."""

from __future__ import annotations

import re
import subprocess
import sys


def test_niqe_study_runs_the_agent_with_and_without_the_veto_and_prints_both_tables(shared_dir, weights_dir):
    res = subprocess.run([sys.executable, "-m", "restoreagent.tools.research.evaluation.niqe_study", "--clean",
                          str(shared_dir / "data" / "clean"), "--weights-dir", str(weights_dir), "--limit", "2"],
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    # first order: what vetoing each accepted step whose NIQE rose would have rolled back
    assert re.search(r"accepted steps: [1-9]\d*, with NIQE on both sides: \d+", res.stdout), res.stdout
    # end to end, per limit: the agent's mean gain over the input on the same two cases
    gains = dict(re.findall(r"^\| (none|[0-9.]+) \| ([+-][0-9.]+) \| \d+ \|$", res.stdout, re.M))
    assert set(gains) == {"none", "0.5", "1", "1.5", "2", "3"}, res.stdout
    assert all(float(g) > 0 for g in gains.values()), gains  # two train images, restored either way
