"""The first screen of every training sheet (A1:T40 at 100% zoom) teaches the lesson:
its charts sit inside it, it is mostly filled, its numbers are formatted, its status cell
says what happened (recalculated by IronCalc after an edit), every yellow input is
validated, and no formula relies on a name defined on more than one sheet."""
import re
import subprocess
import sys

import numpy as np
import openpyxl
import pytest

import sheetdl
from openpyxl.utils import range_boundaries

from sheetdl.verification import verifier as verify
from conftest import ROOT, softmax_example

BOOKS = ROOT / "workbooks"
#: the training sheets of each committed default workbook
TRAINING = {
    "graddesc.xlsx": ["sgd", "momentum", "rmsprop", "adam", "adamw"],
    "softmax.xlsx": ["train"],
    "collab.xlsx": ["train"],
    "lrfind.xlsx": ["lrfind"],
    "mlp.xlsx": ["train"],
    "conv.xlsx": ["train"],
}
ROWS, COLS = 40, 20  # A1:T40
INPUT_FILL = "FFFFF2CC"


def sheets():
    for book, names in TRAINING.items():
        for name in names:
            yield pytest.param(book, name, id=f"{book}:{name}")


@pytest.fixture(scope="module")
def loaded():
    return {book: openpyxl.load_workbook(BOOKS / book) for book in TRAINING}


@pytest.fixture(scope="module")
def cached():
    """The same workbooks' cached values."""
    return {book: openpyxl.load_workbook(BOOKS / book, data_only=True) for book in TRAINING}


def chart_boxes(ws):
    """(first row, first col, last row, last col), 0-based, of each chart's anchor."""
    return [(c.anchor._from.row, c.anchor._from.col, c.anchor.to.row, c.anchor.to.col)
            for c in ws._charts]


@pytest.mark.parametrize("book,sheet", list(sheets()))
def test_charts_sit_on_the_first_screen(loaded, book, sheet):
    boxes = chart_boxes(loaded[book][sheet])
    on_screen = [b for b in boxes if b[2] < ROWS and b[3] < COLS]
    assert on_screen, f"{sheet}: no chart inside A1:T40 (anchors {boxes})"
    # the loss chart is the first one, and it is on screen
    assert boxes[0] in on_screen


@pytest.mark.parametrize("book,sheet", list(sheets()))
def test_first_screen_is_mostly_filled(loaded, book, sheet):
    ws = loaded[book][sheet]
    shown = {(r, c) for r in range(ROWS) for c in range(COLS)
             if ws.cell(r + 1, c + 1).value not in (None, "")}
    for r0, c0, r1, c1 in chart_boxes(ws):
        shown |= {(r, c) for r in range(r0, min(r1, ROWS - 1) + 1)
                  for c in range(c0, min(c1, COLS - 1) + 1)}
    share = len(shown) / (ROWS * COLS)
    assert share >= 0.45, f"{sheet}: only {share:.0%} of A1:T40 shows something"


@pytest.mark.parametrize("book,sheet", list(sheets()))
def test_numbers_on_the_first_screen_are_formatted(loaded, cached, book, sheet):
    ws, values = loaded[book][sheet], cached[book][sheet]
    numeric = [ws.cell(r, c) for r in range(8, ROWS + 1) for c in range(1, COLS + 1)
               if isinstance(values.cell(r, c).value, (int, float))]
    general = [c for c in numeric if c.number_format == "General"
               and c.fill.fgColor.rgb != INPUT_FILL]
    assert numeric
    assert len(general) <= 0.10 * len(numeric), \
        f"{sheet}: {len(general)} of {len(numeric)} numeric cells in A8:T40 are General"


@pytest.mark.parametrize("book,sheet", [*sheets(), ("graddesc.xlsx", "data"),
                                        ("softmax.xlsx", "data"), ("softmax.xlsx", "softmax"),
                                        ("mlp.xlsx", "data"), ("collab.xlsx", "ratings")])
