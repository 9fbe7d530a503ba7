"""sheetdl's Excel functions for xlwings Server: =SHEETDL.ADAM_STEP(...) and the rest.

xlwings Server imports this package and serves every member carrying xlwings metadata as
a custom function: here, each public function of sheetdl.addin.udfs, decorated with
xlwings.server's decorators (arrays passed through as JSON lists, each call off the
event loop).
"""
import sys

if sys.platform != "emscripten":
    # xlwings 0.37.8's Office.js conversion retries `from pyodide.ffi import JsNull`
    # for every cell on CPython; a None entry makes that import fail at once
    # (a 100k-cell call: 10-18 s without this, about 1 s with it).
    sys.modules.setdefault("pyodide", None)

from xlwings.server import arg, func, ret  # noqa: E402

from sheetdl.addin import udfs  # noqa: E402

# every public function, so a new one needs no edit here
globals().update(udfs.decorate(func, arg, ret, "server"))
