"""Fresh memory for a large result, made ready on the other core while a loop fills it.

A new array of tens of megabytes comes from the system as pages that are mapped, and
zeroed, only when first written: for a compiled loop that writes 88 MB of trace, that
zeroing costs as long as the loop itself. ``populated`` asks Linux to map and zero the
pages (``madvise(MADV_POPULATE_WRITE)``, Linux 5.14+) from a second thread while the
loop runs: the asking changes no value, so it may race the loop's writes freely.
Elsewhere it does nothing, and the loop pays for its pages as before.
"""
from __future__ import annotations

import contextlib
import ctypes
import threading

import numpy as np

MADV_POPULATE_WRITE = 23
#: Below this size the pages cost less than starting a thread.
MIN_BYTES = 8 << 20
#: Pages asked for per call, so a loop that overtakes the asking is not kept waiting.
CHUNK = 8 << 20


def _libc():
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
        return libc
    except (OSError, AttributeError):  # no C library to ask (Windows)
        return None


_LIBC = _libc()


def _populate(address: int, size: int) -> None:
    for lo in range(0, size, CHUNK):
        if _LIBC.madvise(address + lo, min(CHUNK, size - lo), MADV_POPULATE_WRITE) != 0:
            return  # EINVAL before Linux 5.14: the loop maps its pages itself


@contextlib.contextmanager
def populated(array: np.ndarray):
    """While the block runs (a loop that releases the GIL), ``array``'s pages are mapped
    on another thread; they are all mapped when the block ends."""
    if _LIBC is None or array.nbytes < MIN_BYTES:
        yield array
        return
    page = 4096
    start = -(-array.ctypes.data // page) * page
    size = (array.ctypes.data + array.nbytes - start) // page * page
    worker = threading.Thread(target=_populate, args=(start, size), daemon=True)
    worker.start()
    try:
        yield array
    finally:
        worker.join()