def test_every_yellow_input_is_validated(loaded, book, sheet):
    ws = loaded[book][sheet]
    covered = set()
    for dv in ws.data_validations.dataValidation:
        for rng in str(dv.sqref).split():
            c0, r0, c1, r1 = range_boundaries(rng)
            covered |= {(r, c) for r in range(r0, r1 + 1) for c in range(c0, c1 + 1)}
    inputs = [(c.row, c.column) for row in ws.iter_rows(max_row=200) for c in row
              if c.fill.fgColor.rgb == INPUT_FILL and c.value is not None]
    assert inputs
    missing = [f"{ws.cell(*rc).coordinate}" for rc in inputs if rc not in covered]
    assert not missing, f"{sheet}: yellow inputs without validation: {missing}"


@pytest.mark.parametrize("args,sheet", [
    (["lrfind"], "lrfind"),
    (["graddesc", "--optimizers", "adam", "--schedule", "onecycle", "--epochs", "2"], "adam"),
    (["softmax", "--schedule", "cosine", "--steps", "8"], "train"),
    (["collab", "--schedule", "onecycle", "--epochs", "4"], "train"),
    (["mlp", "--schedule", "onecycle", "--steps", "6"], "train"),
], ids=lambda a: " ".join(a) if isinstance(a, list) else a)
def test_steps_is_derived_not_an_input(tmp_path, args, sheet):
    """A schedule or finder reads `steps`: it must be a formula counting the step rows,
    never a yellow cell (halving it made the one-cycle lr climb back up)."""
    out = build(tmp_path, args)
    wb = openpyxl.load_workbook(out)
    ws = wb[sheet]
    target = (ws.defined_names["steps"] if "steps" in ws.defined_names
              else wb.defined_names["steps"]).attr_text
    cell = ws[target.split("!")[1].replace("$", "")]
    assert str(cell.value).startswith("=ROWS("), cell.value
    assert cell.fill.fgColor.rgb != INPUT_FILL
    recalc = verify.recalculated(out)
    steps = recalc.values("steps", sheet if "steps" in ws.defined_names else None)[0]
    assert steps == len(recalc.values("loss_trace", sheet if "loss_trace" in ws.defined_names
                                      else None))


def build(tmp_path, args):
    out = tmp_path / "b.xlsx"
    r = subprocess.run([sys.executable, "-m", "sheetdl.cli", "build", *args, "-o", str(out)],
                       capture_output=True, text=True, env={"PYTHONPATH": str(ROOT)})
    assert r.returncode == 0, r.stderr
    return out


NAME = re.compile(r"(?<![\w.!$\"])([A-Za-z_][A-Za-z0-9_.]*)\b(?![(!])")
STRING = re.compile(r'"[^"]*"')


def name_scopes(path):
    """{name: number of scopes defining it} from the workbook XML."""
    import zipfile

    with zipfile.ZipFile(path) as z:
        xml = z.read("xl/workbook.xml").decode()
    scopes: dict[str, set] = {}
    for m in re.finditer(r'<definedName name="([^"]+)"( localSheetId="(\d+)")?', xml):
        scopes.setdefault(m.group(1).lower(), set()).add(m.group(3))
    return scopes


def used_names(path, scopes):
    wb = openpyxl.load_workbook(path)
    for ws in wb.worksheets:
        for row in ws.iter_rows():
            for c in row:
                v = c.value
                if isinstance(v, str) and v.startswith("="):
                    for name in NAME.findall(STRING.sub('""', v)):
                        if name.lower() in scopes:
                            yield ws.title, c.coordinate, name


@pytest.mark.parametrize("args", [
    ["graddesc"], ["softmax"], ["collab"], ["lrfind"],
    ["softmax", "--lrfind", "--lrfind-steps", "20", "--steps", "10"],
    ["collab", "--lrfind", "--lrfind-steps", "10", "--epochs", "5"],
    ["mlp", "--lrfind", "--lrfind-steps", "10", "--steps", "5"],
    ["graddesc", "--optimizers", "adam,sgd", "--lrfind", "--schedule", "onecycle",
     "--epochs", "1"],
], ids=lambda a: " ".join(a))
def test_no_formula_relies_on_a_name_defined_twice(tmp_path, args):
    """Google Sheets keeps one name per spreadsheet: a name the formulas use must be
    defined in one scope only."""
    out = build(tmp_path, args)
    scopes = name_scopes(out)
    bad = {(s, c, n) for s, c, n in used_names(out, scopes) if len(scopes[n.lower()]) > 1}
    assert not bad, sorted(bad)[:10]
    assert any(True for _ in used_names(out, scopes)), "the formulas use names"


