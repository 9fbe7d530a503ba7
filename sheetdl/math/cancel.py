"""Cooperative cancellation of long training loops.

A caller that may give up on a result (the add-in server, when Excel hangs up) sets
``token`` to a ``threading.Event`` in its context; loops call ``check()`` once a step and
stop with ``Cancelled`` once the event is set. ``asyncio.to_thread`` copies the context
into the worker thread, so a token set by a request reaches the loop that serves it.
"""
from __future__ import annotations

import contextvars
import threading

token: contextvars.ContextVar[threading.Event | None] = contextvars.ContextVar(
    "sheetdl_cancel", default=None)


class Cancelled(Exception):
    """The caller no longer wants the result."""


def check() -> None:
    event = token.get()
    if event is not None and event.is_set():
        raise Cancelled("the caller hung up")
