"""xlwings Lite's ``main.py``: the add-in's own modules, carried as source.

Lite runs Python in the browser (Pyodide). It installs packages from PyPI's pure-Python
wheels, which sheetdl is not (IronCalc has no WebAssembly wheel), and its editor holds one
``main.py``. So ``main.py`` carries, as text, every module of this package that
``sheetdl.addin.udfs`` imports when the module is loaded (``bundled_modules``), registers
them under their own names with a small importer, and decorates ``udfs``' public functions
with Lite's decorators, exactly as the Server project decorates them. Lite's functions are
then the add-in's functions: the same checks and messages, the same code, the same
numbers (NumPy's path: Pyodide has no numba, and every compiled loop in sheetdl falls back
to its reference loop without it).

What Lite does not get: the package's ``__init__`` (the Python API, which builds and
verifies workbooks with XlsxWriter and IronCalc) and any module ``udfs`` does not import.
An import inside a function is not followed: the test that runs every function through
the bundle in a Python without sheetdl installed finds one.
"""
from __future__ import annotations

import ast
from pathlib import Path

#: The module whose public functions Lite carries.
ENTRY = "sheetdl.addin.udfs"
#: The package's folder: the sources travel from here.
PACKAGE_DIR = Path(__file__).resolve().parents[1]
#: What Lite installs (its requirements.txt replaces Lite's own, which names xlwings).
REQUIREMENTS = ("xlwings", "numpy", "array-api-compat")
#: What the bundle's top package says of itself instead of the Python API.
TOP_PACKAGE = '"""sheetdl\'s add-in modules, carried by xlwings Lite\'s main.py."""\n'


def _file_of(name: str) -> tuple[Path, bool] | None:
    """(source file, is a package) of module ``name`` of this package, or None."""
    folder = PACKAGE_DIR.joinpath(*name.split(".")[1:])
    if (folder / "__init__.py").exists():
        return folder / "__init__.py", True
    if name.count(".") and folder.with_suffix(".py").exists():
        return folder.with_suffix(".py"), False
    return None


def _statements_run_on_import(tree: ast.Module):
    """Every statement that runs when the module is imported: the module's own, and those
    inside its ``if``/``try``/``with`` blocks, not those of its functions and classes."""
    todo = list(tree.body)
    while todo:
        node = todo.pop(0)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        yield node
        todo += [c for c in ast.iter_child_nodes(node) if isinstance(c, ast.stmt)]


def _imports(name: str, tree: ast.Module, is_package: bool) -> list[str]:
    """The modules of this package that importing ``name`` imports (and a few names that
    are attributes, not modules, which ``_file_of`` then finds no file for)."""
    package = name if is_package else name.rpartition(".")[0]
    top = ENTRY.split(".")[0]
    found = []
    for node in _statements_run_on_import(tree):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] == top]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module.split(".")[0] == top:
                found += [module] + [f"{module}.{a.name}" for a in node.names]
    return found


def bundled_modules() -> dict[str, tuple[str, bool]]:
    """Module name → (source, is a package), for every module of this package that
    importing ``ENTRY`` imports, its packages included; sorted by name."""
    top = ENTRY.split(".")[0]
    found: dict[str, tuple[str, bool]] = {}
    todo = [ENTRY]
    while todo:
        name = todo.pop()
        if name in found:
            continue
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # its packages
        if name == top:
            found[name] = (TOP_PACKAGE, True)
            continue
        where = _file_of(name)
        if where is None:  # a name imported from a module, not a module
            continue
        path, is_package = where
        source = path.read_text(encoding="utf-8")
        found[name] = (source, is_package)
        todo += _imports(name, ast.parse(source, str(path)), is_package)
    return dict(sorted(found.items()))


IMPORTER = '''
import importlib.abc
import importlib.util
import sys


class _Bundled(importlib.abc.MetaPathFinder, importlib.abc.InspectLoader):
    """Imports the modules above from their text, under their own names, ahead of any
    other sheetdl on the path; tracebacks and inspect show their lines."""

    def find_spec(self, name, path=None, target=None):
        if name not in MODULES:
            return None
        spec = importlib.util.spec_from_loader(name, self, origin=self._file(name),
                                               is_package=MODULES[name][1])
        spec.has_location = True  # __file__ is set, so linecache asks get_source
        return spec

    @staticmethod
    def _file(name):
        return "sheetdl-lite/" + name.replace(".", "/") + ("/__init__.py" if MODULES[name][1]
                                                            else ".py")

    def get_source(self, name):
        return MODULES[name][0]

    def get_code(self, name):
        return compile(MODULES[name][0], self._file(name), "exec", dont_inherit=True)

    def is_package(self, name):
        return MODULES[name][1]


sys.meta_path.insert(0, _Bundled())
'''

FUNCTIONS = '''
# --- the Excel functions: =SHEETDL.SOFTMAX(...) and the rest, each udfs' own ----------
from xlwings import arg, func, ret  # noqa: E402

from sheetdl.addin import udfs as _udfs  # noqa: E402

globals().update(_udfs.decorate(func, arg, ret, "lite"))
'''


def main_py() -> str:
    """The text of Lite's ``main.py``: a header, the modules, the importer, the functions."""
    modules = bundled_modules()
    head = ('"""sheetdl for xlwings Lite, generated by `sheetdl addin lite`: do not edit.\n\n'
            f"It carries {len(modules)} modules of sheetdl as text (those the add-in's functions "
            "import),\nregisters them under their own names, and decorates every public "
            "function of\nsheetdl.addin.udfs as the add-in does: =SHEETDL.ADAM_STEP(...) and "
            "the rest.\nRegenerate it from a checkout with `sheetdl addin lite`.\n\"\"\"\n")
    body = "".join(f"    {name!r}: ({_literal(source)}, {is_package}),\n"
                   for name, (source, is_package) in modules.items())
    return head + "MODULES = {\n" + body + "}\n" + IMPORTER + FUNCTIONS


def _literal(source: str) -> str:
    """``source`` as a Python literal a person can read in Lite's editor (a raw triple-quoted
    string, its lines as they are), or its repr where such a string would not give it back."""
    readable = f"r'''{source}'''"
    try:
        if ast.literal_eval(readable) == source:
            return readable
    except SyntaxError:
        pass
    return repr(source)


def requirements_txt() -> str:
    return "\n".join(REQUIREMENTS) + "\n"
