"""Tier 2: the real classic xlwings (Windows) decorators and converters, run on Linux.

pywin32 is stubbed and an `excel` engine registered whose cleaning turns COM
values into Python values as Windows does (empty → None, COM error codes →
errors), so xlwings.udfs' own xlfunc/xlarg decorators, conversion.read/write and
generate_vba_wrapper (what "Import Functions" writes) run unchanged."""
import io
import math
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from sheetdl.lessons import data
from sheetdl.addin import udfs
from sheetdl.verification import verifier as verify
from conftest import ROOT

GOLDEN = Path(__file__).parent / "golden" / "sheetdl_classic.bas"
COM_ERRORS = {-2146826281: "#DIV/0!", -2146826246: "#N/A", -2146826259: "#NAME?",
              -2146826288: "#NULL!", -2146826252: "#NUM!", -2146826265: "#REF!",
              -2146826273: "#VALUE!"}


class ComValues:
    """What xlwings' Windows engine does to values crossing COM."""

    name = "excel"

    @staticmethod
    def clean_value_data(data, datetime_builder, empty_as, number_builder, err_to_str):
        def clean(c):
            if c is None or c == "":
                return empty_as
            if isinstance(c, int) and c in COM_ERRORS:
                return COM_ERRORS[c] if err_to_str else None
            if isinstance(c, (int, float)) and not isinstance(c, bool) and number_builder:
                return number_builder(c)
            return c
        return [[clean(c) for c in row] for row in data]

    @staticmethod
    def prepare_xl_data_element(x, options):
        if isinstance(x, (np.floating, float)):
            return "" if math.isnan(x) else float(x)
        if isinstance(x, np.integer):
            return int(x)
        return "" if x is None else x


@pytest.fixture(scope="module")
def classic():
    stubs = {name: types.ModuleType(name) for name in
             ["pythoncom", "pywintypes", "win32com", "win32com.client"]}
    stubs["pythoncom"].CoInitialize = lambda: None
    stubs["pythoncom"].com_error = type("com_error", (Exception,), {})
    stubs["pywintypes"].TimeType = type("TimeType", (), {})
    stubs["win32com.client"].Dispatch = None
    stubs["win32com"].client = stubs["win32com.client"]
    saved = {k: sys.modules.get(k) for k in stubs}
    sys.modules.update(stubs)
    import xlwings
    import xlwings.conversion as conversion
    import xlwings.udfs as xludfs

    added = "excel" not in xlwings.engines.engines_by_name
    if added:
        xlwings.engines.add(xlwings.main.Engine(impl=ComValues()))
    functions = udfs.decorate(xludfs.xlfunc, xludfs.xlarg, xludfs.xlret, "classic")
    yield xludfs, conversion, functions
    if added:  # leave no fake engine for the tests that run after
        engine = xlwings.engines.engines_by_name.pop("excel")
        xlwings.engines.engines.remove(engine)
    for k, v in saved.items():
        if v is None:
            sys.modules.pop(k, None)
        else:
            sys.modules[k] = v


def excel_call(conversion, f, *com_args):
    """Convert COM arguments as call_udf does, call, convert the result back."""
    info = f.__xlfunc__
    args = []
    for value, arg in zip(com_args, info["args"]):
        if arg["options"]:
            args.append(conversion.read(None, value, arg["options"]))
        else:
            args.append(value)
    return conversion.write(f(*args), None, info["ret"]["options"])


def test_vba_that_import_functions_writes_is_golden(classic):
    xludfs, _, functions = classic
    module = types.ModuleType("sheetdl.addin.classic")
    for name, f in functions.items():
        setattr(module, name, f)
    out = io.StringIO()
    xludfs.generate_vba_wrapper("sheetdl.addin.classic", module, out,
                                types.SimpleNamespace(Name="sheetdl.xlsm"))
    vba = out.getvalue()
    assert vba == GOLDEN.read_text(), "regenerate tests/golden/sheetdl_classic.bas if intended"
    for name in udfs.PUBLIC:
        assert f"Function SHEETDL_{name.upper()}(" in vba


def test_train_linear_through_classic_conversion_equals_the_workbook(classic):
    _, conversion, functions = classic
    wb = verify.recalculated(ROOT / "workbooks" / "graddesc.xlsx")
    x, y = data.course_points()
    column = lambda v: tuple((float(a),) for a in v)
    table = excel_call(conversion, functions["SHEETDL_TRAIN_LINEAR"], column(x), column(y),
                       "rmsprop", float(wb.values("lr", "rmsprop")[0]), 5, "torch", 1.0, 1.0,
                       None, None, None, None, None)
    assert table[0][-2:] == ["new b", "new a"]
    body = np.array(table[1:], float)
    np.testing.assert_allclose(body[:, 10], wb.values("b_trace", "rmsprop"), rtol=1e-12)


def test_empty_and_error_cells_cross_com_as_nan(classic):
    _, conversion, functions = classic
    f = functions["SHEETDL_MOMENTUM_STEP"]
    # all-empty velocity: torch's first step, the buffer becomes the gradient
    out = excel_call(conversion, f, ((1.0, 2.0),), ((0.5, -1.0),), ((None, ""),), 0.1,
                     0.9, 0.0, False)
    np.testing.assert_allclose(out, [[0.95, 2.1, 0.5, -1.0]])
    with pytest.raises(udfs.UdfError, match="params has an empty, error or non-finite cell "
                                            "at row 1, column 2"):
        excel_call(conversion, functions["SHEETDL_SGD_STEP"], ((1.0, -2146826281),),
                   ((0.5, 0.5),), 0.1, None, None)


def test_every_function_through_classic_conversion_equals_the_direct_call(classic):
    _, conversion, functions = classic
    rng = np.random.default_rng(5)
    p, g = rng.normal(size=(2, 3)), rng.normal(size=(2, 3))
    m, v = rng.normal(size=(2, 3)) * 0.1, np.abs(rng.normal(size=(2, 3)))
    com = lambda a: tuple(tuple(float(c) for c in row) for row in np.atleast_2d(a))
    cases = [
        ("softmax", (p,), (com(p), None)),
        ("sgd_step", (p, g, 0.1, 0.01), (com(p), com(g), 0.1, 0.01, None)),
        ("rmsprop_step", (p, g, v, 0.01, 0.9, 1e-8), (com(p), com(g), com(v), 0.01, 0.9, 1e-8)),
        ("adam_step", (p, g, m, v, 4, 0.01), (com(p), com(g), com(m), com(v), 4, 0.01, None,
                                              None, None, None, None)),
        ("collab_predict", (p, g.T, [[1.0, 2.0]], [[0.5, 0.5]]),
         (com(p), com(g.T), ((1.0, 2.0),), ((0.5, 0.5),), None, None)),
    ]
    for name, direct_args, com_args in cases:
        want = np.asarray(getattr(udfs, name)(*direct_args))
        got = np.asarray(excel_call(conversion, functions[f"SHEETDL_{name.upper()}"], *com_args),
                         float)
        np.testing.assert_array_equal(got, want, err_msg=name)
