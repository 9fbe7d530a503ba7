"""The ``sheetdl`` command: build, verify and list the lessons."""
from __future__ import annotations

import argparse
import filecmp
import json
import os
import shutil
import sys
import threading
import time
from pathlib import Path


from .lessons import data
from .lessons.graddesc import layout as graddesc
from .math import optim, presets, schedules
from . import options, progress
from .write import xlsx
from .options import LESSONS
from . import __version__

DEFAULT_DIR = Path("workbooks")


class UserError(ValueError):
    """An expected error: printed as one line, exit status 2, no traceback."""


def _port(text: str) -> int:
    """A TCP port: uvicorn would silently wrap 70000 round to 4464."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port (1–65535)")
    return port


def _count(minimum: int):
    def count(text: str) -> int:
        try:
            n = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if not minimum <= n <= 10_000:
            raise argparse.ArgumentTypeError(f"{n} is not from {minimum} to 10,000")
        return n
    return count


def _comma_list(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _add_build(sub) -> dict:
    p = sub.add_parser("build", help="write a lesson workbook (every default workbook if none "
                       "is named)", description="Write lesson workbooks. With no lesson, every "
                       "default workbook goes into workbooks/. `sheetdl build LESSON --help` "
                       "lists the lesson's own flags.")
    p.add_argument("--force", action="store_true", default=False,
                   help="replace workbooks changed since sheetdl wrote them (.bak copies kept)")
    lessons = p.add_subparsers(dest="lesson", metavar="LESSON", parser_class=options.Parser)
    return {name: options.lesson_parser(name, parent=lessons) for name in options.LESSONS}


def _safe_write(book, out: Path, force: bool, on_row=None, on_phase=None) -> None:
    """Refuse to replace a workbook that is not sheetdl's own untouched output: checked
    before the build, and again at the moment of the rename, so an edit saved while a long
    build ran is not lost either."""
    _guard(out, force)
    xlsx.write(book, out, on_row=on_row, before_replace=lambda: _guard(out, force),
               on_phase=on_phase)


def _guard(out: Path, force: bool) -> None:
    if out.exists() or out.is_symlink():
        if out.is_dir():
            raise UserError(f"{out}: is a folder; give a file name with -o")
        if not out.is_file():  # a pipe would hang, a device node would be replaced
            raise UserError(f"{out}: not a regular file; sheetdl writes only new files or "
                            "workbooks it wrote")
        if not xlsx.untouched(out):
            if not force:
                raise UserError(f"{out}: exists and was changed since sheetdl wrote it (or is "
                                "not a sheetdl workbook); not overwriting. Use --force to "
                                "replace it (a .bak copy is kept) or -o for another file")
            backup = _keep_backup(out)
            if backup is not None:
                print(f"kept a backup of {out} as {backup}", file=sys.stderr)


#: how many numbered backups of one workbook are kept before sheetdl refuses to add one
MAX_BACKUPS = 1000


def _backup_names(out: Path):
    yield out.with_name(out.name + ".bak")
    for n in range(2, MAX_BACKUPS + 1):
        yield out.with_name(f"{out.name}.{n}.bak")


def _keep_backup(out: Path) -> Path | None:
    """Copy ``out`` to the first free NAME.bak, NAME.2.bak, ...; None when a backup already
    holds these bytes. Never replaces an earlier backup and never writes through a link:
    the copy is created with O_EXCL, which refuses any name that exists, a link included."""
    for backup in _backup_names(out):
        if backup.is_symlink() or backup.exists():
            if backup.is_file() and not backup.is_symlink() and \
                    filecmp.cmp(out, backup, shallow=False):
                return None
            continue
        try:
            fd = os.open(backup, os.O_WRONLY | os.O_CREAT | os.O_EXCL
                         | getattr(os, "O_NOFOLLOW", 0), 0o600)
        except FileExistsError:  # made meanwhile: the next name
            continue
        with os.fdopen(fd, "wb") as dst, open(out, "rb") as src:
            shutil.copyfileobj(src, dst)
        shutil.copystat(out, backup)
        return backup
    raise UserError(f"{out}: {MAX_BACKUPS} backups of it exist already; remove some first")


def cmd_build(args) -> int:
    if args.lesson:
        runs = [options.resolve(args.lesson, args)]
    else:
        runs = [options.resolve(name, argparse.Namespace(force=args.force)) for name in LESSONS]
    for run in runs:
        build_one(run)
    return 0


class DivergenceWarning(UserWarning):
    """A workbook was written whose training overflows or diverges (its status cell says
    so): the Python API's way of saying what the CLI prints as ``warning: ...``."""


