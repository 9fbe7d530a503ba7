"""The softmax lesson: the sheet's own numbers against torch, through IronCalc and LibreOffice."""
import math

import numpy as np
import openpyxl
import pytest
import torch

from sheetdl.lessons.graddesc import layout as graddesc
from sheetdl.verification import libreoffice, verifier as verify
from sheetdl.lessons.softmax import model as softmax, layout as softmax_book
from sheetdl.write import xlsx
from conftest import named_values, softmax_example
from torch_reference import softmax_torch_replay as torch_replay

KINDS = graddesc.ALL_OPTIMIZERS


def random_lesson(kind, seed):
    rng = np.random.default_rng(seed * 31 + KINDS.index(kind))
    k, d, n = int(rng.integers(2, 5)), int(rng.integers(1, 4)), int(rng.integers(6, 20))
    X, labels = softmax.synthetic_blobs(n, k, d, seed)
    h = {"lr": float(np.exp(rng.uniform(np.log(0.01), np.log(0.3)))),
         "weight_decay": float(rng.choice([0.0, 0.05])),
         "momentum": float(rng.uniform(0.5, 0.9)), "beta2": float(rng.uniform(0.9, 0.999))}
    if kind == "rmsprop":
        h["momentum"] = 0.0
    return softmax_book.make_lesson(X, labels, optimizer=kind, preset="torch",
                                    steps=int(rng.integers(3, 12)), seed=seed, **h)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    folder = tmp_path_factory.mktemp("softmax")
    out = {}
    for kind in KINDS:
        for seed in (0, 1):
            lesson = random_lesson(kind, seed)
            path = xlsx.write(softmax_book.build(lesson), folder / f"{kind}-{seed}.xlsx")
            out[(kind, seed)] = (path, lesson, torch_replay(lesson))
    return out


@pytest.mark.parametrize("kind", KINDS)
def test_workbook_matches_torch_through_ironcalc(built, kind):
    for seed in (0, 1):
        path, lesson, (losses, W, b) = built[(kind, seed)]
        report = verify.verify(path)
        assert report.ok, report.summary()
        wb = verify.recalculated(path)
        np.testing.assert_allclose(wb.values("loss_trace"), losses, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(wb.values("W_final"), W, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(wb.values("bias_final"), b, rtol=1e-9, atol=1e-12)
        assert losses[-1] != losses[0]


def test_libreoffice_recalculates_identically(built, soffice, tmp_path):
    keys = sorted(built)
    outs = libreoffice.recalculate([built[k][0] for k in keys], tmp_path)
    for key, out in zip(keys, outs):
        ironcalc = verify.recalculated(built[key][0])
        lo = openpyxl.load_workbook(out, data_only=True)
        for name in ("loss_trace", "W_final", "bias_final"):
            np.testing.assert_allclose(named_values(lo, name), ironcalc.values(name),
                                       rtol=1e-9, atol=1e-12, err_msg=f"{key} {name}")


def test_softmax_sheet_stays_finite_for_huge_logits(tmp_path):
    lesson = softmax_book.make_lesson(*softmax.synthetic_blobs(), steps=2)
    path = xlsx.write(softmax_book.build(lesson), tmp_path / "s.xlsx")
    wb = verify.recalculated(path)
    si = wb.index["softmax"]
    losses = [wb.model.get_cell_value(si, *softmax_example(wb, si, i)["loss"]) for i in range(4)]
    z = torch.tensor([e[1] for e in softmax_book.EXAMPLES], dtype=torch.float64)
    t = torch.tensor([e[2] for e in softmax_book.EXAMPLES])
    want = torch.nn.functional.cross_entropy(z, t, reduction="none").numpy()
    assert all(isinstance(v, float) and math.isfinite(v) for v in losses), losses
    np.testing.assert_allclose(losses, want, rtol=1e-12, atol=1e-12)
    assert want[2] == pytest.approx(1.0 + math.log1p(math.exp(-1.0)), rel=1e-12)


def test_csv_with_text_labels(tmp_path):
    csv = tmp_path / "pets.csv"
    csv.write_text("weight,height,kind\n4,25,cat\n30,60,dog\n5,23,cat\n25,55,dog\n")
    X, labels, names, features = softmax_book.read_csv(csv)
    assert names == ["cat", "dog"] and features == ["weight", "height"]
    assert labels.tolist() == [0, 1, 0, 1]
    csv.write_text("1,2,a\n3,x,b\n")
    with pytest.raises(Exception, match=r"line 2, column 2: 'x' is not a number"):
        softmax_book.read_csv(csv)


def test_iris_when_scikit_learn_is_installed(tmp_path):
    pytest.importorskip("sklearn")
    X, labels, names, _ = softmax_book.load_iris()
    lesson = softmax_book.make_lesson(X, labels, names, optimizer="adam", steps=5)
    path = xlsx.write(softmax_book.build(lesson), tmp_path / "iris.xlsx")
    report = verify.verify(path)
    assert report.ok, report.summary()
    assert lesson.trace.steps[-1].loss < lesson.trace.steps[0].loss
