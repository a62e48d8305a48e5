"""``python -m restoreagent.tools.research.evaluation.perception``: the evaluation that writes docs/PERCEPTION.md
(here on two images per set, into a temporary file)."""

from __future__ import annotations

import re
import subprocess
import sys

from PIL import Image

from restoreagent.tools.research.evaluation.perception import threshold_ceiling


def test_evaluation_writes_the_perception_report(shared_dir, tmp_path):
    out = tmp_path / "PERCEPTION.md"
    res = subprocess.run([sys.executable, "-m", "restoreagent.tools.research.evaluation.perception", "--shared", str(shared_dir),
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
    # the JPEG photos' own last-save quality, and the bound on what thresholds could reach
    assert re.search(r"The `jpeg` photos were last saved at quality 1\.jpg \d+, 2\.jpg \d+ ", doc)
    rate = float(re.search(r"pooled detection would be ([0-9.]+)% \((\d+) of 18;", doc).group(1))
    found = re.search(r"\| detection on the real sets \(all folders pooled\) \| ≥ 90% \| ([0-9.]+)% \|", doc)
    alarms = float(re.search(r"\| false alarms on clean eval images .* \| ≤ 5% \| ([0-9.]+)% \|", doc).group(1))
    if alarms == 0.0:  # within the budget (0 of 2 images here), hindsight never does worse than the calibration
        assert float(found.group(1)) <= rate
    assert 0.0 <= rate <= 100.0
    # the misses, as a picture the report shows: the synthetic categories, then the real folders
    missed_real = sum(1 for line in doc.splitlines() if re.match(r"- [a-z0-9_]+: .+ [0-9.]+", line))
    if "![synthetic and real misses](images/perception_misses.jpg)" not in doc:
        assert not missed_real and "Where the misses are (the 0 largest" in doc
        return
    with Image.open(tmp_path / "images" / "perception_misses.jpg") as im:
        categories = int(re.search(r"Where the misses are \(the (\d+) largest", doc).group(1))
        rows = -(-min(categories, 4) // 2) + -(-missed_real // 4)  # two synthetic pairs, or four photos, a row
        assert im.format == "JPEG" and im.height > rows * 200


def test_threshold_ceiling_is_the_best_any_thresholds_give_within_the_budget():
    clean = [{"noise": 0.30, "haze": 0.0}, {"noise": 0.10, "haze": 0.25}, {"noise": 0.05, "haze": 0.05}]
    real = [("noise", {"noise": 0.12}), ("noise", {"noise": 0.08}), ("noise", {"noise": 0.40}),
            ("haze", {"haze": 0.10}), ("haze", {"haze": 0.30})]
    # no clean image flagged: noise above 0.30, haze above 0.25 → 0.40 and 0.30 found
    none = threshold_ceiling(real, clean, budget=0)
    assert (none["detected"], none["clean_flagged"], none["missed"]) == (2, 0, {"noise": 2, "haze": 1})
    # one may be flagged: the best spends it on the image whose noise reads 0.30 (then 0.12 is found),
    # not on the hazy one (which would find nothing more)
    one = threshold_ceiling(real, clean, budget=1)
    assert (one["detected"], one["clean_flagged"]) == (3, 1) and 0.10 < one["thresholds"]["noise"] <= 0.12
    # a degradation outside the real sets' counts at the presence threshold and uses up the budget
    alarm = clean[:2] + [{**clean[2], "rain": 0.5}]
    assert threshold_ceiling(real, alarm, budget=1)["detected"] == 2
