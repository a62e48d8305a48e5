"""``python -m restoreagent.tools.perception_eval``: the evaluation that writes docs/PERCEPTION.md
(here on two images per set, into a temporary file)."""

from __future__ import annotations

import re
import subprocess
import sys

from PIL import Image


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
    # what one observation of the graph costs (NIQE's parameters are in the shared weights)
    for side in (256, 512):
        assert re.search(rf"\| ms per {side}×{side} image, full `assess` with NIQE .* \| — \| \d+ \|", doc), side
    # every real folder is listed with its detection count out of the two photos read
    for folder in ("noisy_rni15", "lowlight_dicm", "hazy", "jpeg", "lowres_realsrset"):
        assert re.search(rf"\| {folder} \| [a-z_]+ \| 2 \| [012] \|", doc), folder
    # the misses, as a picture the report shows: the synthetic categories, then the real folders
    missed_real = sum(1 for line in doc.splitlines() if re.match(r"- [a-z0-9_]+: .+ [0-9.]+", line))
    if "![synthetic and real misses](images/perception_misses.jpg)" not in doc:
        assert not missed_real and "Where the misses are (the 0 largest" in doc
        return
    with Image.open(tmp_path / "images" / "perception_misses.jpg") as im:
        categories = int(re.search(r"Where the misses are \(the (\d+) largest", doc).group(1))
        rows = -(-min(categories, 4) // 2) + -(-missed_real // 4)  # two synthetic pairs, or four photos, a row
        assert im.format == "JPEG" and im.height > rows * 200
