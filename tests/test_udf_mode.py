"""--udf workbooks: each big table is one add-in call whose cached values are exactly
what the add-in function returns for the sheet's own inputs."""
import numpy as np
import openpyxl
import pytest
import torch

from sheetdl.lessons.collab import model as collab, layout as collab_book
from sheetdl.lessons import data
from sheetdl.lessons.graddesc import layout as graddesc
from sheetdl.addin import udfs
from sheetdl.verification import verifier as verify
from sheetdl.write import xlsx
from conftest import named_values
from torch_reference import torch_trace


def cached_table(ws, first_row, n_rows, n_cols):
    return [[c.value for c in row] for row in
            ws.iter_rows(min_row=first_row, max_row=first_row + n_rows - 1, max_col=n_cols)]


@pytest.mark.parametrize("flavour,call", [("office", "SHEETDL.TRAIN_LINEAR"),
                                          ("classic", "SHEETDL_TRAIN_LINEAR")])
def test_graddesc_udf_tables_are_what_the_add_in_returns(tmp_path, flavour, call):
    x, y = data.course_points()
    lesson = graddesc.make_lesson(x, y, optimizers=graddesc.ALL_OPTIMIZERS, epochs=2)
    lesson.udf = flavour
    path = xlsx.write(graddesc.build(lesson), tmp_path / "udf.xlsx")
    report = verify.verify(path)
    assert report.ok, report.summary()
    assert sorted(report.unsupported) == [call.lower()]
    wb = openpyxl.load_workbook(path)
    values = openpyxl.load_workbook(path, data_only=True)
    for kind in graddesc.ALL_OPTIMIZERS:
        ws = wb[kind]
        anchor = ws["A6"].value
        formula = anchor.text if hasattr(anchor, "text") else anchor
        assert formula.startswith(f'={call}(x,y,"{kind}",lr,2,"torch",b_init,a_init')
        named = {n: values[kind][d.attr_text.split("!")[1].replace("$", "")].value
                 for n, d in ws.defined_names.items() if "trace" not in n}
        arg = lambda h: named.get(h, "")
        want = udfs.train_linear(x.reshape(-1, 1), y.reshape(-1, 1), kind, named["lr"], 2, "torch",
                                 named["b_init"], named["a_init"], arg("momentum"), arg("beta1"),
                                 arg("beta2"), arg("eps"), arg("weight_decay"))
        got = cached_table(values[kind], 6, len(want), 12)
        assert got[0] == want[0]
        np.testing.assert_allclose(np.array(got[1:], float), np.array(want[1:]), rtol=1e-15)
        # and what both hold is torch.optim's trajectory, not only the add-in's own numbers
        b, a, loss = torch_trace(kind, lesson.optimizers[kind], x, y, 2, named["b_init"],
                                 named["a_init"])
        table = np.array(got[1:], float)
        np.testing.assert_allclose(table[:, 10], b, rtol=1e-9, atol=1e-12, err_msg=kind)
        np.testing.assert_allclose(table[:, 11], a, rtol=1e-9, atol=1e-12, err_msg=kind)
        np.testing.assert_allclose(table[:, 7], loss, rtol=1e-9, atol=1e-12, err_msg=kind)


def test_collab_udf_table_is_what_the_add_in_returns(tmp_path):
    R, users, movies = collab.synthetic_ratings(6, 5, seed=2)
    lesson = collab_book.make_lesson(R, users, movies, factors=2, epochs=7, seed=2)
    lesson.udf = "office"
    path = xlsx.write(collab_book.build(lesson), tmp_path / "c.xlsx")
    assert verify.verify(path).ok
    want = udfs.collab_train(R, 2, 7, lesson.opt.lr, 0.0, 2, "adam", 0.0, 5.5)
    got = cached_table(openpyxl.load_workbook(path, data_only=True)["train"], 6, 8, 3)
    assert got[0] == want[0]
    np.testing.assert_allclose(np.array(got[1:], float), np.array(want[1:]), rtol=1e-15)
    # the same MSE per epoch from torch: embeddings, sigmoid range, masked mean, torch.optim
    U, bu, V, bm = lesson.shape.unpack(collab.init_params(lesson.shape, 2))
    prev = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        params = [torch.tensor(p, requires_grad=True) for p in (U, bu, V, bm)]
        opt = torch.optim.Adam(params, lr=lesson.opt.lr)
        ratings = torch.tensor(np.nan_to_num(R))
        seen = torch.tensor(np.isfinite(R))
        losses = []
        for _ in range(7):
            opt.zero_grad()
            raw = params[0] @ params[2] + params[1][:, None] + params[3][None, :]
            pred = 5.5 * torch.sigmoid(raw)
            loss = ((pred - ratings)[seen] ** 2).mean()
            loss.backward()
            opt.step()
            losses.append(loss.item())
    finally:
        torch.set_default_dtype(prev)
    np.testing.assert_allclose(np.array(got[1:], float)[:, 1], losses, rtol=1e-9)