def _print_warning(text: str) -> None:
    print(f"warning: {text}", file=sys.stderr)


def build_one(args, say=print, warn=_print_warning) -> Path:
    """Build the lesson ``args`` (resolved by ``options.resolve``) and write it; ``say``
    hears what was written, ``warn`` each training that diverged."""
    spec = options.SPECS.get(args.lesson)
    stem = spec.file_stem(args) if spec is not None and spec.file_stem else args.lesson
    out = Path(args.out) if args.out else DEFAULT_DIR / f"{stem}.xlsx"
    t0 = time.perf_counter()
    book = BUILDERS[args.lesson](args)
    if out.parent.exists() and not out.parent.is_dir():
        raise UserError(f"{out}: {out.parent} is a file, not a folder")
    try:
        with progress.bar(f"writing {out.name}", unit=" rows") as bar:
            _safe_write(book, out, args.force, on_row=bar.update,
                        on_phase=progress.stages(bar, out.name))
    except OSError as e:  # a parent that is a file, a read-only folder, a full disk...
        # the temporary file beside it is ours, not a name the user knows: name the target
        where = out if e.filename is None or Path(e.filename).parent == out.parent \
            else e.filename
        raise UserError(f"{where}: cannot write: {e.strerror or e}") from None
    for sheet in book.sheets:
        for warning in _divergence(book, sheet.name):
            warn(f"{out}: {warning}")
    say(f"wrote {out} ({out.stat().st_size:,} bytes, {time.perf_counter() - t0:.1f} s)")
    return out


BUILDERS = {name: spec.build for name, spec in options.SPECS.items()}


def _divergence(book, sheet: str) -> list[str]:
    """What the reference math says overflowed, or bounced, so the user hears it at build
    time."""
    diverged = book.meta.get("diverged", {})
    if sheet in diverged:
        return [f"sheet {sheet}: training diverged at step {diverged[sheet]} (a value "
                "overflowed; the sheet shows #NUM! from there and its status says OVERFLOWED); "
                "lower --lr (--lr-max under one-cycle)"]
    unsteady = book.meta.get("unsteady", {})
    if sheet in unsteady:  # finite, but an lr too large for this data bounces the loss
        rose, steps = unsteady[sheet]
        spec = options.SPECS.get(book.meta.get("lesson"))
        unit = (spec.counter if spec is not None else "step") + "s"
        return [f"sheet {sheet}: the loss rose on {rose} of {steps} {unit}: the lr may be too "
                "large for this data; try a smaller --lr (a tenth, say)"]
    return []


