"""sheetdl: deep learning, one spreadsheet cell at a time.

For notebooks and scripts, the same two jobs as the command line::

    import sheetdl
    path = sheetdl.build("graddesc", "my.xlsx", optimizer=["sgd", "adam"], epochs=3)
    report = sheetdl.verify(path)       # shows itself as a table in Jupyter
    assert report.ok, report

Options are the command line's flags with ``-`` as ``_`` (``weight_decay=0.1``,
``lrfind=True``, ``nesterov=False``), checked the same way: a bad or useless option raises
``sheetdl.OptionError`` (a ``ValueError``) with the CLI's one-line message.
"""
from __future__ import annotations

import warnings
from pathlib import Path

from .options import LESSONS, OptionError
from .verification.verifier import Report, Reports, VerifyError

try:
    from importlib.metadata import version as _version

    __version__ = _version("sheetdl")
except Exception:  # a checkout that was never installed
    __version__ = "0.1.0"

__all__ = ["build", "verify", "LESSONS", "OptionError", "Report", "Reports", "VerifyError",
           "DivergenceWarning", "__version__"]


def __getattr__(name: str):
    if name == "DivergenceWarning":  # from the CLI's module, imported only when asked for
        from .cli import DivergenceWarning

        return DivergenceWarning
    raise AttributeError(f"module 'sheetdl' has no attribute {name!r}")


def __dir__() -> list[str]:
    """What the API offers, not the names its implementation imports."""
    return sorted(__all__)


def build(lesson: str, path: str | Path | None = None, **options) -> Path:
    """Write lesson ``lesson``'s workbook to ``path`` (default ``workbooks/LESSON.xlsx``)
    and return its path. Raises ``OptionError`` for an option the lesson does not take or
    a value out of range, ``ValueError`` for unreadable data or a workbook someone edited
    (pass ``force=True`` to replace it; a numbered .bak copy is kept)."""
    from . import cli, options as opts

    if not isinstance(options.get("force") or False, bool):  # "no" would count as true
        raise OptionError(f"force must be True or False, got {options['force']!r}")
    if lesson not in LESSONS:
        raise OptionError(f"unknown lesson {lesson!r}; choose from {', '.join(LESSONS)}")
    if path is not None and options.get("out") is not None:  # one would be dropped
        raise OptionError(f"the output is given twice ({str(path)!r} and out="
                          f"{options['out']!r}); give one")
    argv = opts.to_argv({**options, **({"path": str(path)} if path is not None else {})})
    args = opts.lesson_parser(lesson, prog=f"sheetdl build {lesson}").parse_args(argv)
    return cli.build_one(opts.resolve(lesson, args), say=lambda _: None,
                         warn=lambda text: warnings.warn(text, cli.DivergenceWarning,
                                                         stacklevel=4))


def verify(*paths: str | Path, rtol: float = 1e-9) -> Report | Reports:
    """Recalculate each workbook with IronCalc and check it: one ``Report`` for one path,
    ``Reports`` (a list with ``.ok`` and ``.mismatches``) for several. Raises
    ``VerifyError`` for a file that cannot be read as a workbook, ``ValueError`` for an
    ``rtol`` that is no number from 0 to 1 (before any file is read)."""
    from .verification import verifier

    if not paths:
        raise TypeError("sheetdl.verify needs at least one path")
    reports = Reports(verifier.verify(p, rtol=rtol) for p in paths)
    return reports[0] if len(reports) == 1 else reports