def test_empty_arguments_mean_not_given():
    a = udfs.train_linear([[1], [2]], [[3], [5]], "sgd", 0.01, 1, "torch", 1, 1, "", "", "", "", "")
    b = udfs.train_linear([[1], [2]], [[3], [5]], "sgd", 0.01, 1)
    assert a == b
    with pytest.raises(udfs.UdfError, match="lr must be a number, got 'fast'"):
        udfs.train_linear([[1]], [[1]], "sgd", "fast")


@pytest.mark.parametrize("lesson", ["graddesc", "collab"])
@pytest.mark.parametrize("given,flavour", [(True, "office"), ("office", "office"),
                                           ("classic", "classic")])
def test_a_udf_workbook_holds_only_its_flavours_names(tmp_path, lesson, given, flavour):
    """--udf alone (udf=True) writes the Office.js names, which Lite and Server recompute on
    every platform; --udf classic the classic add-in's; the about sheet says which."""
    import re
    import zipfile

    import sheetdl

    path = sheetdl.build(lesson, tmp_path / "u.xlsx", udf=given, epochs=2)
    with zipfile.ZipFile(path) as z:
        text = "".join(z.read(n).decode() for n in z.namelist() if n.startswith("xl/worksheets/"))
    called = set(re.findall(r"SHEETDL[._][A-Z_]+(?=\()", text))
    function = "TRAIN_LINEAR" if lesson == "graddesc" else "COLLAB_TRAIN"
    assert called == {f"SHEETDL{'.' if flavour == 'office' else '_'}{function}"}
    about = [c.value for c in openpyxl.load_workbook(path)["about"]["A"] if c.value]
    line = next(v for v in about if f"--udf {flavour}" in v)
    assert ("xlwings Lite" if flavour == "office" else "classic xlwings add-in") in line
    assert verify.verify(path).ok


@pytest.mark.parametrize("flavour", ["office", "classic"])
def test_conv_udf_tables_are_what_the_add_in_returns(tmp_path, flavour):
    """conv --udf: each cached table is SHEETDL.CONV_TRAIN's answer for the sheet's own data
    and inputs, for more 28×28 images than the formula sheet takes (32);
    the calls carry only their flavour's name."""
    import re
    import zipfile

    import sheetdl

    rng = np.random.default_rng(4)
    csv = tmp_path / "digits.csv"
    images = rng.random((40, 28 * 28)).round(3)
    labels = rng.integers(0, 3, size=40)
    csv.write_text("".join(f"{y}," + ",".join(map(str, row)) + "\n"
                           for y, row in zip(labels, images)))
    with pytest.raises(ValueError, match="--images must be from 1 to 32"):
        sheetdl.build("conv", tmp_path / "f.xlsx", data=str(csv), images=40, steps=30)
    path = sheetdl.build("conv", tmp_path / "u.xlsx", data=str(csv), images=40, steps=30,
                         udf=flavour, dropout=0.2, seed=3, optimizer="sgd", lr=0.05)
    report = verify.verify(path)
    assert report.ok, report.summary()
    name = "SHEETDL.CONV_TRAIN" if flavour == "office" else "SHEETDL_CONV_TRAIN"
    assert sorted(report.unsupported) == [name.lower()]
    with zipfile.ZipFile(path) as z:
        text = "".join(z.read(n).decode() for n in z.namelist() if n.startswith("xl/worksheets/"))
    assert set(re.findall(r"SHEETDL[._][A-Z_]+(?=\()", text)) == {name}
    cached = openpyxl.load_workbook(path, data_only=True)
    values = lambda name: np.array(named_values(cached, name), float)
    args = (images, labels.reshape(-1, 1), 2, 30, 0.05, "sgd", 3)
    loss = np.array(udfs.conv_train(*args, "loss", 0.2)[1:])
    np.testing.assert_allclose(values("loss_trace"), loss[:, 1], rtol=1e-15)
    np.testing.assert_allclose(values("accuracy_trace"), loss[:, 2], rtol=1e-15)
    kernels = np.array(udfs.conv_train(*args, "kernels", 0.2))
    np.testing.assert_allclose(values("K_final"), kernels[:, :9].ravel(), rtol=1e-15)
    np.testing.assert_allclose(values("kb_final"), kernels[:, 9], rtol=1e-15)
    dense = np.array(udfs.conv_train(*args, "dense", 0.2))
    np.testing.assert_allclose(values("Wd_final"), dense[:, :-1].ravel(), rtol=1e-15)
    assert loss[-1, 1] < loss[0, 1]  # it trains


def test_conv_udf_refuses_what_a_call_does_not_take():
    import sheetdl

    with pytest.raises(sheetdl.OptionError, match="not --beta1; leave it out"):
        sheetdl.build("conv", udf=True, beta1=0.8)
    with pytest.raises(sheetdl.OptionError, match="not --schedule"):
        sheetdl.build("conv", udf=True, schedule="cosine")