# --------------------------------------------------------------------------- the status cell

def status(wb, sheet):
    return wb.model.get_cell_value(wb.index[sheet], 6, 1)  # A6


def edited(path, edits):
    """Recalculate ``path`` after typing ``edits`` {(sheet, "A4"): text} in IronCalc."""
    wb = verify.recalculated(path)
    for (sheet, cell), text in edits.items():
        m = re.fullmatch(r"([A-Z]+)(\d+)", cell)
        col = sum((ord(ch) - 64) * 26 ** i for i, ch in enumerate(reversed(m.group(1))))
        wb.model.set_user_input(wb.index[sheet], int(m.group(2)), col, text)
    wb.model.evaluate()
    return wb


@pytest.mark.parametrize("edits,sheet,starts", [
    ({}, "sgd", "training fine: the loss fell from D9 to D10"),
    ({("sgd", "A4"): "0.001"}, "sgd", "DIVERGING: the loss grew from D9 to D10; lower lr"),
    ({("sgd", "A4"): "0.01"}, "sgd", "OVERFLOWED: the loss is #NUM! from step "),
    ({("data", "A3"): "abc"}, "sgd", "input data!A3 is empty or not a number"),
    ({("data", "B7"): ""}, "adam", "input data!B7 is empty or not a number"),
    ({("adam", "A4"): "abc"}, "adam", "input A4 (lr) is empty or not a number"),
])
def test_graddesc_status_names_what_happened(edits, sheet, starts):
    wb = edited(BOOKS / "graddesc.xlsx", edits)
    assert str(status(wb, sheet)).startswith(starts), status(wb, sheet)


def test_graddesc_status_says_fine_is_not_done(tmp_path):
    """Before: the default sgd said "training fine" at b = 1.30 against the best fit's 30.00.
    The clause is the sheet's own IF on its results box: gone once training gets there."""
    wb = edited(BOOKS / "graddesc.xlsx", {})
    far = "; still far from the best fit (row 11): more epochs, or another lr"
    assert status(wb, "sgd") == "training fine: the loss fell from D9 to D10" + far
    path = sheetdl.build("graddesc", tmp_path / "long.xlsx", optimizer="adam", epochs=200)
    wb = edited(path, {})
    assert status(wb, "adam") == "training fine: the loss fell from D9 to D10"
    wb = edited(path, {("adam", "A4"): "0.003"})  # a learner's smaller lr: not there yet
    assert status(wb, "adam").endswith(far)
    # every x the same: no best fit (its slope is #DIV/0!), and the status must still read
    csv = tmp_path / "flat.csv"
    csv.write_text("x,y\n3,1\n3,2\n3,4\n")
    path = sheetdl.build("graddesc", tmp_path / "flat.xlsx", data=str(csv), optimizer="sgd")
    assert verify.verify(path).ok
    assert status(edited(path, {}), "sgd").startswith("training fine")


def test_diverging_sgd_is_finite_but_growing():
    """The issue's case: lr 0.001 grows the loss to about 1e75, finite, and must not read
    as fine."""
    wb = edited(BOOKS / "graddesc.xlsx", {("sgd", "A4"): "0.001"})
    loss = wb.values("loss_trace", "sgd")
    assert np.all(np.isfinite(loss)) and loss[-1] > 1e60


