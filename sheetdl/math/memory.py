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
import sys
import threading

import numpy as np

#: Linux's advice number (other systems have no such advice).
MADV_POPULATE_WRITE = 23
#: Below this size the pages cost less than starting a thread.
MIN_BYTES = 8 << 20
#: Bytes asked for per call: the asking stops within one chunk once the loop is done.
CHUNK = 8 << 20


def _libc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
        return libc
    except (OSError, AttributeError, TypeError):  # no C library to ask
        return None


_LIBC = _libc()


def page_range(array: np.ndarray) -> tuple[int, int]:
    """(address, bytes) of the whole pages inside ``array``'s memory: what madvise takes."""
    import mmap  # here, not above: the add-in's Lite bundle (Pyodide) never gets this far

    page = mmap.PAGESIZE
    start = -(-array.ctypes.data // page) * page
    return start, max(0, (array.ctypes.data + array.nbytes - start) // page * page)


def _populate(address: int, size: int, done: threading.Event) -> None:
    for lo in range(0, size, CHUNK):
        if done.is_set():
            return  # the loop ended early (an overflow): its pages are no longer wanted
        if _LIBC.madvise(address + lo, min(CHUNK, size - lo), MADV_POPULATE_WRITE) != 0:
            return  # EINVAL before Linux 5.14: the loop maps its pages itself


@contextlib.contextmanager
def populated(array: np.ndarray):
    """While the block runs (a loop that releases the GIL and writes ``array``), the
    array's pages are mapped on another thread, where the system can."""
    if _LIBC is None or array.nbytes < MIN_BYTES or not array.flags.c_contiguous:
        yield array
        return
    done = threading.Event()
    worker = threading.Thread(target=_populate, args=(*page_range(array), done), daemon=True)
    worker.start()
    try:
        yield array
    finally:
        done.set()
        worker.join()
