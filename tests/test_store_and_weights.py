"""Artifact store, tiling and the weights resolver (checksums, cache, download)."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import numpy as np
import pytest

from restoreagent.graph.store import ArtifactStore, OpenStores, UnknownImageId
from restoreagent.tools.base import ToolUnavailable
from restoreagent.tools.util.tiling import report_tiles, tiled
from restoreagent.tools.weights import WeightsEntry, WeightsResolver, load_manifest


def test_store_is_content_addressed_and_lossless_enough(tmp_path):
    store = ArtifactStore(tmp_path)
    rng = np.random.default_rng(0)
    img = rng.random((37, 53, 3), dtype=np.float32)
    a, b = store.put(img), store.put(img.copy())
    assert a == b and a.startswith("img-")
    assert np.abs(store.get(a) - img).max() < 1e-4
    assert store.put(img * 0.5) != a


@pytest.mark.parametrize("bad", ["../../etc/passwd", "/tmp/x.png", "img-zzzz", "img-0123456789abcdef", 42])
def test_store_rejects_paths_and_unknown_ids(tmp_path, bad):
    with pytest.raises(UnknownImageId):
        ArtifactStore(tmp_path).get(bad)


def test_store_is_safe_under_concurrent_writers(tmp_path):
    store = ArtifactStore(tmp_path)
    imgs = [np.full((64, 64, 3), i / 10, np.float32) for i in range(5)]
    ids: list[str] = []
    lock = threading.Lock()

    def work():
        for im in imgs:
            i = store.put(im)
            with lock:
                ids.append(i)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(ids)) == 5
    for i, im in zip(dict.fromkeys(ids), imgs):
        assert np.allclose(store.get(i), im, atol=1e-4)
    assert not list(tmp_path.glob(".tmp-*"))


def test_store_keeps_its_latest_images_in_memory_exactly_as_stored(tmp_path):
    rng = np.random.default_rng(2)
    imgs = [rng.random((40, 30, 3), dtype=np.float32) for _ in range(3)]
    store = ArtifactStore(tmp_path, keep=2)
    ids = [store.put(im) for im in imgs]
    for i in ids:  # bit-identical to reading the file
        assert np.array_equal(store.get(i), ArtifactStore(tmp_path).get(i))
    # ids[1] and ids[2] were read last: with their files spoiled, only they still read (from memory)
    for i in ids:
        (tmp_path / f"{i}.png").write_bytes(b"not a png")
    with pytest.raises(UnknownImageId, match="unreadable"):
        store.get(ids[0])
    kept = store.get(ids[2])
    kept[:] = 0  # a caller's changes never reach the store
    assert np.abs(store.get(ids[2]) - imgs[2]).max() < 1e-4
    with pytest.raises(UnknownImageId):
        store.get("img-0123456789abcdef")  # unknown ids are still refused


def test_open_stores_hold_one_store_per_run_until_it_is_closed(tmp_path):
    stores = OpenStores(runs=2)
    a = stores(tmp_path / "a")
    assert stores(tmp_path / "a") is a
    stores.close(tmp_path / "a")
    again = stores(tmp_path / "a")
    assert again is not a
    b, c = stores(tmp_path / "b"), stores(tmp_path / "c")  # a third run lets the oldest go
    assert stores(tmp_path / "b") is b and stores(tmp_path / "c") is c
    assert stores(tmp_path / "a") is not again


def test_tiled_matches_whole_image_for_pointwise_and_local_ops():
    rng = np.random.default_rng(1)
    img = rng.random((300, 410, 3), dtype=np.float32)
    assert np.allclose(tiled(lambda x: x * 0.5, img, tile=128, overlap=16), img * 0.5, atol=1e-6)
    up = tiled(lambda x: x.repeat(2, 0).repeat(2, 1), img, tile=128, overlap=16, scale=2)
    assert up.shape == (600, 820, 3) and np.allclose(up[::2, ::2], img, atol=1e-6)


def test_tiled_reports_each_tile_inside_report_tiles():
    img = np.zeros((300, 410, 3), np.float32)
    seen: list[tuple[int, int]] = []
    with report_tiles(lambda done, total: seen.append((done, total))):
        tiled(lambda x: x, img, tile=128, overlap=16)
        tiled(lambda x: x, img[:100, :100], tile=128)  # one piece: no tiles to report
    tiled(lambda x: x, img, tile=128, overlap=16)  # outside the block: not reported
    n = 3 * 4  # rows start at 0, 112, 172; columns at 0, 112, 224, 282
    assert seen == [(i, n) for i in range(1, n + 1)]


def _entry(tmp_path: Path, payload: bytes, url: str | None = None) -> WeightsEntry:
    return WeightsEntry(id="toy", file="toy/toy.pth", sha256=hashlib.sha256(payload).hexdigest(), size=len(payload),
                        task="noise", architecture="toy", license="MIT", commercial=True, url=url)


def test_resolver_prefers_local_dir_and_verifies(tmp_path):
    payload = b"weights" * 100
    (tmp_path / "w" / "toy").mkdir(parents=True)
    (tmp_path / "w" / "toy" / "toy.pth").write_bytes(payload)
    r = WeightsResolver(tmp_path / "w", tmp_path / "cache", manifest={"toy": _entry(tmp_path, payload)})
    assert r.resolve("toy") == tmp_path / "w" / "toy" / "toy.pth"


def test_resolver_rejects_corrupt_file_with_clear_message(tmp_path):
    payload = b"weights" * 100
    (tmp_path / "w" / "toy").mkdir(parents=True)
    (tmp_path / "w" / "toy" / "toy.pth").write_bytes(b"x" + payload[1:])
    r = WeightsResolver(tmp_path / "w", tmp_path / "cache", manifest={"toy": _entry(tmp_path, payload)})
    with pytest.raises(ToolUnavailable, match="sha256"):
        r.resolve("toy")


def test_resolver_downloads_verifies_and_caches(tmp_path):
    payload = b"published bytes" * 50
    src = tmp_path / "upstream.pth"
    src.write_bytes(payload)
    entry = _entry(tmp_path, payload, url=src.as_uri())
    offline = WeightsResolver(None, tmp_path / "cache", allow_download=False, manifest={"toy": entry})
    with pytest.raises(ToolUnavailable, match="RESTOREAGENT_ALLOW_DOWNLOAD"):
        offline.resolve("toy")
    online = WeightsResolver(None, tmp_path / "cache", allow_download=True, manifest={"toy": entry})
    path = online.resolve("toy")
    assert path == tmp_path / "cache" / "toy" / "toy.pth" and path.read_bytes() == payload
    assert offline.resolve("toy") == path  # now served from the cache, offline
    # A download whose bytes do not match leaves nothing behind.
    bad = WeightsResolver(None, tmp_path / "cache2", allow_download=True,
                          manifest={"toy": _entry(tmp_path, b"other", url=src.as_uri())})
    with pytest.raises(ToolUnavailable, match="sha256"):
        bad.resolve("toy")
    assert not any((tmp_path / "cache2").rglob("*.pth"))


def test_resolver_unreachable_url_is_a_clear_error(tmp_path):
    entry = _entry(tmp_path, b"x", url=(tmp_path / "missing.pth").as_uri())
    r = WeightsResolver(None, tmp_path / "cache", allow_download=True, manifest={"toy": entry})
    with pytest.raises(ToolUnavailable, match="cannot download"):
        r.resolve("toy")


def test_manifest_matches_shared_weights(weights_dir):
    """Every manifest entry's checksum matches the real file in ../shared/weights."""
    manifest = load_manifest()
    r = WeightsResolver(weights_dir, weights_dir / "nonexistent-cache", manifest=manifest)
    for wid in manifest:
        assert r.resolve(wid).is_file()
    assert all(e.url is None or e.url.startswith("https://raw.githubusercontent.com/") for e in manifest.values())


def test_corrupt_weights_make_the_tool_unavailable_and_agent_falls_back(weights_dir, tmp_path):
    """A corrupted weights file is reported in one line and the agent uses another tool."""
    from restoreagent import Configuration
    from restoreagent.graph.toolbox import Toolbox
    from restoreagent.tools import default_registry

    bad = tmp_path / "weights"
    (bad / "denoise_ffdnet").mkdir(parents=True)
    data = bytearray((weights_dir / "denoise_ffdnet" / "ffdnet_color.pth").read_bytes())
    data[1000] ^= 0xFF  # one flipped byte
    (bad / "denoise_ffdnet" / "ffdnet_color.pth").write_bytes(bytes(data))
    box = Toolbox(default_registry, Configuration(weights_dir=bad, cache_dir=tmp_path / "c", work_dir=tmp_path / "r"))
    skipped = {s.name: s.reason for s in box.skipped}
    assert "denoise_ffdnet" in skipped and "sha256" in skipped["denoise_ffdnet"]
    assert "\n" not in skipped["denoise_ffdnet"]
    assert "noise" in box.tools_by_task() and "denoise_ffdnet" not in box.tools
