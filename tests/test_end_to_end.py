"""End to end: dark + noise + JPEG photos restored through graph.invoke and the CLI."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from restoreagent import Configuration, build_graph, restore
from restoreagent.tools.util.imageio import load_image
from restoreagent.tools.util.metrics import psnr
from restoreagent.tools.util.synthesis import dark_noise_jpeg


def _save(rgb: np.ndarray, path: Path) -> Path:
    Image.fromarray((np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8)).save(path)
    return path


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def mixtures(clean_images, tmp_path_factory):
    folder = tmp_path_factory.mktemp("mixtures")
    out = {}
    for i, (name, clean) in enumerate(clean_images.items()):
        out[name] = (clean, _save(dark_noise_jpeg(clean, seed=i), folder / f"{name}.png"))
    return out


def _assert_clear_gain(gains: dict[str, float]) -> None:
    # A clear mean gain, and a clear gain on most images. The dim "rocket" scene is the
    # hard one: darkened further, its true brightness is ambiguous to any blind tool.
    assert np.mean(list(gains.values())) > 3.0, gains
    assert sum(g > 1.0 for g in gains.values()) >= 3, gains


def _gains(graph, mixtures, tmp_path):
    gains = {}
    for name, (clean, path) in mixtures.items():
        digest = _sha(path)
        state = graph.invoke({"image": str(path), "output": str(tmp_path / f"{name}_out.png")})
        assert _sha(path) == digest, "the input must never be modified"
        restored = load_image(state["output"]).rgb
        gains[name] = psnr(restored, clean) - psnr(load_image(path).rgb, clean)
        assert any(s["accepted"] for s in state["steps"])
        assert set(state["degradations"]) >= {"noise", "jpeg", "low_light"}
        assert all(0.0 <= v <= 1.0 for v in state["degradations"].values())
        # the input was noisy, so low light is judged by exposure for the whole run (tools/perception/assess.py)
        assert state["low_light_trust_network"] is False
    return gains


def test_graph_invoke_without_weights_raises_psnr(mixtures, tmp_path):
    """Out of the box (no weights configured): weight-free tools still restore."""
    # The tools and the loop, judged by the assessor alone: the verifier rejects the low-light step on this
    # dark mixture, which it cannot tell from a dim scene (docs/VERIFIER.md; its verdicts: test_verifier.py).
    config = Configuration(work_dir=tmp_path / "runs", weights_dir=tmp_path / "none", cache_dir=tmp_path / "none",
                           full_resolution_side=192, verify_steps=False)  # the 192-px crops are full size
    gains = _gains(build_graph(config), mixtures, tmp_path)
    _assert_clear_gain(gains)


def test_graph_invoke_with_pretrained_weights_raises_psnr(mixtures, weights_dir, tmp_path):
    config = Configuration(work_dir=tmp_path / "runs", weights_dir=weights_dir, cache_dir=tmp_path / "cache",
                           full_resolution_side=192, verify_steps=False)  # as above
    gains = _gains(build_graph(config), mixtures, tmp_path)
    _assert_clear_gain(gains)


def test_restore_helper_returns_typed_result(mixtures, tmp_path):
    clean, path = mixtures["coffee"]
    events = []
    result = restore(path, tmp_path / "r.png", work_dir=tmp_path / "runs", weights_dir=tmp_path / "none",
                     on_event=events.append, verify_steps=False)  # the dark mixture: see above
    assert result.output.is_file() and result.steps
    assert result.quality > result.quality_before
    assert psnr(load_image(result.output).rgb, clean) > psnr(load_image(path).rgb, clean) + 1.0
    assert any(e["event"] == "observed" for e in events)
    # Arrays are accepted too.
    arr = (load_image(path).rgb * 255).astype(np.uint8)
    again = restore(arr, work_dir=tmp_path / "runs", weights_dir=tmp_path / "none")
    assert again.output.is_file()


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "restoreagent", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600, env={**__import__("os").environ, "RESTOREAGENT_WORK_DIR": str(cwd / "runs"),
                                           "RESTOREAGENT_VERIFY": "0"})  # the dark mixture: see above


def test_cli_restore_writes_output_and_report(mixtures, tmp_path):
    clean, path = mixtures["astronaut"]
    digest = _sha(path)
    res = _cli("restore", str(path), "-o", "out.png", "--report", "report.json", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "step 1" in res.stderr and "accepted" in res.stderr
    assert _sha(path) == digest
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["steps"] and {"tool", "args", "accepted", "seconds"} <= set(report["steps"][0])
    assert psnr(load_image(tmp_path / "out.png").rgb, clean) > psnr(load_image(path).rgb, clean) + 1.0
    # Existing output: refused without --overwrite, and left untouched.
    before = _sha(tmp_path / "out.png")
    again = _cli("restore", str(path), "-o", "out.png", cwd=tmp_path)
    assert again.returncode == 2 and "exists" in again.stderr and "Traceback" not in again.stderr
    assert _sha(tmp_path / "out.png") == before
    assert _cli("restore", str(path), "-o", "out.png", "--overwrite", cwd=tmp_path).returncode == 0


@pytest.mark.parametrize(
    "content, expected",
    [(None, "no such file"), (b"", "empty"), (b"not an image at all", "not an image"),
     (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00", "corrupt")],
)
def test_cli_bad_input_is_one_clean_line(tmp_path, content, expected):
    bad = tmp_path / "bad.png"
    if content is not None:
        bad.write_bytes(content)
    for cmd in (["assess", str(bad)], ["restore", str(bad), "-o", "x.png"]):
        res = _cli(*cmd, cwd=tmp_path)
        assert res.returncode == 2
        assert "Traceback" not in res.stderr
        lines = [l for l in res.stderr.splitlines() if l.strip()]
        assert len(lines) == 1 and expected in lines[0], res.stderr
    assert not (tmp_path / "x.png").exists()


def test_cli_assess_prints_json(mixtures, tmp_path):
    _, path = mixtures["chelsea"]
    res = _cli("assess", str(path), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert "low_light" in report["present"] and "jpeg" in report["present"]


def test_cli_assess_adds_niqe_from_the_weights_folder(mixtures, tmp_path, weights_dir):
    _, path = mixtures["chelsea"]
    res = _cli("assess", str(path), "--weights-dir", str(weights_dir), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["measures"]["niqe"] > 0


def test_alpha_and_first_frame_survive_the_whole_pipeline(tmp_path, clean_images):
    """RGBA in → RGB restored, alpha written back unchanged; an animated file → first frame, said so."""
    noisy = dark_noise_jpeg(clean_images["coffee"], seed=3)
    alpha = np.tile(np.linspace(0, 255, 192, dtype=np.uint8), (192, 1))
    rgba = np.dstack([(noisy * 255 + 0.5).astype(np.uint8), alpha])
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    # --scale 1: a 192-px photo is under the default full side, and `auto` may upscale it (the alpha is
    # then resized with it); here the alpha must come back bit for bit
    res = _cli("restore", "rgba.png", "-o", "out.png", "--scale", "1", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    out = np.asarray(Image.open(tmp_path / "out.png"))
    assert out.shape == (192, 192, 4) and np.array_equal(out[..., 3], alpha)
    assert psnr(out[..., :3] / 255.0, clean_images["coffee"]) > psnr(noisy, clean_images["coffee"]) + 1
    frames = [Image.fromarray(rgba[..., :3]), Image.fromarray(255 - rgba[..., :3])]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    res = _cli("restore", "anim.gif", "-o", "anim.png", cwd=tmp_path)
    assert res.returncode == 0 and "note: 2 frames: using the first" in res.stderr


def test_transparent_letterboxing_is_not_read_as_a_dark_photo(tmp_path):
    """A thumbnail in a transparent black frame is judged on its opaque part: no false low light."""
    from skimage import data

    photo = data.astronaut()[::2, ::2]  # a clean, well-exposed 256×256 photo
    rgba = np.zeros((480, 256, 4), np.uint8)  # transparent black bands above and below (47 %)
    rgba[112:368, :, :3], rgba[112:368, :, 3] = photo, 255
    Image.fromarray(rgba).save(tmp_path / "thumb.png")
    report = json.loads(_cli("assess", "thumb.png", cwd=tmp_path).stdout)
    assert "low_light" not in report["present"], report["degradations"]
    graph = build_graph(Configuration(work_dir=tmp_path / "runs", cache_dir=tmp_path / "cache"))
    state = graph.invoke({"image": str(tmp_path / "thumb.png"), "output": str(tmp_path / "out.png")})
    assert "low_light" not in state["plan"], state["degradations"]
    assert all(s["task"] != "low_light" for s in state["steps"]), state["steps"]
    assert np.asarray(Image.open(tmp_path / "out.png")).shape[2] == 4  # the frame stays transparent


def test_clean_photos_are_left_alone(shared_dir, weights_dir, tmp_path):
    """The default brain does not 'restore' ordinary, clean photos (a false brightening costs 3–13 dB)."""
    graph = build_graph(Configuration(work_dir=tmp_path / "runs", weights_dir=weights_dir, cache_dir=tmp_path / "cache"))
    for name in ("kodak24/kodim03.png", "kodak24/kodim04.png", "live1/building2.png", "live1/coinsinfountain.png"):
        path = shared_dir / "data" / "clean" / name
        state = graph.invoke({"image": str(path)})
        changed = psnr(load_image(state["output"]).rgb, load_image(path).rgb)
        assert changed > 35.0, (name, changed, [s["tool"] for s in state["steps"] if s["accepted"]])
