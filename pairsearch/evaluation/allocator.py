"""Keep glibc's allocator from returning training's large temporaries to the kernel.

Every training step allocates and frees the same few megabyte-sized tensors.
glibc serves blocks above its mmap threshold with fresh ``mmap`` calls and
gives them back on free, so each step pays page faults on memory it just
released: on 2 CPU cores the max-pool backward pass alone went from 4.6 ms to
1.6 ms per step once those blocks stayed in the heap (``../shared/notes``
measured 18.8 s → 10.1 s for five folds with the same setting made through
``GLIBC_TUNABLES``). ``mallopt`` makes the change from inside the process,
so no environment variable has to be set before Python starts.

It only changes where freed memory goes, never what is computed. Set
``PAIRSEARCH_MALLOC=default`` to leave the allocator alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

# mallopt parameters from <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's largest allowed value on 64-bit machines
_TRIM_THRESHOLD = 1024 * 1024 * 1024

_tuned: bool | None = None


def tune_allocator() -> bool:
    """Raise glibc's mmap and trim thresholds, once per process.

    Returns:
        Whether the allocator is tuned (False off glibc, or when disabled).
    """
    global _tuned
    if _tuned is None:
        _tuned = _apply()
    return _tuned


def _apply() -> bool:
    if os.environ.get("PAIRSEARCH_MALLOC", "") == "default":
        return False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (macOS, musl, Windows): nothing to do
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)
                and mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD))
