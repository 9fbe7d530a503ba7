"""The softmax lesson's help for the shared flags it takes, its examples, and its build from
resolved options: everything ``sheetdl build softmax`` needs, registered by ``LESSON``."""
from __future__ import annotations

from pathlib import Path

from ..spec import LessonSpec, finder_options, overrides, schedule_options
from . import layout
from . import model as softmax

NAME = "softmax"

#: the shared flags softmax takes, with its own help where the shared one would mislead
TAKES = {
    "--out": None, "--force": None,
    "--data": "iris (needs scikit-learn), or FILE.csv with columns feature...,label (labels "
              "may be text)",
    "--seed": "seed of the synthetic data and the starting weights",
    "--optimizer": "the training sheet's optimizer",
    "--steps": "full-batch steps, one block each",
    "--preset": None, "--lr": None, "--momentum": None, "--dampening": None, "--beta1": None,
    "--beta2": None, "--eps": None, "--alpha": None, "--weight-decay": None,
    "--nesterov": None, "--schedule": None, "--lr-max": None, "--lr-min": None,
    "--pct-start": None, "--div": None, "--div-final": None, "--step-size": None,
    "--gamma": None, "--cycle-momentum": None, "--lrfind": None, "--lrfind-steps": None,
    "--smooth-beta": None, "--stop-factor": None,
}
DEFAULTS = {"--optimizer": "sgd", "--steps": 50}
EXAMPLES = ("sheetdl build softmax --optimizer adam --steps 100",
            "sheetdl build softmax --data iris",
            "sheetdl build softmax --optimizer adam --lrfind --lrfind-steps 60")


def build(args):
    if args.data == "iris":
        X, labels, classes, features = layout.load_iris()
        label = "iris (150 flowers, 4 measurements, 3 species; scikit-learn)"
    elif args.data:
        X, labels, classes, features = layout.read_csv(args.data)
        label = f"{Path(args.data).name} ({len(X)} rows)"
    else:
        X, labels = softmax.synthetic_blobs(seed=args.seed)
        classes, features = ["A", "B", "C"], ["x1", "x2"]
        label = f"30 synthetic points in 3 seeded Gaussian blobs, seed {args.seed}"
    lesson = layout.make_lesson(
        X, labels, classes, features, optimizer=args.optimizer[0], preset=args.preset,
        steps=args.steps, seed=args.seed, data_label=label,
        schedule=args.schedule, schedule_options=schedule_options(args), **overrides(args))
    if args.lrfind:
        lesson.finder = layout.make_finder(lesson, **finder_options(args))
    return layout.build(lesson)


LESSON = LessonSpec(
    name=NAME,
    summary="softmax and cross-entropy cell by cell; softmax regression trained full batch",
    build=build, replay=f"{__package__}.replay", examples=EXAMPLES, takes=TAKES,
    defaults=DEFAULTS, built_in_data="iris")