def cmd_verify(args) -> int:
    from .verification import verifier as verify

    try:
        verify.tolerance("--rtol", args.rtol)
    except ValueError as e:
        raise UserError(str(e)) from None
    reports, failed, missing = [], False, False
    for f in args.files:
        if not os.path.lexists(f):  # a command-line mistake, as for build's files: exit 2
            missing = True
            reports.append({"path": f, "ok": False, "error": "no such file"})
            print(f"sheetdl: error: {f}: no such file", file=sys.stderr)
            continue
        try:
            with progress.bar(f"verifying {Path(f).name}", unit=" cells") as bar:
                r = verify.verify(f, rtol=args.rtol, on_cells=bar.update,
                                  on_phase=progress.stages(bar, Path(f).name))
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
    return 2 if missing else 1 if failed else 0


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
        from .extras import pip_install

        raise UserError(f"sheetdl serve needs xlwings Server: {pip_install('addin')}") \
            from None
    _port_is_free(args.host, args.port)
    project = Path(__file__).parent / "addin" / "server_project"
    os.environ["XLWINGS_PROJECT_DIR"] = str(project)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: serving on {args.host}: anyone who can reach it can run the functions",
              file=sys.stderr)
    from xlwings_server.main import app as fastapi_app, main_app

    from .addin.server_guard import Guard, answer_calls

    answer_calls(fastapi_app)
    app = Guard(main_app, allowed_hosts=[args.host, *args.allow_host], running=args.running,
                waiting=args.waiting)
    tls = {}
    if args.https:
        from .addin import certs

        try:
            files, new = certs.ensure()
        except RuntimeError as e:
            raise UserError(str(e)) from None
        tls = {"ssl_certfile": str(files.certificate), "ssl_keyfile": str(files.key)}
        trust = certs.trust_command(files.authority)
        print(("made a localhost certificate; " if new else "") + "trust its authority once "
              f"on this machine (then restart Excel and the browser): {trust}", flush=True)
    scheme = "https" if args.https else "http"
    name = "localhost" if args.https and args.host in ("127.0.0.1", "::1") else args.host
    print(f"sheetdl functions on {scheme}://{name}:{args.port} (xlwings Server; "
          f"{LICENSE_TERMS.split('. ')[0]}.)"
          + (f" Manifest to sideload: {scheme}://{name}:{args.port}/manifest" if args.https
             else ""), flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", **tls)
    return 0


def _port_is_free(host: str, port: int) -> None:
    """Refuse, before the banner, a port another program listens on (the banner then the
    failure read as if the server had started)."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as e:
            raise UserError(f"{host}:{port} is in use ({e.strerror or e}); choose another with "
                            f"--port, e.g. --port {port + 1 if port < 65535 else 8001}") from None


def cmd_addin(args) -> int:
    from .addin import install as addin

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
    elif args.action == "manifest":
        from .addin import manifest
        from .write.text import write_text

        out = Path(args.out or "manifest.xml")
        out.parent.mkdir(parents=True, exist_ok=True)  # Excel for Mac's wef folder, say
        text = manifest.manifest_xml(f"https://localhost:{args.port}")
        if out.exists() and not args.force and out.read_text(errors="replace") != text:
            raise UserError(f"{out} exists with other content; --force replaces it")
        write_text(out, text)
        print(f"wrote {out}: sideload it in Excel (README: Excel add-in) while "
              f"sheetdl serve --https --port {args.port} runs")
    elif args.action == "lite":
        from .addin import lite
        from .write.text import write_text

        out = Path(args.out or "addin/lite/main.py")
        out.parent.mkdir(parents=True, exist_ok=True)
        write_text(out, lite.main_py())
        write_text(out.parent / "requirements.txt", lite.requirements_txt())
        print(f"wrote {out} and {out.parent / 'requirements.txt'}")
    return 0


def cmd_bench(args) -> int:
    from . import bench

    if args.plot:  # said before minutes of timing, not after
        import importlib.util

        if importlib.util.find_spec("matplotlib") is None:
            raise UserError("--plot needs matplotlib (pip install matplotlib); nothing was run")
        if args.only and "scaling" not in args.only:
            raise UserError("--plot draws the scaling area: add scaling to --only")
    report = bench.run(full=args.full, plot=args.plot, only=args.only)
    if args.json:
        json.dump(report, sys.stdout, indent=2, default=str)
        print()
    else:
        print(bench.table(report))
    return 0


def cmd_example_data(args) -> int:
    from .lessons import examples

    written = examples.write(args.dir, force=args.force)
    for name, (lessons, _) in examples.files().items():
        state = "wrote" if args.dir / name in written else "kept"
        print(f"{state} {args.dir / name}  ({lessons})")
    print(f"try: sheetdl build graddesc --data {args.dir / 'points.csv'}")
    return 0


def _data_hint(error, args) -> str:
    """After a missing --data file: a built-in name it may have meant, the columns the
    lesson reads, and the command that writes example files."""
    lesson = getattr(args, "lesson", None)
    given = getattr(args, "data", None)
    if not (given and lesson and str(error).endswith("no such file")):
        return ""
    name = Path(given).name.lower()
    spec = options.SPECS.get(lesson)
    if spec is not None and spec.built_in_data == name:
        return f" (did you mean --data {name}, the built-in data?)"
    flag = next((f for f in options.flags(lesson) if f.name == "--data"), None)
    columns = flag.for_lesson(flag.help, lesson) if flag else None
    columns = f"; --data takes {columns}" if columns else ""
    return f"{columns} (sheetdl example-data . writes points.csv, flowers.csv, ratings.csv " \
           "and glyphs.csv)"


def cmd_list(args) -> int:
    if getattr(args, "json", False):
        print(json.dumps({"lessons": dict(LESSONS), "optimizers": list(optim.NAMES),
                          "presets": list(presets.PRESETS),
                          "default_preset": graddesc.DEFAULT_PRESET,
                          "schedules": list(schedules.KINDS) + ["anneal"]}, indent=2))
        return 0
    for name, text in LESSONS.items():
        print(f"{name:10s} {text}")
    print(f"\noptimizers: {', '.join(optim.NAMES)}")
    print(f"presets:    {', '.join(presets.PRESETS)} (default {graddesc.DEFAULT_PRESET})")
    print(f"schedules:  {', '.join(schedules.KINDS)}, anneal (graddesc)")
    return 0


def parser() -> argparse.ArgumentParser:
    parser = options.Parser(prog="sheetdl", description="Deep learning, one spreadsheet "
                            "cell at a time: build and verify lesson workbooks.",
                            epilog="examples:\n  sheetdl build\n  sheetdl build graddesc "
                            "--optimizer adam --lr 0.1\n  sheetdl verify workbooks/*.xlsx\n  "
                            "sheetdl build graddesc --help",
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"sheetdl {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=options.Parser)
    parser.lesson_parsers = _add_build(sub)
    p = sub.add_parser("verify", help="recalculate workbooks with IronCalc and check them",
                       description="Recalculate every formula with IronCalc, compare each with "
                       "its cached value, and for a sheetdl workbook replay the lesson's math "
                       "from its named inputs. Exit 0 when all agree, 1 when not, 2 on bad "
                       "input.", epilog="examples:\n  sheetdl verify workbooks/*.xlsx\n  "
                       "sheetdl verify --json my.xlsx > report.json",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--json", action="store_true", help="machine-readable report")
    p.add_argument("--rtol", type=float, default=1e-9, help="relative tolerance (default 1e-9)")
    p = sub.add_parser("list", help="the lessons, optimizers and presets")
    p.add_argument("--json", action="store_true", help="machine-readable")
    p = sub.add_parser("example-data", help="write the small CSV files the README's --data "
                       "examples use", description="Write points.csv (graddesc, lrfind, mlp), "
                       "flowers.csv (softmax), ratings.csv (collab) and glyphs.csv (conv) into "
                       "DIR, so every README command runs as pasted.",
                       epilog="example: sheetdl example-data . && sheetdl build graddesc "
                       "--data points.csv")
    p.add_argument("dir", nargs="?", default=".", type=Path, help="the folder (default: here)")
    p.add_argument("--force", action="store_true",
                   help="replace files there that have other content")
    p = sub.add_parser("addin", help="the Excel add-in: install, steps, build the demo, Lite",
                       description="The sheetdl Excel add-in: its functions "
                       "(=SHEETDL.ADAM_STEP(...) and the rest) for classic xlwings, xlwings "
                       "Server (sheetdl serve) and xlwings Lite.",
                       epilog="examples:\n  sheetdl addin steps\n  sheetdl addin build "
                       "-o demo.xlsm\n  sheetdl addin lite -o main.py\n  sheetdl addin manifest "
                       "-o manifest.xml",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("action", choices=["install", "steps", "build", "lite", "manifest"],
                   help="install (classic xlwings, Windows), steps (print how), build "
                        "(addin/sheetdl.xlsm), lite (addin/lite/main.py), manifest (the "
                        "manifest.xml to sideload for sheetdl serve --https)")
    p.add_argument("-o", "--out", help="output file for build, lite or manifest")
    p.add_argument("--port", type=_port, default=8000,
                   help="manifest: the port sheetdl serve --https listens on (default 8000)")
    p.add_argument("--force", action="store_true",
                   help="build, manifest: replace a file with other content")
    p = sub.add_parser("bench", help="measure ratios against the alternatives, in one run",
                       description="Time sheetdl against the alternatives (openpyxl, "
                       "LibreOffice, torch, plain Python) in one run and print each ratio; a "
                       "quick run by default.", epilog="examples:\n  sheetdl bench\n  sheetdl "
                       "bench --only conv,writing --json\n  sheetdl bench --full --plot "
                       "scaling.png", formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--full", action="store_true", help="the large sizes (100,000 rows, 10M "
                   "parameters, 1,000,000 training rows); slow")
    p.add_argument("--json", action="store_true", help="machine-readable report")
    p.add_argument("--plot", metavar="FILE.png", help="write the scaling plot (needs matplotlib)")
    p.add_argument("--only", type=_comma_list, metavar="AREAS",
                   help="comma-separated: writing, recalculation, conv, kernels, add-in, scaling")
    p = sub.add_parser("serve", help="serve the add-in's functions with xlwings Server",
                       description="Run xlwings Server with sheetdl's functions "
                                   "(=SHEETDL.ADAM_STEP(...) and the rest). " + LICENSE_TERMS)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=_port, default=8000, help="port, 1–65535 (default 8000)")
    from .addin import server_guard

    p.add_argument("--running", type=_count(1), default=server_guard.RUNNING, metavar="N",
                   help="calls computed at once (default %(default)s; each may use up to "
                        "640 MB)")
    p.add_argument("--waiting", type=_count(0), default=server_guard.WAITING, metavar="N",
                   help="calls queued behind them before the server answers 503 with "
                        "Retry-After (default %(default)s)")
    p.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                   help="a Host name requests may carry besides 127.0.0.1, localhost, ::1 and "
                        "--host (repeatable); any other is refused, against DNS rebinding")
    p.add_argument("--https", action="store_true",
                   help="serve over HTTPS with a localhost certificate (made on first use in "
                        "sheetdl's config folder; trust it once with the command printed), "
                        "and sheetdl's manifest at /manifest: Office loads add-ins over HTTPS "
                        "only")
    return parser


class Terminated(BaseException):
    """SIGTERM or SIGHUP: unwinds like Ctrl-C, so the writer removes its temporary file."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def _on_signal(signum, frame):
    raise Terminated(signum)


def main(argv=None) -> int:
    import signal

    saved = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, getattr(signal, "SIGHUP", None)):
            # an ignored signal (nohup) stays ignored
            if sig is not None and signal.getsignal(sig) is not signal.SIG_IGN:
                saved[sig] = signal.signal(sig, _on_signal)
    try:
        return _main(argv)
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def _main(argv=None) -> int:
    try:
        top = parser()
        args, extra = top.parse_known_args(argv)
        if extra:  # said by the parser of the lesson, which knows its flags
            (top.lesson_parsers.get(getattr(args, "lesson", None)) or top).error(
                f"unrecognized arguments: {' '.join(extra)}")
        return {"build": cmd_build, "verify": cmd_verify, "list": cmd_list,
                "serve": cmd_serve, "addin": cmd_addin, "bench": cmd_bench,
                "example-data": cmd_example_data}[args.command](args)
    except options.OptionError as e:  # one line, and where the flags are listed
        where = str(e).split(":")[0]
        print(f"{e}\n(see: {where} --help)", file=sys.stderr)
        return 2
    except (UserError, data.DataError, ValueError) as e:
        print(f"sheetdl: error: {e}{_data_hint(e, args)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # temporary files are removed by the writer on the way out
        print("sheetdl: interrupted", file=sys.stderr)
        return 130
    except Terminated as e:
        import signal

        print(f"sheetdl: terminated by {signal.Signals(e.signum).name}", file=sys.stderr)
        return 128 + e.signum
    except BrokenPipeError:  # `sheetdl verify F | head`: the reader left; not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
