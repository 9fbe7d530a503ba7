"""Every lesson's build options, declared once: the CLI's subcommands, their help, the
checks that a flag has an effect, the Python API and the README's flag table all come
from ``FLAGS``.

The flags here are the shared ones; each lesson (``lessons.registry``) names those it takes,
with its own help and defaults, and declares its own flags in its folder. A flag lists the
lessons that take it; ``sheetdl build LESSON`` offers only those. A flag that applies only
under a schedule or with the lr finder says so in ``needs``, and giving it without them is
an error that says why, rather than a silent no-op.
"""
from __future__ import annotations

import argparse
import dataclasses
import difflib
import importlib
import importlib.util
import re

from .lessons.registry import REGISTRY
from .lessons.spec import Flag, LessonSpec
from .math import optim, presets, schedules
from .sheet.formulas import HYPER_HELP, UDF_FLAVOURS, out_of_range

#: Every lesson by name, with its summary, in the registry's order.
LESSONS: dict[str, str] = {}


class OptionError(ValueError):
    """A build option that is unknown, malformed or has no effect; the message is one line."""


def _torch_defaults(dest: str) -> str:
    """torch's default of hyperparameter ``dest``, by optimizer where they differ."""
    seen: dict[float, list[str]] = {}
    for kind in optim.NAMES:
        opt, _ = presets.resolve("torch", kind)
        if dest in opt.hyperparameters:
            seen.setdefault(getattr(opt, dest), []).append(kind)
    if len(seen) == 1:
        return f"{next(iter(seen)):g}"
    return ", ".join(f"{v:g} ({'/'.join(k)})" for v, k in seen.items())


#: the README table's text where a hyperparameter's help has a parenthesis mid-sentence
#: (the table keeps what comes before the first " (")
_HYPER_SUMMARY = {"dampening": "τ: the new gradient enters the buffer times 1 − τ"}


def _hyper(name: str, dest: str) -> Flag:
    return Flag(name, f"{HYPER_HELP[dest]} (default: the preset's; torch: "
                f"{_torch_defaults(dest)})", group="hyperparameters",
                summary=_HYPER_SUMMARY.get(dest))


def learning_rate(text: str):
    """``--lr``: a rate, or LO:HI (two rates, the mlp lesson's layer groups)."""
    parts = text.split(":")
    if len(parts) > 2:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number (mlp also takes LO:HI, two "
                                         "rates)")
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number (mlp also takes LO:HI, two "
                                         "rates)") from None
    return values[0] if len(values) == 1 else values