@pytest.mark.parametrize("book,edits,starts", [
    ("softmax.xlsx", {}, "training fine: the loss fell from B8 to B57"),
    ("softmax.xlsx", {("train", "A4"): "abc"}, "input A4 (lr) is empty or not a number"),
    ("softmax.xlsx", {("train", "A4"): "-1"}, "DIVERGING"),  # gradient ascent
    ("softmax.xlsx", {("data", "B5"): ""}, "input data!B5 is empty or not a number"),
    ("softmax.xlsx", {("data", "D5"): "horse"}, "input data!D5 is empty or not a number"),
    ("collab.xlsx", {}, "training fine: the loss fell from B8 to B27"),
    ("collab.xlsx", {("train", "A4"): "50"}, "DIVERGING"),
    ("collab.xlsx", {("train", "B4"): ""}, "input B4 (beta1) is empty or not a number"),
    ("mlp.xlsx", {}, "training fine: the loss fell from B8 to B107"),
    ("mlp.xlsx", {("train", "F4"): "x"}, "input F4 (fd_h) is empty or not a number"),
    ("mlp.xlsx", {("data", "B9"): ""}, "input data!B9 is empty or not a number"),
    ("mlp.xlsx", {("train", "A4"): "30"}, "DIVERGING"),
    ("collab.xlsx", {("train", "A4"): "1E+300"}, "OVERFLOWED: the loss is #NUM! from epoch "),
])
def test_block_lesson_status_names_what_happened(book, edits, starts):
    wb = edited(BOOKS / book, edits)
    assert str(status(wb, "train")).startswith(starts), status(wb, "train")


def test_mlp_status_names_dead_relus():
    """Before: "training fine" with units dead. A starting b1 of −100 kills unit 1: the
    status says so after the loss; the default network, with none dead, says nothing."""
    path = BOOKS / "mlp.xlsx"
    assert "dead" not in status(edited(path, {}), "train")
    book = openpyxl.load_workbook(path)
    b1 = book.defined_names["b1_init"].attr_text.split("!")[1].replace("$", "").split(":")[0]
    text = status(edited(path, {("train", b1): "-100"}), "train")
    assert text.startswith("training fine") and text.endswith(
        "; 1 of 6 ReLUs dead at the last step (no gradient reaches them)"), text


def test_a_rating_typed_in_or_cleared_retrains_the_collab_sheet():
    """Before: the ratings sheet had no title and its ratings were not yellow, though
    editing one retrains. Now every cell of the grid is a yellow input, blanks too: a
    rating typed into a blank and one cleared change the training, and the recalculated
    traces still equal the reference math replayed from the edited ratings."""
    from sheetdl.verification.replay import replay
    from sheetdl.write import xlsx

    path = BOOKS / "collab.xlsx"
    ws = openpyxl.load_workbook(path)["ratings"]
    cells = [c for row in ws.iter_rows() for c in row if c.fill.fgColor.rgb == INPUT_FILL]
    blank = next(c for c in cells if c.value is None)
    rated = next(c for c in cells if isinstance(c.value, float))
    assert ws["A1"].value.startswith("Ratings: ")
    before = verify.recalculated(path)
    wb = edited(path, {("ratings", blank.coordinate): "5", ("ratings", rated.coordinate): ""})
    assert np.isfinite(wb.values("ratings")).sum() == np.isfinite(before.values("ratings")).sum()
    assert not np.allclose(wb.values("loss_trace"), before.values("loss_trace"), rtol=1e-6)
    checks = replay(wb, xlsx.read_meta(path), path, 1e-9, 1e-12)
    assert checks and all(c.ok for c in checks), [c for c in checks if not c.ok]


def test_panel_shows_the_step_a_learner_picks():
    """Typing a step into softmax's 'show step' cell shows that step's weights: step 1's
    are the starting weights."""
    wb = verify.recalculated(BOOKS / "softmax.xlsx")
    start = wb.values("W_init")
    book = openpyxl.load_workbook(BOOKS / "softmax.xlsx")
    ws = book["train"]
    pick = next(c for row in ws.iter_rows(max_row=10) for c in row if c.value == "show step")
    wb.model.set_user_input(wb.index["train"], pick.row, pick.column + 1, "1")
    wb.model.evaluate()
    k, d = 3, 2
    shown = [[wb.model.get_cell_value(wb.index["train"], pick.row + 3 + i, pick.column + 1 + j)
              for j in range(d)] for i in range(k)]
    np.testing.assert_allclose(np.ravel(shown), start, rtol=0, atol=0)


