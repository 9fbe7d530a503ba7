"""Each lesson's replay: the reference math run again from the workbook's own named inputs
and data, its traces compared with the recalculated cells. Each lives in its lesson's
folder (``LessonSpec.replay``); the reading, rebuilding and comparing they share is in
``common``."""
from __future__ import annotations

import importlib

from ..report import TraceCheck, VerifyError
from ..workbook import Workbook
from ...lessons.registry import REGISTRY


def _registered(module: str):
    """A registered lesson's replay, imported when a workbook of that lesson is verified."""
    return lambda *args: importlib.import_module(module).replay(*args)


#: Each lesson's replay of its traces, by the lesson its metadata names (an lrfind
#: workbook names graddesc, whose replay reads its finder sheet).
REPLAYS = {spec.name: _registered(spec.replay) for spec in REGISTRY}


def replay(wb: Workbook, meta: dict, path, rtol, atol) -> list[TraceCheck]:
    """The checks of the lesson ``meta`` names (a key of ``REPLAYS``)."""
    try:
        return REPLAYS[meta["lesson"]](wb, meta, path, rtol, atol)
    except (KeyError, TypeError, AttributeError, IndexError) as e:
        # docProps/custom.xml is the file's word, not ours: a forged or damaged one
        raise VerifyError(f"{path}: its sheetdl metadata (docProps/custom.xml) is not "
                          f"what sheetdl writes ({type(e).__name__}: {e}); not replayed") \
            from None