FLAGS: list[Flag] = [
    Flag("--out", "output file (default workbooks/LESSON.xlsx)", type=str, group="output",
         metavar="FILE.xlsx"),
    Flag("--force", "replace a workbook changed since sheetdl wrote it (keeps a numbered .bak)",
         type=None, action="store_true", group="output"),
    Flag("--data", "the data", type=str, group="data", metavar="SOURCE",
         summary="the data: a CSV of the lesson's columns, or iris (softmax), movielens (collab)"),
    Flag("--seed", "seed of the synthetic data", type=int, default=0, group="data",
         summary="seed of the synthetic data (and of the starting values of softmax, collab, mlp)"),
    Flag("--dropout", "dropout p, masks drawn from --seed at build time", group="training",
         metavar="P",
         summary="dropout p on mlp's hidden units or conv's pooled features, masks drawn "
                 "from --seed at build time"),
    Flag("--optimizer", "the optimizer", type=str,
         summary="the optimizer; on graddesc a comma list, one sheet each"),
    Flag("--epochs", "passes over the data", type=int,
         summary="passes over the data (graddesc 5, collab 20)"),
    Flag("--steps", "full-batch steps", type=int,
         summary="full-batch steps (softmax 50, mlp 100, lrfind 100)"),
    Flag("--preset", "framework conventions", type=str, default=presets.DEFAULT,
         choices=tuple(sorted(presets.PRESETS))),
    Flag("--udf", "write each big table as one call to the sheetdl add-in with cached values, "
         "for lessons too large to recalculate as formulas; NAMES office (the default: "
         "SHEETDL.TRAIN_LINEAR, for xlwings Lite and Server, which run wherever Excel does) or "
         "classic (SHEETDL_TRAIN_LINEAR, for the classic add-in on Windows desktop Excel)",
         type=str, choices=tuple(UDF_FLAVOURS), const="office", metavar="NAMES"),
    Flag("--lr", "learning rate η; the lesson's rate for the optimizer unless given (see "
         "sheetdl list); mlp also takes LO:HI, layer 1 at LO and layer 2 at HI (fastai's "
         "slice: discriminative rates)", type=learning_rate, group="hyperparameters",
         metavar="LR", summary="learning rate η, or LO:HI for mlp's two layer groups"),
    _hyper("--momentum", "momentum"),
    _hyper("--dampening", "dampening"),
    _hyper("--beta1", "beta1"),
    _hyper("--beta2", "beta2"),
    _hyper("--eps", "eps"),
    _hyper("--alpha", "alpha"),
    _hyper("--weight-decay", "weight_decay"),
    Flag("--nesterov", "Nesterov momentum, for the momentum optimizer (graddesc: on its "
         "momentum sheet)", type=None, action="bool", group="hyperparameters",
         summary="Nesterov momentum, for the momentum optimizer"),
    # KIND, not the choices, in the help: anneal is graddesc's alone, and another lesson's
    # --schedule anneal gets the error that says so rather than argparse's
    Flag("--schedule", "constant, step (StepLR), exp (ExponentialLR), cosine "
         "(CosineAnnealingLR) or onecycle (fit_one_cycle / OneCycleLR); graddesc also takes "
         "anneal (the course's adam_ann rule)", type=str,
         default="constant", group="schedule", choices=schedules.KINDS + ("anneal",),
         metavar="KIND", summary="constant, step, exp, cosine, onecycle, anneal (graddesc)"),
    Flag("--lr-max", {}, group="schedule", needs=("onecycle", "finder")),
    Flag("--lr-min", {}, group="schedule", needs=("cosine", "finder")),
    Flag("--pct-start", "onecycle: warm-up fraction (torch 0.3, fastai 0.25)", group="schedule",
         needs=("onecycle",)),
    Flag("--div", "onecycle: first lr = lr_max/div (default 25)", group="schedule",
         needs=("onecycle",)),
    Flag("--div-final", "onecycle: final lr = lr_max/div_final (fastai, default 1e5) or "
         "lr_max/div/div_final (torch, default 1e4)", group="schedule",
         needs=("onecycle",)),
    Flag("--step-size", "step: steps between decays (default 1)", type=int,
         group="schedule", needs=("step",)),
    Flag("--gamma", "step: decay factor (default 0.1); exp: per step (default 0.99)",
         group="schedule", needs=("step", "exp")),
    Flag("--cycle-momentum", "onecycle: cycle momentum or β₁ 0.95 → 0.85 → 0.95 (default on)",
         type=None, action="bool", group="schedule", needs=("onecycle",)),
    Flag("--lrfind", "add an lr finder sheet (for --optimizer, or the first of a list)",
         type=None, action="store_true", group="lr finder"),
    Flag("--lrfind-steps", "the finder's steps (default 100)", type=int,
         group="lr finder", needs=("finder",)),
    Flag("--smooth-beta", "smoothing β of the finder's loss (default 0.98)", group="lr finder",
         needs=("finder",)),
    Flag("--stop-factor", "the finder stops once the smoothed loss passes this × its minimum "
         "(default 4)", group="lr finder", needs=("finder",)),
]
_LR_RANGE_HELP = {"--lr-max": "onecycle: the peak lr (default the lesson's lr); with the lr "
                              "finder: its last lr (default 10)",
                  "--lr-min": "cosine: the floor (default 0); with the lr finder: its first lr "
                              "(default 1e-7)"}

EXAMPLES: dict[str, list[str]] = {}
GROUPS = ("output", "data", "training", "hyperparameters", "schedule", "lr finder")


def _per_lesson(value, lessons) -> dict:
    return dict(value) if isinstance(value, dict) else \
        {} if value is None else {lesson: value for lesson in lessons}


