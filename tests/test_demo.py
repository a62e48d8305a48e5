"""The README's main job: `restoreagent demo` works with no weights, key or server."""

from __future__ import annotations

import json
import os
import subprocess
import sys


def test_demo_runs_offline_and_does_no_harm(tmp_path):
    env = {**os.environ, "RESTOREAGENT_WORK_DIR": str(tmp_path / "runs"), "RESTOREAGENT_WEIGHTS_DIR": str(tmp_path / "none"),
           "RESTOREAGENT_CACHE_DIR": str(tmp_path / "none")}
    res = subprocess.run([sys.executable, "-m", "restoreagent", "demo", "--out", "demo"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=600, env=env)
    assert res.returncode == 0, res.stderr
    folder = tmp_path / "demo"
    for name in ("clean.png", "degraded.png", "restored.png", "comparison.png", "report.json"):
        assert (folder / name).is_file(), name
    report = json.loads((folder / "report.json").read_text())
    # The verifier rolls back the brightening it cannot tell from a dim scene (docs/VERIFIER.md): no harm.
    assert report["psnr_after"] > report["psnr_before"] - 0.1
    # A second run never overwrites the first.
    again = subprocess.run([sys.executable, "-m", "restoreagent", "demo", "--out", "demo"], cwd=tmp_path,
                           capture_output=True, text=True, timeout=600, env=env)
    assert again.returncode == 0 and (tmp_path / "demo-2" / "restored.png").is_file()
