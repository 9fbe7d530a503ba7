"""What a lesson declares about itself, so that the CLI, the Python API, ``sheetdl list``,
verify's replay and the README's tables take it in from one registry line
(``lessons.registry``): its summary, its own flags, which shared flags it takes, its
examples, how to build it from resolved options and where its replay lives."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable


@dataclass(frozen=True)
class Flag:
    """A build option: shared ones are declared in ``options.FLAGS`` and taken by a lesson's
    ``LessonSpec.takes``, a lesson's own in its ``LessonSpec.flags``."""

    name: str
    help: str | dict[str, str]         # one text, or one per lesson
    lessons: tuple[str, ...] = ()
    type: object = float
    default: object = None              # one value, or one per lesson (shown in the help)
    group: str = "training"
    choices: tuple | None = None
    action: str | None = None           # "store_true" or "bool" (--x / --no-x)
    #: the flag matters only under these schedules, or ("finder",) with the lr finder
    needs: tuple[str, ...] = ()
    metavar: str | None = None
    summary: str | None = None          # the README table's text, where the help varies
    #: the value of the flag given bare (``--udf`` alone); its own value is then optional
    const: object = None

    @property
    def dest(self) -> str:
        return {"--init-b": "b_init", "--init-a": "a_init", "--out": "out"}.get(
            self.name, self.name[2:].replace("-", "_"))

    def for_lesson(self, value, lesson: str):
        return value.get(lesson) if isinstance(value, dict) else value


@dataclass(frozen=True)
class LessonSpec:
    """One lesson, as the rest of sheetdl sees it."""

    name: str
    summary: str
    #: the workbook from resolved options (an ``argparse.Namespace`` with every flag's
    #: dest; those the lesson does not take are None)
    build: Callable
    #: module with ``replay(wb, meta, path, rtol, atol) -> list[TraceCheck]``, imported
    #: only by verify (it reads workbooks; the lesson's build does not need it)
    replay: str
    examples: tuple[str, ...]
    #: the lesson's own flags
    flags: tuple[Flag, ...] = ()
    #: shared flags the lesson takes: name → its help here (None: the shared help)
    takes: dict[str, str | None] = field(default_factory=dict)
    #: the lesson's defaults of shared flags
    defaults: dict[str, object] = field(default_factory=dict)
    #: checks across the lesson's options: ``check(args, given)`` raises ValueError with
    #: one line; ``given`` is the set of dests the user gave
    check: Callable | None = None
    #: the default file's name (no suffix) from resolved options, where it is not the
    #: lesson's name (a variant that must not replace the lesson's own workbook)
    file_stem: Callable | None = None
    #: takes ``--lr LO:HI``, a rate per layer group (the others refuse it)
    lr_range: bool = False
    #: trains a comma list of optimizers, a sheet each (the others train one)
    optimizer_list: bool = False
    #: is an lr finder itself: the finder's flags apply without ``--lrfind``
    finder: bool = False
    #: takes ``--schedule anneal``, the course's adam_ann rule
    anneal: bool = False
    #: older spellings of its flags, kept working: spelling → dest
    aliases: dict[str, str] = field(default_factory=dict)
    #: the lesson this one is a variant of (lrfind of graddesc: the same data and model)
    variant_of: str | None = None
    #: a ``--data`` value it reads by name, not as a file (iris), for the hint after a typo
    built_in_data: str | None = None
    #: what one row of its trace is, as its warnings say it ("step", or collab's "epoch")
    counter: str = "step"


#: The hyperparameters a lesson's build passes on as given (``options.resolve`` has checked
#: each is finite and in range), and the schedule and finder options it reads.
HYPERPARAMETERS = ("lr", "momentum", "dampening", "beta1", "beta2", "eps", "alpha",
                   "weight_decay", "nesterov")
SCHEDULE_OPTIONS = ("lr_max", "lr_min", "pct_start", "div", "div_final", "step_size", "gamma",
                    "anneal_ratio", "anneal_factor")


def overrides(args) -> dict:
    """The hyperparameters of resolved options, by torch's names (None where not given)."""
    return {k: getattr(args, k) for k in HYPERPARAMETERS}


def schedule_options(args) -> dict:
    opts = {k: getattr(args, k) for k in SCHEDULE_OPTIONS}
    opts["cycle_momentum"] = args.cycle_momentum
    return opts


def finder_options(args, steps=None) -> dict:
    """The lr finder's options (``steps`` where --lrfind-steps is not given)."""
    return {"steps": args.lrfind_steps if args.lrfind_steps is not None else steps,
            "lr_min": args.lr_min, "lr_max": args.lr_max,
            "smooth_beta": args.smooth_beta, "stop_factor": args.stop_factor}