def register(spec: LessonSpec) -> None:
    """Take lesson ``spec`` in: its summary and examples, its own flags, and its name on
    each shared flag it takes (with its help and default there)."""
    known = {f.name for f in FLAGS}
    unknown = sorted(set(spec.takes) - known)
    if unknown or spec.name in LESSONS:
        raise ValueError(f"lesson {spec.name}: " + (f"takes unknown flags {unknown}" if unknown
                                                    else "registered twice"))
    LESSONS[spec.name] = spec.summary
    EXAMPLES[spec.name] = list(spec.examples)
    for i, f in enumerate(FLAGS):
        if f.name not in spec.takes:
            continue
        help_, summary, own = f.help, f.summary, spec.takes[f.name]
        if own is not None:
            help_ = {**_per_lesson(f.help, f.lessons), spec.name: own}
            summary = summary or (f.help if isinstance(f.help, str) else None)
        default = f.default
        if f.name in spec.defaults:
            default = {**_per_lesson(f.default, f.lessons), spec.name: spec.defaults[f.name]}
        FLAGS[i] = dataclasses.replace(f, lessons=f.lessons + (spec.name,), help=help_,
                                       default=default, summary=summary)
    FLAGS.extend(spec.flags)
    SPECS[spec.name] = spec


#: the registered lessons' specs, by name
SPECS: dict[str, LessonSpec] = {}
for _spec in REGISTRY:
    register(_spec)


def flags(lesson: str) -> list[Flag]:
    return [f for f in FLAGS if lesson in f.lessons]


def _help(f: Flag, lesson: str) -> str:
    text = f.for_lesson(f.help, lesson) or _LR_RANGE_HELP.get(f.name, "")
    default = f.for_lesson(f.default, lesson)
    if default is not None and "default" not in text:
        text += f" (default {default})"
    return text.replace("%", "%%")


class Parser(argparse.ArgumentParser):
    """argparse that raises ``OptionError`` with one line (and a "did you mean") instead of
    printing the usage and exiting: the CLI prints that line, the API raises it."""

    def __init__(self, *args, **kwargs):
        # --epoch 3 must not quietly mean --epochs 3: a flag is spelled out or suggested
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message):
        m = re.search(r"unrecognized arguments: (\S+)", message)
        if m:
            message = _suggest(self, m.group(1).split("=")[0], message)
        m = re.search(r"invalid choice: '([^']*)'", message)
        if m:
            choices = [c for a in self._actions for c in (a.choices or [])]
            close = difflib.get_close_matches(m.group(1), [str(c) for c in choices], n=1)
            if close:
                message += f"; did you mean {close[0]}?"
        raise OptionError(f"{self.prog}: {message}")


def _suggest(parser: argparse.ArgumentParser, given: str, message: str) -> str:
    """The message for an unknown flag: whose flag it is, if another lesson's, or the
    nearest spelling of one of this parser's."""
    lesson = parser.prog.split()[-1]
    others = [name for name in LESSONS for f in flags(name) if f.name == given]
    if others and lesson in LESSONS:
        hint = {"--epochs": f"; {lesson} counts full-batch --steps",
                "--steps": f"; {lesson} counts --epochs"}
        owners = ", ".join(others[:-1]) + " and " + others[-1] if len(others) > 1 else others[0]
        return f"{given} is a flag of {owners}, not {lesson}" + hint.get(given, "")
    mine = [s for s in parser._option_string_actions if s.startswith("--")]
    close = difflib.get_close_matches(given, mine, n=1, cutoff=0.6)
    return message + (f"; did you mean {close[0]}?" if close else "")


class _Once(argparse.Action):
    """A flag's value, refused when the flag comes twice: argparse would keep the last and
    drop the first without a word (``-o a.xlsx -o b.xlsx`` wrote b.xlsx alone)."""

    def __call__(self, parser, namespace, values, option_string=None):
        if getattr(namespace, self.dest, None) is not None:
            raise argparse.ArgumentError(self, "given twice; give it once")
        setattr(namespace, self.dest, values)


def add_flags(p: argparse.ArgumentParser, lesson: str) -> None:
    """The lesson's flags on its ``sheetdl build LESSON`` parser, by group. Every default is
    None here, so ``check`` can tell what was given; ``resolve`` fills the defaults in."""
    groups = {g: p.add_argument_group(g) for g in GROUPS}
    for f in flags(lesson):
        names = ("-o", f.name) if f.name == "--out" else (f.name,)
        kw = {"dest": f.dest, "help": _help(f, lesson), "default": None}
        if f.action == "store_true":
            # --force may also come before the lesson (sheetdl build --force graddesc):
            # absent here, it must not overwrite that
            kw.update(action="store_true",
                      default=argparse.SUPPRESS if f.name == "--force" else None)
        elif f.action == "bool":
            kw.update(action=argparse.BooleanOptionalAction)
        else:
            kw.update(type=f.type, metavar=f.metavar, action=_Once)
            if f.choices:
                kw["choices"] = f.choices
            if f.const is not None:
                kw.update(nargs="?", const=f.const)
        groups[f.group].add_argument(*names, **kw)
    for spelling, dest in SPECS[lesson].aliases.items():  # older spellings, kept working
        p.add_argument(spelling, dest=dest, type=str, help=argparse.SUPPRESS, action=_Once)