def test_softmax_target_is_a_class_name_and_a_wrong_one_is_not_a_silent_zero():
    book = openpyxl.load_workbook(BOOKS / "softmax.xlsx")
    ws = book["softmax"]
    wb = verify.recalculated(BOOKS / "softmax.xlsx")
    si = wb.index["softmax"]
    where = softmax_example(wb, si, 0)
    target = ws.cell(*where["target"]).coordinate
    assert ws[target].value == "dog"
    lists = [dv for dv in ws.data_validations.dataValidation if dv.type == "list"]
    assert lists and target in str(lists[0].sqref)
    wb = edited(BOOKS / "softmax.xlsx", {("softmax", target): "horse"})
    assert wb.model.get_cell_value(si, *where["loss"]) == "#N/A"
    wb = edited(BOOKS / "softmax.xlsx", {("softmax", target): "cat"})
    z = np.array([wb.model.get_cell_value(si, *c) for c in where["z"]])  # the logits
    want = np.log(np.exp(z - z.max()).sum()) + z.max() - z[0]  # −log softmax(z)[cat]
    assert wb.model.get_cell_value(si, *where["loss"]) == pytest.approx(want, rel=1e-12)


def test_softmax_sheet_fits_one_screen():
    """Before: the stages ran across 35 columns and the loss sat in column AI, off the
    first screen. Every example's logits and loss are now inside A1:T40."""
    wb = verify.recalculated(BOOKS / "softmax.xlsx")
    si = wb.index["softmax"]
    for i in range(4):
        where = softmax_example(wb, si, i)
        for r, c in [where["loss"], *where["z"], *where["p"]]:
            assert r <= ROWS and c <= COLS, (i, r, c)


def test_readme_shows_every_first_screen():
    """docs/screens holds the first screen of every sheet of the default workbooks, and the
    README shows the training sheets'."""
    readme = (ROOT / "README.md").read_text()
    for book in TRAINING:
        for sheet in openpyxl.load_workbook(BOOKS / book, read_only=True).sheetnames:
            png = ROOT / "docs" / "screens" / f"{book[:-5]}-{sheet}.png"
            assert png.exists(), f"{png} missing: run python docs/screens.py workbooks/*.xlsx"
    for book, names in TRAINING.items():
        for sheet in names[:1]:
            assert f"docs/screens/{book[:-5]}-{sheet}.png" in readme


