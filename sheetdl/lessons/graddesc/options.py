"""The graddesc lesson and its variant lrfind (the lr finder on the same data): their flags,
their help for the shared ones, their examples and their builds from resolved options,
registered by ``LESSON`` and ``LRFIND``."""
from __future__ import annotations

from pathlib import Path

from ...math import optim
from .. import data
from ..spec import Flag, LessonSpec, finder_options, overrides, schedule_options
from . import layout

NAME, FINDER = "graddesc", "lrfind"
DEFAULT_EPOCHS = 5

FLAGS = (
    Flag("--rows", "synthetic data: N points of y = 2x + 30 + noise instead of the course's 29",
         lessons=(NAME,), type=int, group="data", metavar="N"),
    Flag("--drop-last-update", "reproduce the course VBA's dropped last update of each epoch "
         "(default: only with --preset course)", lessons=(NAME,), type=None, action="bool"),
    Flag("--init-b", "starting intercept b", lessons=(NAME,), default=1.0,
         group="hyperparameters"),
    Flag("--init-a", "starting slope a", lessons=(NAME,), default=1.0, group="hyperparameters"),
    Flag("--anneal-ratio", "anneal: the proxy/best ratio that triggers (default 2)",
         lessons=(NAME,), group="schedule", needs=("anneal",)),
    Flag("--anneal-factor", "anneal: the lr divisor (default 4)", lessons=(NAME,),
         group="schedule", needs=("anneal",)),
)
CSV = "FILE.csv with two columns x,y (a header line is fine)"
SEED = "seed of the --rows synthetic data"
#: the shared flags graddesc takes, with its own help where the shared one would mislead
TAKES = {
    "--out": None, "--force": None, "--data": CSV, "--seed": SEED,
    "--optimizer": "one or a comma list, one sheet each, from " + ",".join(optim.NAMES),
    "--epochs": "passes over the data, one sample per row",
    "--preset": None, "--udf": None, "--lr": None, "--momentum": None, "--dampening": None,
    "--beta1": None, "--beta2": None, "--eps": None, "--alpha": None, "--weight-decay": None,
    "--nesterov": None, "--schedule": None, "--lr-max": None, "--lr-min": None,
    "--pct-start": None, "--div": None, "--div-final": None, "--step-size": None,
    "--gamma": None, "--cycle-momentum": None, "--lrfind": None, "--lrfind-steps": None,
    "--smooth-beta": None, "--stop-factor": None,
}
DEFAULTS = {"--optimizer": ",".join(layout.DEFAULT_OPTIMIZERS), "--epochs": DEFAULT_EPOCHS}
EXAMPLES = ("sheetdl build graddesc --optimizer sgd,adam,nadam --epochs 20 -o my.xlsx",
            "sheetdl build graddesc --rows 1000 --seed 3",
            "sheetdl build graddesc --preset course",
            "sheetdl build graddesc --optimizer adam --schedule onecycle --lr-max 0.5")

FINDER_TAKES = {
    "--out": None, "--force": None, "--data": CSV, "--rows": None, "--seed": SEED,
    "--optimizer": "the optimizer the finder trains",
    "--steps": "finder steps, one full-batch step per row",
    "--preset": None, "--lr": None, "--momentum": None, "--dampening": None, "--beta1": None,
    "--beta2": None, "--eps": None, "--alpha": None, "--weight-decay": None,
    "--nesterov": None, "--init-b": None, "--init-a": None,
    "--lr-max": "the finder's last lr (default 10)",
    "--lr-min": "the finder's first lr (default 1e-7)",
    "--smooth-beta": None, "--stop-factor": None,
}
FINDER_DEFAULTS = {"--optimizer": "sgd", "--steps": 100}
FINDER_EXAMPLES = ("sheetdl build lrfind --optimizer adam --steps 200 --lr-min 1e-6 "
                   "--lr-max 100",)


def check(args, given: set[str]) -> None:
    if "seed" in given and "rows" not in given:
        raise ValueError("--seed seeds the synthetic data of --rows; give --rows too")


def check_finder(args, given: set[str]) -> None:
    if "lr" in given:
        raise ValueError("--lr has no effect on lrfind: the finder sweeps the lr itself, from "
                         "--lr-min to --lr-max")
    check(args, given)


def make_lesson(args, finder_only: bool = False) -> layout.Lesson:
    if args.data and args.rows is not None:
        raise ValueError("give --data or --rows, not both")
    if args.data:
        x, y = data.read_xy_csv(args.data)
        label = f"{Path(args.data).name} ({len(x)} rows)"
    elif args.rows is not None:
        x, y = data.synthetic_line(args.rows, args.seed)
        label = f"{args.rows} synthetic points, y = 2x + 30 + N(0, 5²), seed {args.seed}"
    else:
        x, y = data.course_points()
        label = None
    if args.udf and (args.schedule != "constant" or args.lrfind):
        raise ValueError("--udf writes constant-lr tables only; leave out --schedule and --lrfind")
    lesson = layout.make_lesson(
        x, y, optimizers=() if finder_only else tuple(args.optimizer), preset=args.preset,
        # lrfind trains no epochs; the lesson keeps graddesc's default in its metadata
        epochs=DEFAULT_EPOCHS if args.epochs is None else args.epochs,
        b_init=args.b_init, a_init=args.a_init,
        drop_last_update=args.drop_last_update, data_label=label,
        schedule=args.schedule or "constant", schedule_options=schedule_options(args),
        lrfind_optimizer=args.optimizer[0] if (finder_only or args.lrfind) else None,
        lrfind_options=finder_options(args, args.steps if finder_only else None),
        **overrides(args))
    lesson.udf = args.udf
    return lesson


LESSON = LessonSpec(
    name=NAME, summary="SGD, momentum, RMSProp, Adam... on y = b + a·x, one sample per row",
    build=lambda args: layout.build(make_lesson(args)), replay=f"{__package__}.replay",
    examples=EXAMPLES, flags=FLAGS, takes=TAKES, defaults=DEFAULTS, check=check,
    optimizer_list=True, anneal=True, aliases={"--optimizers": "optimizer"})
LRFIND = LessonSpec(
    name=FINDER,
    summary="the learning-rate finder on y = b + a·x: lr grows per step, suggestions as formulas",
    build=lambda args: layout.build(make_lesson(args, finder_only=True)),
    replay=f"{__package__}.replay", examples=FINDER_EXAMPLES, takes=FINDER_TAKES,
    defaults=FINDER_DEFAULTS, check=check_finder, finder=True, variant_of=NAME)
