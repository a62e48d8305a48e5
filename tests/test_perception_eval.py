"""``python -m restoreagent.tools.perception_eval``: the evaluation that writes docs/PERCEPTION.md
(here on two images per set, into a temporary file)."""

from __future__ import annotations

import re
import subprocess
import sys


def test_evaluation_writes_the_perception_report(shared_dir, tmp_path):
    out = tmp_path / "PERCEPTION.md"
    res = subprocess.run([sys.executable, "-m", "restoreagent.tools.perception_eval", "--shared", str(shared_dir),
                          "--out", str(out), "--limit", "2"], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    doc = out.read_text()
    for heading in ("## Summary", "## Synthetic MiO mixtures", "Where the misses are", "## Real degraded photos",
                    "## Design", "## What the real-set misses are"):
        assert heading in doc, heading
    f1 = float(re.search(r"\| macro-F1, 16 MiO combos × 2 eval images \| ≥ 0.95 \| ([0-9.]+) \|", doc).group(1))
    assert 0.0 <= f1 <= 1.0
    # every real folder is listed with its detection count out of the two photos read
    for folder in ("noisy_rni15", "lowlight_dicm", "hazy", "jpeg", "lowres_realsrset"):
        assert re.search(rf"\| {folder} \| [a-z_]+ \| 2 \| [012] \|", doc), folder
