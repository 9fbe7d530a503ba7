"""--udf workbooks: each big table is one add-in call whose cached values are exactly
what the add-in function returns for the sheet's own inputs."""
import numpy as np
import openpyxl
import pytest

from sheetdl import collab, collab_book, data, graddesc, udfs, verifier as verify, xlsx


def cached_table(ws, first_row, n_rows, n_cols):
    return [[c.value for c in row] for row in
            ws.iter_rows(min_row=first_row, max_row=first_row + n_rows - 1, max_col=n_cols)]


def test_graddesc_udf_tables_are_what_the_add_in_returns(tmp_path):
    x, y = data.course_points()
    lesson = graddesc.make_lesson(x, y, optimizers=graddesc.ALL_OPTIMIZERS, epochs=2)
    lesson.udf = True
    path = xlsx.write(graddesc.build(lesson), tmp_path / "udf.xlsx")
    report = verify.verify(path)
    assert report.ok, report.summary()
    assert sorted(report.unsupported) == ["sheetdl_train_linear"]
    wb = openpyxl.load_workbook(path)
    values = openpyxl.load_workbook(path, data_only=True)
    for kind in graddesc.ALL_OPTIMIZERS:
        ws = wb[kind]
        anchor = ws["A6"].value
        formula = anchor.text if hasattr(anchor, "text") else anchor
        assert formula.startswith(f'=SHEETDL_TRAIN_LINEAR(x,y,"{kind}",lr,2,"torch",b_init,a_init')
        named = {n: values[kind][d.attr_text.split("!")[1].replace("$", "")].value
                 for n, d in ws.defined_names.items() if "trace" not in n}
        arg = lambda h: named.get(h, "")
        want = udfs.train_linear(x.reshape(-1, 1), y.reshape(-1, 1), kind, named["lr"], 2, "torch",
                                 named["b_init"], named["a_init"], arg("momentum"), arg("beta1"),
                                 arg("beta2"), arg("eps"), arg("weight_decay"))
        got = cached_table(values[kind], 6, len(want), 12)
        assert got[0] == want[0]
        np.testing.assert_allclose(np.array(got[1:], float), np.array(want[1:]), rtol=1e-15)


def test_collab_udf_table_is_what_the_add_in_returns(tmp_path):
    R, users, movies = collab.synthetic_ratings(6, 5, seed=2)
    lesson = collab_book.make_lesson(R, users, movies, factors=2, epochs=7, seed=2)
    lesson.udf = True
    path = xlsx.write(collab_book.build(lesson), tmp_path / "c.xlsx")
    assert verify.verify(path).ok
    want = udfs.collab_train(R, 2, 7, lesson.opt.lr, 0.0, 2, "adam", 0.0, 5.5)
    got = cached_table(openpyxl.load_workbook(path, data_only=True)["train"], 6, 8, 3)
    assert got[0] == want[0]
    np.testing.assert_allclose(np.array(got[1:], float), np.array(want[1:]), rtol=1e-15)


def test_empty_arguments_mean_not_given():
    a = udfs.train_linear([[1], [2]], [[3], [5]], "sgd", 0.01, 1, "torch", 1, 1, "", "", "", "", "")
    b = udfs.train_linear([[1], [2]], [[3], [5]], "sgd", 0.01, 1)
    assert a == b
    with pytest.raises(udfs.UdfError, match="lr must be a number, got 'fast'"):
        udfs.train_linear([[1]], [[1]], "sgd", "fast")