def lesson_parser(lesson: str, prog: str | None = None, parent=None) -> Parser:
    kw = {"help": LESSONS[lesson], "description": LESSONS[lesson] + ".",
          "usage": "%(prog)s [options]",
          "epilog": "examples:\n  " + "\n  ".join(EXAMPLES[lesson]),
          "formatter_class": argparse.RawDescriptionHelpFormatter}
    if parent is not None:
        p = parent.add_parser(lesson, **kw)
    else:
        kw.pop("help")
        p = Parser(prog=prog, **kw)
    add_flags(p, lesson)
    return p


def _optimizer_kinds(lesson: str, value: str) -> list[str]:
    kinds = [k.strip() for k in value.split(",") if k.strip()]
    if not SPECS[lesson].optimizer_list and len(kinds) != 1:
        raise OptionError(f"--optimizer: {lesson} trains one optimizer, got {value!r}")
    for k in kinds:
        if k not in optim.OPTIMIZERS:
            close = difflib.get_close_matches(k, list(optim.OPTIMIZERS), n=1)
            raise OptionError(f"--optimizer: unknown optimizer {k!r}; choose from "
                              f"{', '.join(optim.NAMES)}"
                              + (f" (did you mean {close[0]}?)" if close else ""))
    if len(set(kinds)) != len(kinds):
        raise OptionError("--optimizer names an optimizer twice")
    return kinds


def resolve(lesson: str, args: argparse.Namespace) -> argparse.Namespace:
    """Check that every given flag has an effect and every value is in its range, then
    fill in the defaults. Raises ``OptionError`` naming the command."""
    try:
        return _resolve(lesson, args)
    except OptionError as e:
        raise OptionError(f"sheetdl build {lesson}: {e}") from None


def _resolve(lesson: str, args: argparse.Namespace) -> argparse.Namespace:
    for f in FLAGS:  # absent flags (another lesson's, or not given to the API) read as None
        if not hasattr(args, f.dest):
            setattr(args, f.dest, None)
    given = {f.dest: f for f in flags(lesson) if getattr(args, f.dest, None) is not None}
    schedule = args.schedule if getattr(args, "schedule", None) is not None else "constant"
    spec = SPECS[lesson]
    finder = spec.finder or bool(getattr(args, "lrfind", None))
    for dest, f in given.items():
        if f.needs and schedule not in f.needs and not ("finder" in f.needs and finder):
            what = [("--lrfind" if n == "finder" else f"--schedule {n}") for n in f.needs]
            raise OptionError(f"{f.name} has no effect without {' or '.join(what)}")
    if schedule == "anneal" and not spec.anneal:
        raise OptionError("--schedule anneal is graddesc's (the course's adam_ann rule)")
    kinds = _optimizer_kinds(lesson, args.optimizer or f_default("--optimizer", lesson))
    args.optimizer = kinds
    fields = lambda kind: {x.name for x in dataclasses.fields(optim.OPTIMIZERS[kind])}
    for dest, f in given.items():
        if f.group == "hyperparameters" and dest not in ("b_init", "a_init", "lr"):
            if not any(dest in fields(k) for k in kinds):
                takes = [k for k in optim.NAMES if dest in fields(k)]
                raise OptionError(f"{f.name} has no effect: {', '.join(kinds)} has no {dest} "
                                  f"(it is for {', '.join(takes)})")
        value = getattr(args, dest)
        if isinstance(value, tuple):  # --lr LO:HI
            if not spec.lr_range:
                raise OptionError(f"{f.name} LO:HI (a rate per layer group) is the mlp lesson's; "
                                  "give one rate")
            for v in value:
                if v != v or abs(v) == float("inf") or out_of_range(dest, v):
                    raise OptionError(f"{f.name} {':'.join(f'{x:g}' for x in value)}: each "
                                      "rate must be a finite number above 0")
        if isinstance(value, float):
            if value != value or abs(value) == float("inf"):
                raise OptionError(f"{f.name} must be a finite number, got {value}")
            bad = out_of_range(dest, value)
            if bad:
                raise OptionError(f"{f.name} {value:g}: {bad}")
        if isinstance(value, int) and not isinstance(value, bool) and f.type is int \
                and dest != "seed" and value < 1:
            raise OptionError(f"{f.name} must be at least 1, got {value}")
    if "seed" in given and args.seed < 0:
        raise OptionError(f"--seed must be 0 or more, got {args.seed}")
    if getattr(args, "out", None) and not str(args.out).lower().endswith((".xlsx", ".xlsm")):
        raise OptionError(f"-o {args.out}: sheetdl writes Excel workbooks; give a name "
                          "ending in .xlsx")
    for f in flags(lesson):
        if getattr(args, f.dest, None) is None and f.default is not None \
                and f.dest != "optimizer":
            setattr(args, f.dest, f.for_lesson(f.default, lesson))
    if spec.check is not None:
        try:
            spec.check(args, set(given))
        except ValueError as e:
            raise OptionError(str(e)) from None
    args.force = bool(getattr(args, "force", False))
    args.lrfind, args.udf = bool(args.lrfind), args.udf or None
    if args.cycle_momentum is None:
        args.cycle_momentum = True
    args.lesson = lesson
    return args


