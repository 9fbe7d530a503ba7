"""The Excel side of the add-in: the demo .xlsm, installing, and xlwings Lite's main.py.

- ``demo_book()``: ``addin/sheetdl.xlsm``: the xlwings VBA project from the
  xlwings wheel's standalone template, an ``xlwings.conf`` sheet with
  ``UDF Modules`` = ``sheetdl.addin.classic``, formula sheets for SGD and Adam on the
  course data, and a ``calls`` sheet with the same lessons as add-in calls
  (cached values included) and their difference from the formula sheets.
- ``install_steps()`` / ``install()``: classic xlwings on Windows.
- xlwings Lite's ``main.py``: ``lite.py``.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from ..extras import pip_install
from ..lessons import data
from ..lessons.graddesc import layout as graddesc
from . import udfs
from ..lessons.softmax import layout as softmax_book
from ..sheet.formulas import addin_function
from ..sheet.workbook import ArrayFormula, Book, Sheet, ref, static_rows

CONF_KEYS = ["Interpreter_Win", "Interpreter_Mac", "PYTHONPATH", "Conda Path", "Conda Env",
             "UDF Modules", "Debug UDFs", "Use UDF Server", "Show Console"]


def vba_project() -> bytes:
    """xl/vbaProject.bin of the xlwings wheel's quickstart_standalone.xlsm (the
    xlwings VBA module that Import Functions and CallUDF need)."""
    import zipfile

    try:
        import xlwings
    except ImportError:
        raise RuntimeError(f"building the demo needs xlwings: {pip_install('addin')}") \
            from None
    template = Path(xlwings.__file__).parent / "quickstart_standalone.xlsm"
    with zipfile.ZipFile(template) as z:
        return z.read("xl/vbaProject.bin")


def conf_sheet() -> Sheet:
    values = {"Interpreter_Win": "python", "UDF Modules": "sheetdl.addin.classic"}
    rows = [(i, [(0, None, k, "bold"), (1, None, values.get(k, ""), None)])
            for i, k in enumerate(CONF_KEYS)]
    return Sheet("xlwings.conf", static_rows(rows), widths={0: 18, 1: 30})


def calls_sheet(lesson: graddesc.Lesson, sheets: list[Sheet]) -> Sheet:
    """Sample calls beside the formula sheets they reproduce."""
    n = len(lesson.x)
    steps = n * lesson.epochs
    cells: dict[int, list] = {}

    def put(row, col, formula, value, style=None):
        cells.setdefault(row, []).append((col, formula, value, style))

    put(0, 0, None, "The sheetdl add-in: each table below is one call. Once, in Excel: xlwings "
        "ribbon → Import Functions (File → Options → Trust Center → trust access to the VBA "
        "project object model). Each call's values are cached here, computed by sheetdl.",
        "title")
    row = 2
    for kind in lesson.optimizers:
        # The formula sheet's input cells by address: IronCalc cannot parse sheet!name for
        # sheet-scoped names, which Excel accepts.
        inputs = next(s for s in sheets if s.name == kind).names
        cell = lambda h: f"{kind}!{inputs[h]}" if h in inputs else '""'
        call = (f'={addin_function("train_linear", "classic")}(x,y,"{kind}",{cell("lr")},'
                f'{lesson.epochs},"torch",'
                f'{cell("b_init")},{cell("a_init")},'
                + ",".join(cell(h) for h in ("momentum", "beta1", "beta2", "eps", "weight_decay"))
                + ")")
        put(row, 0, None, f"{kind}: the whole graddesc trajectory of sheet {kind}, in one call",
            "bold")
        table = udfs.train_linear(lesson.x.reshape(-1, 1), lesson.y.reshape(-1, 1), kind,
                                  lesson.optimizers[kind].lr, lesson.epochs, "torch",
                                  lesson.b_init, lesson.a_init,
                                  *[getattr(lesson.optimizers[kind], h, "")
                                    for h in ("momentum", "beta1", "beta2", "eps",
                                              "weight_decay")])
        top = row + 1
        put(top, 0, ArrayFormula(call, top + steps, len(udfs.TRAIN_HEADER) - 1), table[0][0],
            "header")
        for j, h in enumerate(table[0][1:], start=1):
            put(top, j, None, h, "header")
        diff_col = len(udfs.TRAIN_HEADER) + 1
        put(top, diff_col, None, f"new b − {kind}!new b", "header")
        new_b = graddesc.summary_column(lesson, kind) - 1  # the formula sheet's new-b column
        new_b -= 2  # new a is the last table column, new b the one before
        for i, values in enumerate(table[1:]):
            r = top + 1 + i
            for j, v in enumerate(values):
                put(r, j, None, float(v), "general")
            put(r, diff_col, f"={ref(r, 10)}-{kind}!{ref(graddesc.FIRST_STEP_ROW + i, new_b)}",
                float(values[10]) - float(lesson.traces[kind].b_trace[i]), "general")
        row = top + steps + 3
    # softmax and one Adam step, small enough to read
    z = np.array([e[1] for e in softmax_book.EXAMPLES])
    put(row, 0, None, "SHEETDL_SOFTMAX of the course's logits and of ±1000 (finite)", "bold")
    for i, zi in enumerate(z):
        for j, v in enumerate(zi):
            put(row + 1 + i, j, None, float(v), "input")
    sm = udfs.softmax(z)
    area = f"{ref(row + 1, 0)}:{ref(row + len(z), z.shape[1] - 1)}"
    for i in range(len(z)):
        for j in range(z.shape[1]):
            call = f"={addin_function('softmax', 'classic')}({area})"
            formula = (ArrayFormula(call, row + len(z), 2 * z.shape[1]) if (i, j) == (0, 0)
                       else None)
            put(row + 1 + i, z.shape[1] + 1 + j, formula, float(sm[i, j]), "general")
    return Sheet("calls", lambda: iter(sorted((r, sorted(c, key=lambda x: x[0]))
                                             for r, c in cells.items())),
                 widths={i: 12 for i in range(14)})


def demo_book() -> Book:
    x, y = data.course_points()
    lesson = graddesc.make_lesson(x, y, optimizers=("sgd", "adam"), epochs=2)
    book = graddesc.build(lesson)
    sheets = list(book.sheets)
    sheets.insert(1, calls_sheet(lesson, sheets))
    sheets.append(conf_sheet())
    meta = dict(book.meta, demo="addin")
    return Book(sheets, book.names, "sheetdl add-in demo", meta, vba_project=vba_project())


def install_steps() -> str:
    return (
        "Classic xlwings add-in (Windows desktop Excel):\n"
        f"  1. {pip_install('addin')} && xlwings addin install\n"
        "  2. In %USERPROFILE%\\.xlwings\\xlwings.conf set \"UDF Modules\",\n"
        "     \"sheetdl.addin.classic\" and \"Interpreter_Win\",\"<path to python.exe>\";\n"
        "     then in Excel: xlwings ribbon → Import Functions.\n"
        "     Formulas: =SHEETDL_ADAM_STEP(...), =SHEETDL_TRAIN_LINEAR(...).\n"
        "Or open addin/sheetdl.xlsm and click Import Functions once.\n"
        "Excel on Mac, the web or Windows: xlwings Lite (paste addin/lite/main.py into its "
        "editor), or\n  XLWINGS_LICENSE_KEY=noncommercial sheetdl serve --https and sideload "
        "`sheetdl addin manifest -o sheetdl.xml`\n  (README: Excel add-in).")


def install() -> str:
    """On Windows: what `xlwings addin install` does, plus the conf sheetdl needs."""
    import subprocess

    if sys.platform != "win32":
        return ("sheetdl addin install works on Windows with desktop Excel; here are the "
                "steps:\n" + install_steps())
    subprocess.run([sys.executable, "-m", "xlwings", "addin", "install"], check=True)
    conf = Path.home() / ".xlwings" / "xlwings.conf"
    conf.parent.mkdir(exist_ok=True)
    lines = [line for line in (conf.read_text().splitlines() if conf.exists() else [])
             if not line.startswith(('"UDF MODULES"', '"INTERPRETER_WIN"'))]
    lines += ['"UDF MODULES","sheetdl.addin.classic"', f'"INTERPRETER_WIN","{sys.executable}"']
    conf.write_text("\n".join(lines) + "\n")
    return f"installed the xlwings add-in and set {conf}: restart Excel, then Import Functions"
