import os
import sys
from pathlib import Path

import pytest

from sheetdl.verification import libreoffice

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
#: the fast.ai course workbooks, shipped with the tests (see tests/data/fastai/PROVENANCE.md)
FASTAI = ROOT / "tests" / "data" / "fastai"
COURSE = FASTAI / "course-v3"


def named_values(wb, name: str, sheet: str | None = None, errors_as_nan: bool = False):
    """The cells of defined ``name`` (sheet-scoped when ``sheet`` is given) in an openpyxl
    workbook opened with data_only, e.g. LibreOffice's recalculated output. A non-numeric
    cell raises unless ``errors_as_nan``."""
    import numpy as np

    if sheet:
        rng = wb[sheet].defined_names[name].attr_text.split("!")[1]
    else:
        sheet, rng = next(iter(wb.defined_names[name].destinations))
    rng = rng.replace("$", "")
    if ":" not in rng:  # one cell
        rng = f"{rng}:{rng}"
    values = [c.value for row in wb[sheet][rng] for c in row]
    if errors_as_nan:
        values = [v if isinstance(v, (int, float)) else np.nan for v in values]
    return np.array(values, float)


@pytest.fixture(autouse=True)
def _no_xlwings_server_in_process(request):
    """Importing xlwings_server sets XLWINGS_ON_SERVER in the process, after which a later
    `import xlwings` (the add-in's tests) demands a license key: a test that imported it
    here would make the tests after it fail far from the cause. Tests run the server as
    `sheetdl serve` in a child process; this fails the test that broke the rule."""
    yield
    if "xlwings_server" in sys.modules:
        pytest.fail(f"{request.node.nodeid} imported xlwings_server in the test process; run "
                    "it as a child process (`sheetdl serve`) instead")


def pytest_addoption(parser):
    parser.addoption("--slow", action="store_true", help="run many more generated examples")


def pytest_configure(config):
    # read by property-based tests to scale their example counts
    os.environ["SHEETDL_SLOW"] = "1" if config.getoption("--slow") else ""


@pytest.fixture(scope="session")
def soffice():
    """LibreOffice is required in CI (.ci/run installs it); elsewhere its tests skip."""
    if libreoffice.soffice() is None:
        if os.environ.get("CI"):
            pytest.fail("LibreOffice is required in CI: apt-get install libreoffice-calc")
        pytest.skip("LibreOffice (soffice) is not installed")
    return libreoffice.soffice()


@pytest.fixture(scope="session")
def course_dir():
    if not COURSE.exists():
        pytest.fail(f"{COURSE} is missing: it ships with the tests")
    return COURSE


def softmax_example(wb, si: int, i: int) -> dict:
    """Where example ``i`` of a recalculated softmax sheet (``wb``: verifier.recalculated)
    sits, 1-based (row, column), found from the sheet's own headers and labels: the
    target, each class row's logit and p, and the loss."""
    from sheetdl.lessons.softmax.layout import CLASSES, SOFTMAX_BLOCK, SOFTMAX_TOP

    get = wb.model.get_cell_value
    header = [get(si, SOFTMAX_TOP, c) for c in range(1, 30)]
    top = SOFTMAX_TOP + 1 + i * SOFTMAX_BLOCK  # the example's name and target
    rows = range(top + 1, top + 1 + len(CLASSES))
    label_col = next(c for c in range(1, 30) if get(si, top + 1, c) == "max m")
    loss_row = next(r for r in rows if get(si, r, label_col) == "loss")
    return {"target": (top, 2),
            "z": [(r, header.index("logit z") + 1) for r in rows],
            "p": [(r, header.index("p = softmax") + 1) for r in rows],
            "loss": (loss_row, label_col + 1)}


def free_port() -> int:
    """A TCP port nothing on 127.0.0.1 listens on now, for a server a test starts."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