def f_default(name: str, lesson: str):
    return next(f.for_lesson(f.default, lesson) for f in FLAGS if f.name == name)


def to_argv(options: dict) -> list[str]:
    """Keyword options of the Python API as command-line flags: ``lr=0.01`` → ``--lr 0.01``,
    ``lrfind=True`` → ``--lrfind``, ``nesterov=False`` → ``--no-nesterov``, a list → a
    comma list."""
    by_dest = {f.dest: f for f in FLAGS}
    alias = {"optimizers": "optimizer", "path": "out"}
    argv = []
    for key, value in options.items():
        f = by_dest.get(alias.get(key, key))
        if f is None:
            close = difflib.get_close_matches(key, list(by_dest), n=1)
            raise OptionError(f"unknown option {key!r}" + (f"; did you mean {close[0]}?"
                                                           if close else ""))
        if value is None:
            continue
        if f.action == "store_true":
            if value:
                argv.append(f.name)
        elif f.action == "bool":
            argv.append(f.name if value else "--no-" + f.name[2:])
        elif f.const is not None and isinstance(value, bool):  # udf=True: the bare flag
            if value:
                argv.append(f.name)
        else:
            if isinstance(value, (list, tuple)):
                if not value:  # "" would read as the flag not given: the default list
                    raise OptionError(f"{key}: an empty list; name at least one")
                value = ",".join(map(str, value))
            argv += [f.name, str(value)]
    return argv


def flag_table() -> str:
    """The README's table of which flags each lesson takes."""
    rows = ["| flag | " + " | ".join(LESSONS) + " | meaning |",
            "|---|" + "---|" * len(LESSONS) + "---|"]
    for f in FLAGS:
        name = f"`-o`, `{f.name}`" if f.name == "--out" else f"`{f.name}`"
        text = f.summary or _LR_RANGE_HELP.get(f.name) or f.help
        marks = " | ".join("✓" if lesson in f.lessons else "" for lesson in LESSONS)
        rows.append(f"| {name} | {marks} | {text.split(';')[0].split(' (')[0]} |")
    return "\n".join(rows)


def defaults_table() -> str:
    """The README's table of each optimizer's default hyperparameters: the lesson learning
    rates, then the torch preset's values of the rest."""
    rated = {name: importlib.import_module(f"{__package__}.lessons.{name}").LEARNING_RATES
             for name in LESSONS if importlib.util.find_spec(f"{__package__}.lessons.{name}")}
    lessons = tuple(rated)
    rows = ["| optimizer | " + " | ".join(f"lr: {lesson}" for lesson in lessons)
            + " | other defaults (torch preset) |", "|---|" + "---|" * (len(lessons) + 1)]
    for kind in optim.NAMES:
        opt, _ = presets.resolve("torch", kind)
        rest = ", ".join(f"{h} {getattr(opt, h):g}" for h in opt.hyperparameters if h != "lr")
        rows.append(f"| `{kind}` | " + " | ".join(f"{rated[lesson][kind]:g}"
                                               for lesson in lessons) + f" | {rest} |")
    return "\n".join(rows)
