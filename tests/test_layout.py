"""The house keeps the shape docs/ARCHITECTURE.md draws: who may import whom, and the product apart
from evaluation and training."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
RESEARCH = "restoreagent.tools.research"
TASK_FILES = ("denoise", "deblur", "dehaze", "derain", "jpeg", "lowlight", "superres")
#: What the restoration tools may use of perception: its signal estimators, never the assessor or verifier.
ESTIMATORS = ("noise_sigma", "jpeg_quality", "noise_level")


def _module(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(("restoreagent", *(parts[:-1] if parts[-1] == "__init__" else parts)))


def _imports() -> dict[str, set[str]]:
    """Module → the restoreagent modules it imports, at the top or inside a function."""
    found: dict[str, set[str]] = {}
    for path in REPO.rglob("*.py"):
        rel = path.relative_to(REPO)
        if rel.parts[0] in ("tests", "docs") or rel.parts[0].startswith("."):
            continue
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("restoreagent"):
                deps |= {f"{node.module}.{a.name}" for a in node.names} | {node.module}
            elif isinstance(node, ast.Import):
                deps |= {a.name for a in node.names if a.name.startswith("restoreagent")}
        found[_module(path)] = deps
    return found


def _violations(rule, imports: dict[str, set[str]]) -> list[str]:
    return sorted(f"{m} imports {d}" for m, deps in imports.items() for d in deps if rule(m, d))


def _under(name: str, *packages: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in packages)


def test_only_the_lab_commands_and_research_itself_import_research() -> None:
    bad = _violations(lambda m, d: _under(d, RESEARCH) and not _under(m, RESEARCH, "restoreagent.cli_lab"), _imports())
    assert not bad, bad


def test_each_layer_imports_only_the_layers_below_it() -> None:
    imports = _imports()
    tasks = tuple(f"restoreagent.tools.{t}" for t in TASK_FILES)
    rules = {
        "utilities import nothing above them": lambda m, d: _under(m, "restoreagent.tools.util")
        and not _under(d, "restoreagent.tools.util"),
        "models import the tool contract and utilities only": lambda m, d: _under(m, "restoreagent.tools.nets")
        and not _under(d, "restoreagent.tools.nets", "restoreagent.tools.base", "restoreagent.tools.util"),
        "perception uses no restoration tool and no agent": lambda m, d: _under(m, "restoreagent.tools.perception")
        and _under(d, *tasks, "restoreagent.tools.registry", "restoreagent.tools.torch_tool", "restoreagent.graph"),
        "a restoration tool imports no other tool": lambda m, d: m in tasks and _under(d, *tasks) and d.split(".")[2] != m.split(".")[2],
        "a restoration tool uses perception's estimators only": lambda m, d: m in tasks
        and _under(d, "restoreagent.tools.perception")
        and not _under(d, *(f"restoreagent.tools.perception.{e}" for e in ESTIMATORS)),
        "the tools know nothing of the agent": lambda m, d: _under(m, "restoreagent.tools")
        and not _under(m, RESEARCH) and _under(d, "restoreagent.graph", "restoreagent.cli"),
    }
    broken = {name: _violations(rule, imports) for name, rule in rules.items()}
    assert not any(broken.values()), {k: v for k, v in broken.items() if v}


def _loaded_modules(code: str, tmp_path: Path) -> list[str]:
    script = f"{code}\nimport json, sys\nprint(json.dumps(sorted(m for m in sys.modules if m.startswith('restoreagent'))))"
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_import_restoreagent_and_a_cli_restore_load_no_benchmark_or_training_code(tmp_path: Path) -> None:
    loaded = _loaded_modules("import restoreagent", tmp_path)
    assert not [m for m in loaded if _under(m, RESEARCH)], loaded

    rng = np.random.default_rng(0)
    photo = np.clip(0.5 + 0.1 * rng.standard_normal((48, 64, 3)), 0, 1)
    Image.fromarray((photo * 255).astype(np.uint8)).save(tmp_path / "in.png")
    loaded = _loaded_modules(
        "import sys, torch\ntorch.set_num_threads(1)\nfrom restoreagent.cli import app\n"
        "try:\n    app(['restore', 'in.png', '-o', 'out.png', '--max-steps', '1'])\nexcept SystemExit as e:\n"
        "    assert not e.code, e.code",
        tmp_path,
    )
    assert (tmp_path / "out.png").is_file()
    assert "restoreagent.graph.nodes" in loaded and "restoreagent.tools.perception.assess" in loaded  # it ran
    assert not [m for m in loaded if _under(m, RESEARCH)], loaded


def test_every_registered_tool_is_complete_for_the_planner_and_the_weights_manifest() -> None:
    """pyiqa's contract test: a new tool that misses a piece fails here, with what to do."""
    from restoreagent.graph.planning.policy import TOOL_NAMES
    from restoreagent.graph.toolbox import load_scores
    from restoreagent.tools import default_registry
    from restoreagent.tools.base import DEGRADATIONS
    from restoreagent.tools.weights import load_manifest

    manifest, scores = load_manifest(), load_scores()
    for cls in default_registry.classes():
        spec = cls.spec
        assert spec.task in DEGRADATIONS, spec.name
        assert "image_id" in cls.Args.model_fields, f"{spec.name}: Args must start from ToolArgs (image_id)"
        missing = [w for w in spec.weights if w not in manifest]
        assert not missing, f"{spec.name}: add {missing} to checkpoints/weights.json"
        assert spec.name in scores, f"{spec.name}: measure it (restoreagent bench-tools) for checkpoints/tool_scores.json"
        assert spec.name in TOOL_NAMES, (f"{spec.name}: add it to TOOL_NAMES in graph/planning/policy.py and retrain "
                                         "the ranker (docs/TRAINING.md), or the planner cannot tell it apart")
    assert len(set(default_registry.names())) == len(default_registry.names())

