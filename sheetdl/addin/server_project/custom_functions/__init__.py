"""sheetdl's Excel functions for xlwings Server: =SHEETDL.ADAM_STEP(...) and the rest.

Every member carrying xlwings metadata becomes a custom function; sheetdl.addin.udfs
decorates its functions with xlwings.server's decorators when it is imported
with XLWINGS_LICENSE_KEY set, as the server requires.
"""
import sys

if sys.platform != "emscripten":
    # xlwings 0.37.8's Office.js conversion retries `from pyodide.ffi import JsNull`
    # for every cell on CPython; a None entry makes that import fail at once
    # (a 100k-cell call: 10-18 s without this, about 1 s with it).
    sys.modules.setdefault("pyodide", None)

from sheetdl.addin import udfs  # noqa: E402

# every public function, so a new one needs no edit here
globals().update({name: getattr(udfs, name) for name in udfs.PUBLIC})
