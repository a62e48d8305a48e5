"""Fast commands: the CLI module, `--help`, `tools` and `weights list` never import torch (issue 32, item 5).
Checked on sys.modules in a fresh interpreter, not by timing (figures: docs/BENCHMARKS.md)."""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = """
import json, sys
from typer.testing import CliRunner
import restoreagent.cli as cli
loaded = {"import": "torch" in sys.modules}
for args in (["--help"], ["tools"], ["weights", "list"], ["restore", "missing.jpg", "-o", "out.png"]):
    result = CliRunner().invoke(cli.app, args)
    loaded[" ".join(args)] = ["torch" in sys.modules, "langchain_core" in sys.modules, result.exit_code]
print(json.dumps(loaded))
"""


def test_the_cli_and_its_light_commands_do_not_import_torch(tmp_path):
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert loaded.pop("import") is False
    assert loaded == {"--help": [False, False, 0], "tools": [False, False, 0], "weights list": [False, False, 0],
                      "restore missing.jpg -o out.png": [False, False, 2]}
