"""The mlp lesson's flags, its help for the shared ones, its examples, and its build from
resolved options: everything ``sheetdl build mlp`` needs, registered by ``LESSON``."""
from __future__ import annotations

from pathlib import Path

from ..spec import Flag, LessonSpec, finder_options, overrides, schedule_options
from . import layout
from . import model as mlp

NAME = "mlp"

FLAGS = (
    Flag("--hidden", "hidden ReLU units (1 to 64)", lessons=(NAME,), type=int, default=6,
         group="data"),
    Flag("--freeze-steps", "train only layer 2 for the first N steps, then every layer "
         "(fastai's freeze / unfreeze; layer 1's optimizer state starts at the unfreezing, as "
         "torch's)", lessons=(NAME,), type=int, metavar="N"),
    Flag("--batchnorm", "batch norm on z1 before the ReLU, torch's BatchNorm1d in training "
         "mode: batch μ and σ², learned γ and β, running statistics for an eval-mode ŷ "
         "beside (layer 1 then has no bias)", lessons=(NAME,), type=None,
         action="store_true"),
    Flag("--bn-momentum", "batch norm's momentum m: running ← (1 − m)·running + m·batch "
         "(torch's 0.1; needs --batchnorm)", lessons=(NAME,), metavar="M",
         summary="batch norm's momentum m of the running statistics"),
    Flag("--bn-eps", "batch norm's ε in √(σ² + ε) (torch's 1e-5; needs --batchnorm)",
         lessons=(NAME,), metavar="EPS"),
)
#: the shared flags mlp takes, with its own help where the shared one would mislead
TAKES = {
    "--out": None, "--force": None,
    "--data": "FILE.csv with columns feature...,target, all numbers (default: 25 points of "
              "y = sin(x))",
    "--seed": "seed of the starting weights (torch's nn.Linear ranges)",
    "--dropout": "dropout p on the hidden units: masks drawn from --seed at build time (a masks "
                 "sheet of 0/1 inputs), kept ones scaled by 1/(1 − p) as torch; an eval-mode ŷ "
                 "and loss beside",
    "--optimizer": "the training sheet's optimizer",
    "--steps": "full-batch steps, one block each",
    "--preset": None, "--lr": None, "--momentum": None, "--dampening": None, "--beta1": None,
    "--beta2": None, "--eps": None, "--alpha": None, "--weight-decay": None,
    "--nesterov": None, "--schedule": None, "--lr-max": None, "--lr-min": None,
    "--pct-start": None, "--div": None, "--div-final": None, "--step-size": None,
    "--gamma": None, "--cycle-momentum": None, "--lrfind": None, "--lrfind-steps": None,
    "--smooth-beta": None, "--stop-factor": None,
}
DEFAULTS = {"--optimizer": "adam", "--steps": 100}
EXAMPLES = ("sheetdl build mlp --hidden 8 --steps 200",
            "sheetdl build mlp --optimizer sgd --lr 0.2",
            "sheetdl build mlp --hidden 16 --dropout 0.3 --steps 200",
            "sheetdl build mlp --batchnorm --optimizer sgd --lr 0.3",
            "sheetdl build mlp --lr 0.005:0.05 --freeze-steps 20",
            "sheetdl build mlp --data points.csv --hidden 4")


def build(args):
    if args.data:
        X, y, features, target = layout.read_csv(args.data)
        label = f"{Path(args.data).name} ({len(X)} rows)"
    else:
        X, y = mlp.curve()
        features, target = ["x"], "y"
        label = f"{len(X)} points of y = sin(x), x from {X[0, 0]:g} to {X[-1, 0]:g}"
    lesson = layout.make_lesson(
        X, y, features, target, hidden=args.hidden, optimizer=args.optimizer[0],
        preset=args.preset, steps=args.steps, seed=args.seed, data_label=label,
        schedule=args.schedule, schedule_options=schedule_options(args),
        dropout=args.dropout or 0.0, batchnorm=bool(args.batchnorm), bn_momentum=args.bn_momentum,
        bn_eps=args.bn_eps, freeze_steps=args.freeze_steps or 0, **overrides(args))
    if args.lrfind:
        lesson.finder = layout.make_finder(lesson, **finder_options(args))
    return layout.build(lesson)


LESSON = LessonSpec(
    name=NAME,
    summary="a neural network with ReLU units trained by backprop, every gradient a formula",
    build=build, replay=f"{__package__}.replay", examples=EXAMPLES, flags=FLAGS,
    takes=TAKES, defaults=DEFAULTS, lr_range=True)
