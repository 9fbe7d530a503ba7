"""Progress on long work: a tqdm bar on stderr when a person is watching it (a terminal),
nothing in pipes, files and CI, where a bar would only be noise in the log."""
from __future__ import annotations

import contextlib
import os
import sys


class _Silent:
    def update(self, n: int = 1) -> None:
        pass

    def set_description(self, text: str) -> None:
        pass

    def set_description_str(self, text: str) -> None:
        pass

    def reset(self, total: int | None = None) -> None:
        pass


def watched() -> bool:
    """True when stderr is a terminal and this is not CI (SHEETDL_PROGRESS=0 turns it off,
    =1 on)."""
    forced = os.environ.get("SHEETDL_PROGRESS")
    if forced is not None:
        return forced == "1"
    return sys.stderr.isatty() and not os.environ.get("CI")


@contextlib.contextmanager
def bar(description: str, total: int | None = None, unit: str = ""):
    """A bar with ``.update(n)``, ``.set_description(text)`` and ``.reset(total)`` (a new
    stage: with a total it shows a percentage and the time left); silent when not
    watched."""
    if not watched():
        yield _Silent()
        return
    from tqdm import tqdm

    with tqdm(total=total, desc=description, unit=unit, unit_scale=True, leave=False,
              file=sys.stderr, dynamic_ncols=True, mininterval=0.2) as t:
        yield t


def stages(bar, name: str):
    """``on_phase(stage, total=None)`` for work reported in stages: the bar says which
    stage ``name`` is in and, where the stage's size is known, counts it afresh."""
    def on_phase(stage: str, total: int | None = None) -> None:
        bar.set_description_str(f"{stage} {name}")
        if total is not None:
            bar.reset(total=total)
    return on_phase
