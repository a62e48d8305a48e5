"""tools/util/allocator.py: with the thresholds raised, a tool's large activations, freed and allocated again
layer after layer, reuse the process's memory instead of having the kernel map and zero fresh pages
(each case in its own process, since the setting is process-wide)."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

PROBE = """
import resource, sys, threading
import torch
from restoreagent.tools.util.allocator import keep_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory()
def layers():  # a learned tool on a 512-px tile: each layer's 67 MB output allocated, its input freed
    x = torch.zeros(1, 64, 512, 512)
    for _ in range(8):
        x = x + 1
def tool():  # in a worker thread, as the toolbox runs tools
    layers()  # the first tile maps the memory in either case
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(3):
        layers()
    print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
worker = threading.Thread(target=tool)
worker.start()
worker.join()
"""


def _page_faults(mode: str) -> int:
    res = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    return int(res.stdout.strip())


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the C library here is not glibc (no such mallopt)")
def test_freed_memory_is_reused_instead_of_mapped_again():
    default, kept = _page_faults("default"), _page_faults("keep")
    assert default > 3 * 8 * 16_000  # every layer's 67 MB mapped again, in 4 KiB pages
    # Kept: at most one tensor of each call's eight is mapped afresh (measured 0 or 3 × 16,384 pages,
    # as glibc places the first one; the other 21 reuse memory), against all 24 by default.
    assert kept < default / 5
