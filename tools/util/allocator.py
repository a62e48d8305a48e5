"""Let the process keep freed memory for the next tensor, instead of handing it back to the OS.

A learned tool on a 512-px tile allocates 64-channel activations of about 67 MB per layer. glibc
serves every allocation above its mmap threshold (32 MB at most, by default) with a fresh ``mmap``
and unmaps it when it is freed, so each layer of each tile has the kernel map and zero its pages
again. Tools run in a worker thread, and glibc gives threads arenas of their own whose heaps (64 MB)
cannot hold such a block either, so the thresholds only help with one arena for every thread.
Measured here (2 cores): DnCNN over a 1.5 MP photo took 23 s, 19 s of it in the kernel (11 million
page faults); with the thresholds raised, 11 s and 0.1 s. Peak memory is about the same; what
changes is that the process keeps the memory of its largest step until it exits.

The command line and the LangGraph server call :func:`keep_freed_memory` at start. A program
that embeds the graph can call it once too; it changes the C library's settings for the whole
process, which is why the library does not do it behind the caller's back.
"""

from __future__ import annotations

import ctypes

#: mallopt parameters (glibc's malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
#: Allocations below this come from the reusable heap, and this much free heap is kept.
THRESHOLD = 1 << 30


def keep_freed_memory(threshold: int = THRESHOLD) -> bool:
    """Raise glibc's mmap and trim thresholds to ``threshold`` bytes, with one arena, for this process.

    Returns False, changing nothing, where the C library has no ``mallopt`` that accepts them
    (macOS, Windows, musl).
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library this process already runs on
    except (OSError, AttributeError, TypeError):  # macOS has no mallopt; Windows no CDLL(None)
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return all(mallopt(param, value) for param, value in
               ((_M_ARENA_MAX, 1), (_M_MMAP_THRESHOLD, threshold), (_M_TRIM_THRESHOLD, threshold)))