def test_screens_script_renders_one_page_per_sheet(soffice, tmp_path):
    import shutil

    if shutil.which("pdftoppm") is None:
        pytest.skip("pdftoppm (poppler-utils) is not installed")
    r = subprocess.run([sys.executable, str(ROOT / "docs" / "screens.py"),
                        str(BOOKS / "lrfind.xlsx"), "-o", str(tmp_path)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    pngs = sorted(p.name for p in tmp_path.glob("*.png"))
    assert pngs == ["lrfind-about.png", "lrfind-data.png", "lrfind-lrfind.png"]
    assert all((tmp_path / p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)


def test_readme_function_list_covers_every_formula():
    """The README names the functions every formula may use: each function in the default
    workbooks' formulas is on that list."""
    readme = (ROOT / "README.md").read_text()
    listed = re.search(r"Formulas use only plain A1 functions every engine computes alike "
                       r"\(([^)]*)\)", readme.replace("\n", " "))
    allowed = {f.strip() for f in listed.group(1).split(",")}
    used = {}
    for path in sorted(BOOKS.glob("*.xlsx")):
        for ws in openpyxl.load_workbook(path).worksheets:
            for row in ws.iter_rows():
                for c in row:
                    if isinstance(c.value, str) and c.value.startswith("="):
                        for fn in re.findall(r"([A-Z][A-Z0-9.]*)\(", STRING.sub('""', c.value)):
                            used.setdefault(fn, f"{path.name}:{ws.title}!{c.coordinate}")
    assert "SUMPRODUCT" in used
    missing = {fn: where for fn, where in used.items() if fn not in allowed}
    assert not missing, f"functions not in the README's list: {missing}"


# --------------------------------------------------------------------------- colour

#: what each block lesson's training sheet colours: (colour scales at least, highlights)
COLOURED = {"softmax.xlsx": (3, 2), "collab.xlsx": (2, 1), "mlp.xlsx": (3, 1),
            "conv.xlsx": (1, 0)}


def rules(ws):
    """{"colorScale": [sqref...], "cellIs": [(sqref, operator, bound formulas)...]}"""
    out = {"colorScale": [], "cellIs": [], "expression": []}
    for cf in ws.conditional_formatting:
        for rule in cf.rules:
            out[rule.type].append((str(cf.sqref), rule.operator, list(rule.formula or [])))
    return out


@pytest.mark.parametrize("book", sorted(COLOURED))
def test_training_sheets_carry_colour(loaded, book):
    """Colour that carries meaning (issue: no conditional format anywhere): heatmaps of
    weights, probabilities, masks or predictions, and a highlight where something is wrong
    (a dead unit, a misclassified example, a prediction far off its rating), each with a
    legend line on the sheet; the committed files still verify (test_cli). Highlights are
    cell-value rules: a formula rule changed how IronCalc evaluates an overflow."""
    scales, marks = COLOURED[book]
    found = rules(loaded[book]["train"])
    assert len(found["colorScale"]) >= scales, found
    assert len(found["cellIs"]) == marks and not found["expression"], found
    if marks:
        legend = [c.value for row in loaded[book]["train"].iter_rows(max_row=ROWS)
                  for c in row if isinstance(c.value, str) and c.value.startswith(
                      ("colour:", "below:", "red fill"))]
        assert legend, book


def condition_at(wb, sheet: str, rule, target: str) -> bool:
    """The highlight ``rule`` (ranges, operator, its bounds written for the ranges'
    top-left cell) evaluated by IronCalc for cell ``target``: each bound moved there as
    Excel moves it, made absolute and written into a spare cell, then compared with the
    target's value."""
    from openpyxl.formula.translate import Translator
    from openpyxl.utils import coordinate_to_tuple

    origin = rule[0].split()[0].split(":")[0]
    si = wb.index[sheet]
    bounds = []
    for k, bound in enumerate(rule[2]):
        moved = Translator("=" + bound, origin=origin).translate_formula(target)
        absolute = re.sub(r"(?<![A-Za-z$])([A-Z]{1,3})(\d+)", r"$\1$\2", moved)
        wb.model.set_user_input(si, 1, 300 + k, absolute)
    wb.model.evaluate()
    bounds = [wb.model.get_cell_value(si, 1, 300 + k) for k in range(len(rule[2]))]
    value = wb.model.get_cell_value(si, *coordinate_to_tuple(target))
    if rule[1] == "equal":
        return value == bounds[0]
    if rule[1] == "notEqual":
        return value != bounds[0]
    assert rule[1] == "notBetween", rule
    return not bounds[0] <= value <= bounds[1]


def test_highlights_mark_what_their_legends_say():
    """Each highlight's condition, evaluated by IronCalc, is true exactly where its legend
    says: softmax's misclassified examples (target ≠ predicted, both cells) at the shown
    step; mlp's dead unit once a starting b1 of −100 kills it; collab's predictions more
    than a star from a rating at epoch 1."""
    from openpyxl.utils import get_column_letter

    ws = openpyxl.load_workbook(BOOKS / "softmax.xlsx")["train"]
    marks = rules(ws)["cellIs"]
    wb = verify.recalculated(BOOKS / "softmax.xlsx")
    si = wb.index["train"]
    (t0, r0, _, r1), (p0, _, _, _) = (range_boundaries(m[0]) for m in marks)
    wrong = []
    for r in range(r0, r1 + 1):
        target, predicted = (wb.model.get_cell_value(si, r, c) for c in (t0, p0))
        for rule, col in zip(marks, (t0, p0)):
            assert condition_at(wb, "train", rule, f"{get_column_letter(col)}{r}") == \
                (target != predicted)
        wrong.append(target != predicted)
    assert 0 < sum(wrong) < len(wrong)

    path = BOOKS / "mlp.xlsx"
    book = openpyxl.load_workbook(path)
    b1 = book.defined_names["b1_init"].attr_text.split("!")[1].replace("$", "").split(":")[0]
    wb = edited(path, {("train", b1): "-100"})
    (rule,) = rules(book["train"])["cellIs"]
    c0, r0, _, r1 = range_boundaries(rule[0])
    dead = [condition_at(wb, "train", rule, f"{get_column_letter(c0)}{r}")
            for r in range(r0, r1 + 1)]
    assert dead[0] is True and not any(dead[1:]), dead

    path = BOOKS / "collab.xlsx"
    ws = openpyxl.load_workbook(path)["train"]
    (rule,) = rules(ws)["cellIs"]
    show = next(c for row in ws.iter_rows(max_row=ROWS) for c in row
                if c.value == "show epoch")
    wb = edited(path, {("train", show.offset(0, 1).coordinate): "1"})
    c0, r0, c1, r1 = range_boundaries(rule[0].split()[0])
    R = wb.values("ratings").reshape(r1 - r0 + 1, c1 - c0 + 1)
    si = wb.index["train"]
    off = []
    for i, r in enumerate(range(r0, r1 + 1)):
        for j, c in enumerate(range(c0, c1 + 1)):
            prediction = wb.model.get_cell_value(si, r, c)
            want = bool(np.isfinite(R[i, j]) and abs(prediction - R[i, j]) > 1)
            got = condition_at(wb, "train", rule, f"{get_column_letter(c)}{r}")
            assert got == want, (r, c)
            off.append(want)
    assert any(off)


def test_softmax_block_columns_each_name_their_class(loaded):
    """Every per-class column of a softmax block says its class (before: the first carried
    the stage's name, so no column said A), and the rules moved to the first column's note."""
    ws = loaded["softmax.xlsx"]["train"]
    first = next(c.row for c in ws["A"] if c.value == "step 1")
    header = [c.value for c in ws[first + 2]]
    for stage in ("z", "exp", "p", "∂L/∂z"):
        assert [f"{stage}({name})" for name in "ABC"] == [h for h in header
                                                         if isinstance(h, str) and
                                                         h.startswith(stage + "(")], header
    noted = {c.comment.text for c in ws[first + 2] if c.comment}
    assert any(t.startswith("p = softmax(z)") for t in noted), noted


def test_mlp_block_columns_each_name_their_unit(loaded):
    """Every per-unit column of an mlp block says its unit ("a1 u3"; before: one centred
    title over six unlabelled columns), the rule in the first column's note."""
    ws = loaded["mlp.xlsx"]["train"]
    first = next(c.row for c in ws["A"] if c.value == "step 1")
    header = [c.value for c in ws[first + 2]]
    for quantity in ("z1", "a1", "∂L/∂a1", "relu'", "∂L/∂z1"):
        assert [h for h in header if isinstance(h, str) and h.startswith(quantity + " u")] == \
            [f"{quantity} u{u}" for u in range(1, 7)], header
    noted = {c.comment.text for c in ws[first + 2] if c.comment}
    assert any(t.startswith("z1 = W1·x + b1: ") for t in noted), noted


@pytest.mark.parametrize("book,label", [("mlp.xlsx", "step 1"), ("conv.xlsx", "step 1"),
                                        ("collab.xlsx", "epoch 1")])
def test_the_first_screen_points_at_step_one_worked_out(loaded, book, label):
    """A whole step in view starts with knowing where it is: the first screen's hint names
    the row of the first worked-out block, which says what it is (collab counts epochs)."""
    ws = loaded[book]["train"]
    hint = next(c.value for row in ws.iter_rows(max_row=8) for c in row
                if isinstance(c.value, str) and "worked out, from row" in c.value)
    row = int(re.search(r"worked out, from row (\d+)", hint).group(1))
    assert ws.cell(row, 1).value == label
