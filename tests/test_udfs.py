"""Tier 1: the add-in's functions called directly, each compared with the formula
workbook recalculated by IronCalc on the same inputs."""
import warnings

import array_api_strict as xs
import numpy as np
import pytest

from sheetdl.lessons.collab import model as collab
from sheetdl.lessons.graddesc import layout as graddesc
from sheetdl.addin import kernels, udfs
from sheetdl.lessons.softmax import model as softmax, layout as softmax_book
from sheetdl.verification import verifier as verify
from sheetdl.write import xlsx
from conftest import ROOT, softmax_example


@pytest.fixture(scope="module")
def graddesc_book(tmp_path_factory):
    """The default graddesc workbook plus nesterov, recalculated by IronCalc."""
    from sheetdl.lessons import data

    x, y = data.course_points()
    lesson = graddesc.make_lesson(x, y, optimizers=graddesc.ALL_OPTIMIZERS)
    path = xlsx.write(graddesc.build(lesson), tmp_path_factory.mktemp("u") / "g.xlsx")
    return verify.recalculated(path), lesson


def columns(wb, sheet):
    """{header: [values of steps 1..]} read back from the recalculated sheet."""
    si = wb.index[sheet]
    _, max_row, _, max_col = wb.model.get_sheet_dimensions(si)
    out = {}
    header, start = graddesc.HEADER_ROW + 1, graddesc.INIT_ROW + 1  # 1-based
    for c in range(1, max_col + 1):
        h = wb.model.get_cell_value(si, header, c)
        if isinstance(h, str) and h and h not in out:
            out[h] = [wb.model.get_cell_value(si, r, c) for r in range(start, start + 146)]
    return out  # index 0 is step 0 (the start row)


def test_train_linear_equals_the_workbook(graddesc_book):
    wb, lesson = graddesc_book
    x, y = lesson.x, lesson.y
    for kind in graddesc.ALL_OPTIMIZERS:
        lr = wb.values("lr", kind)[0]
        table = udfs.train_linear(x.reshape(-1, 1), y.reshape(-1, 1), kind, lr, 5)
        assert table[0] == udfs.TRAIN_HEADER
        body = np.array(table[1:])
        np.testing.assert_allclose(body[:, 10], wb.values("b_trace", kind), rtol=1e-12)
        np.testing.assert_allclose(body[:, 11], wb.values("a_trace", kind), rtol=1e-12)
        np.testing.assert_allclose(body[:, 7], wb.values("loss_trace", kind), rtol=1e-12)


@pytest.mark.parametrize("t", [1, 2, 30, 145])
def test_step_functions_equal_the_workbook_rows(graddesc_book, t):
    wb, _ = graddesc_book
    for kind, fn in [("sgd", "sgd"), ("adam", "adam"), ("rmsprop", "rmsprop"),
                     ("momentum", "momentum"), ("nesterov", "momentum")]:
        c = columns(wb, kind)
        lr = wb.values("lr", kind)[0]
        params = np.array([[c["b"][t], c["a"][t]]])
        grads = np.array([[c["dL/db"][t], c["dL/da"][t]]])
        want_new = np.array([[c["new b"][t], c["new a"][t]]])
        if fn == "sgd":
            got = udfs.sgd_step(params, grads, lr)
            np.testing.assert_allclose(got, want_new, rtol=1e-13)
        elif fn == "adam":
            prev = lambda k: np.array([[c[f"{k} b"][t - 1], c[f"{k} a"][t - 1]]])
            got = udfs.adam_step(params, grads, prev("m"), prev("v"), t, lr, 0.9, 0.999, 1e-8)
            want = np.hstack([want_new, [[c["m b"][t], c["m a"][t]]], [[c["v b"][t], c["v a"][t]]]])
            np.testing.assert_allclose(got, want, rtol=1e-12)
        elif fn == "rmsprop":
            prev = np.array([[c["v b"][t - 1], c["v a"][t - 1]]])
            got = udfs.rmsprop_step(params, grads, prev, lr, 0.99, 1e-8)
            np.testing.assert_allclose(got, np.hstack([want_new, [[c["v b"][t], c["v a"][t]]]]),
                                       rtol=1e-13)
        else:
            velocity = (np.full((1, 2), np.nan) if t == 1  # empty cells: torch's first step
                        else np.array([[c["buf b"][t - 1], c["buf a"][t - 1]]]))
            got = udfs.momentum_step(params, grads, velocity, lr, 0.9, 0.0, kind == "nesterov")
            np.testing.assert_allclose(
                got, np.hstack([want_new, [[c["buf b"][t], c["buf a"][t]]]]), rtol=1e-13)


def test_softmax_and_cross_entropy_equal_the_workbook(tmp_path):
    X, labels = softmax.synthetic_blobs()
    lesson = softmax_book.make_lesson(X, labels, steps=2)
    wb = verify.recalculated(xlsx.write(softmax_book.build(lesson), tmp_path / "s.xlsx"))
    z = np.array([e[1] for e in softmax_book.EXAMPLES])
    si = wb.index["softmax"]
    want = np.array([[wb.model.get_cell_value(si, *c) for c in softmax_example(wb, si, i)["p"]]
                     for i in range(len(z))])
    np.testing.assert_allclose(udfs.softmax(z), want, rtol=1e-13, atol=1e-300)
    loss0 = wb.values("loss_trace")[0]
    W, b = wb.values("W_init").reshape(3, 2), wb.values("bias_init")
    assert udfs.cross_entropy(X @ W.T + b, labels.reshape(-1, 1)) == pytest.approx(loss0, rel=1e-12)


def test_collab_functions_equal_the_workbook():
    wb = verify.recalculated(ROOT / "workbooks" / "collab.xlsx")
    R = wb.values("ratings").reshape(15, 15)
    table = udfs.collab_train(R, 5, 20, 0.1, 0.0, 0, "adam", 0.0, 5.5)
    assert table[0] == ["epoch", "MSE", "RMSE"]
    np.testing.assert_allclose(np.array(table[1:])[:, 1], wb.values("loss_trace"), rtol=1e-12)
    pred = udfs.collab_predict(wb.values("user_factors_init").reshape(15, 5),
                               wb.values("movie_factors_init").reshape(5, 15),
                               wb.values("user_bias_init"), wb.values("movie_bias_init"), 0, 5.5)
    observed = np.isfinite(R)
    mse = np.mean((pred[observed] - R[observed]) ** 2)
    assert mse == pytest.approx(wb.values("loss_trace")[0], rel=1e-12)


def test_kernels_on_array_api_strict_equal_numpy():
    rng = np.random.default_rng(3)
    p, g, m = rng.normal(size=(4, 3)), rng.normal(size=(4, 3)), rng.normal(size=(4, 3)) * 0.1
    v = np.abs(rng.normal(size=(4, 3)))
    S = lambda a: xs.asarray(a)
    pairs = [
        (kernels.adam_step(p, g, m, v, 3, 0.01, 0.9, 0.99, 1e-8, 0.1),
         kernels.adam_step(S(p), S(g), S(m), S(v), 3, 0.01, 0.9, 0.99, 1e-8, 0.1)),
        (kernels.rmsprop_step(p, g, v, 0.01), kernels.rmsprop_step(S(p), S(g), S(v), 0.01)),
        (kernels.momentum_step(p, g, m, 0.1, 0.9, 0.1, True),
         kernels.momentum_step(S(p), S(g), S(m), 0.1, 0.9, 0.1, True)),
        ((kernels.sgd_step(p, g, 0.1, 0.01),), (kernels.sgd_step(S(p), S(g), 0.1, 0.01),)),
        ((kernels.softmax(p),), (kernels.softmax(S(p)),)),
    ]
    for want, got in pairs:
        for w, gt in zip(want, got):
            assert type(gt).__module__.startswith("array_api_strict")
            np.testing.assert_array_equal(np.asarray(gt), w)
    labels = np.array([0, 2, 1, 1])
    assert float(kernels.cross_entropy(S(p), xs.asarray(labels))) == \
        pytest.approx(float(kernels.cross_entropy(p, labels)), rel=1e-15)


@pytest.mark.parametrize("kind", ["sgd", "momentum", "nesterov", "rmsprop", "adam"])
def test_compiled_loop_equals_the_array_path_to_the_bit(kind, monkeypatch):
    """Past kernels.COMPILED_FROM elements a NumPy step runs the rule's numba loop over the
    elements; the array path (the workbooks' reference math) gives the same bits."""
    rng = np.random.default_rng(4)
    n = kernels.COMPILED_FROM + 11
    p, g, m = (rng.normal(size=n) for _ in range(3))
    v = np.abs(rng.normal(size=n))
    step = {"sgd": lambda: (kernels.sgd_step(p, g, 0.01, 0.05),),
            "momentum": lambda: kernels.momentum_step(p, g, m, 0.01, 0.9, 0.1, False, 0.05),
            "nesterov": lambda: kernels.momentum_step(p, g, m, 0.01, 0.9, 0.1, True, 0.05),
            "rmsprop": lambda: kernels.rmsprop_step(p, g, v, 0.01, 0.99, 1e-8, 0.05),
            "adam": lambda: kernels.adam_step(p, g, m, v, 9, 0.01, 0.9, 0.999, 1e-8, 0.05)}[kind]
    fast = step()
    monkeypatch.setattr(kernels, "COMPILED_FROM", 1 << 60)  # forces the array path
    plain = step()
    for f, q in zip(fast, plain):
        np.testing.assert_array_equal(f, q)


def test_compiled_loop_equals_torch_adam():
    """The compiled loop over the elements (arrays past kernels.COMPILED_FROM) against
    torch.optim.Adam stepping the same tensors: an independent computation."""
    import torch

    rng = np.random.default_rng(7)
    n = 3 * kernels.COMPILED_FROM + 11
    params, grads = rng.normal(size=n), rng.normal(size=n)
    theta = torch.tensor(params, requires_grad=True)
    opt = torch.optim.Adam([theta], lr=0.01, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.05)
    m, v = np.zeros(n), np.zeros(n)
    p = params
    for step in (1, 2, 3):
        g = grads * step
        theta.grad = torch.tensor(g)
        opt.step()
        p, m, v = kernels.adam_step(p, g, m, v, step, 0.01, 0.9, 0.99, 1e-8, 0.05)
    np.testing.assert_allclose(p, theta.detach().numpy(), rtol=1e-12, atol=1e-15)
    state = opt.state[theta]
    np.testing.assert_allclose(m, state["exp_avg"].numpy(), rtol=1e-12)
    np.testing.assert_allclose(v, state["exp_avg_sq"].numpy(), rtol=1e-12)


@pytest.mark.parametrize("path", ["compiled", "arrays", "strict"])
def test_in_place_steps_equal_torch_adam(path, monkeypatch):
    """``out=(params, exp_avg, exp_avg_sq)``: the step written over its own inputs, as
    torch.optim.Adam updates its tensors, on the compiled loop, the NumPy array path and
    array-api-strict (CuPy's path); the same bits as fresh outputs, and torch's numbers."""
    import torch

    if path != "compiled":
        monkeypatch.setattr(kernels, "COMPILED_FROM", 1 << 60)
    rng = np.random.default_rng(8)
    n = kernels.COMPILED_FROM + 11 if path == "compiled" else 101
    params, grads = rng.normal(size=n), rng.normal(size=n)
    theta = torch.tensor(params, requires_grad=True)
    opt = torch.optim.Adam([theta], lr=0.01, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.05)
    wrap = xs.asarray if path == "strict" else np.array
    p, m, v = wrap(params), wrap(np.zeros(n)), wrap(np.zeros(n))
    held = (p, m, v)
    for step in (1, 2, 3):
        g = wrap(grads * step)
        theta.grad = torch.tensor(grads * step)
        opt.step()
        fresh = kernels.adam_step(p, g, m, v, step, 0.01, 0.9, 0.99, 1e-8, 0.05)
        fresh = [np.asarray(a).copy() for a in fresh]
        got = kernels.adam_step(p, g, m, v, step, 0.01, 0.9, 0.99, 1e-8, 0.05, out=held)
        assert all(a is b for a, b in zip(got, held))
        for a, b in zip(got, fresh):
            np.testing.assert_array_equal(np.asarray(a), b)
    np.testing.assert_allclose(np.asarray(p), theta.detach().numpy(), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(np.asarray(m), opt.state[theta]["exp_avg"].numpy(), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(v), opt.state[theta]["exp_avg_sq"].numpy(),
                               rtol=1e-12)


@pytest.mark.parametrize("n", [kernels.COMPILED_FROM, 50], ids=["compiled", "arrays"])
def test_in_place_step_refuses_arrays_it_cannot_write(n):
    """An out array of the wrong kind, or one that overlaps an array the step still
    reads, is refused on both paths: overlapping memory would be written before it is
    read (and raced by the compiled loop's threads)."""
    rng = np.random.default_rng(1)
    p, g, m, v = rng.normal(size=n), rng.normal(size=n), np.zeros(n), np.zeros(n)
    for bad in (np.ones(n, dtype=np.float32), np.ones(n, dtype=np.int64), np.ones(n + 1)):
        with pytest.raises(ValueError, match="out for new must be an array of params' shape"):
            kernels.sgd_step(p, g, 0.1, out=bad)
    with pytest.raises(ValueError, match="out must hold 3 arrays"):
        kernels.adam_step(p, g, m, v, 1, out=(p,))
    with pytest.raises(ValueError, match="out for exp_avg shares memory with exp_avg_sq"):
        kernels.adam_step(p, g, m, m, 1, out=(p, m, m))
    with pytest.raises(ValueError, match="out for new shares memory with grads"):
        kernels.sgd_step(p, g, 0.1, out=g)
    big = np.concatenate([p, [0.0]])
    with pytest.raises(ValueError, match="out for new shares memory with params"):
        kernels.sgd_step(big[:-1], g, 0.1, out=big[1:])  # shifted by one element
    want = kernels.sgd_step(p, g, 0.1)
    assert kernels.sgd_step(p, g, 0.1, out=p) is p  # its own input: fine
    np.testing.assert_array_equal(p, want)


def test_cupy_backend_falls_back_with_one_warning(monkeypatch):
    try:
        import cupy  # noqa: F401
        if cupy.cuda.runtime.getDeviceCount() > 0:
            pytest.skip("a GPU is present: the fallback does not apply")
    except Exception:
        pass
    monkeypatch.setattr(kernels, "_warned", False)
    monkeypatch.setenv("SHEETDL_BACKEND", "cupy")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        a = udfs.sgd_step([[1.0, 2.0]], [[0.5, 0.5]], 0.1)
        b = udfs.adam_step([[1.0]], [[1.0]], [[0.0]], [[0.0]], 1, 0.1)
    assert [str(w.message) for w in caught if "cupy" in str(w.message)].__len__() == 1
    np.testing.assert_allclose(a, [[0.95, 1.95]])
    assert b.shape == (1, 3)
    with pytest.raises(ValueError, match="backend must be 'numpy' or 'cupy'"):
        kernels.backend("tpu")


@pytest.mark.parametrize("call,message", [
    (lambda: udfs.sgd_step([[1, np.nan]], [[1, 2]], 0.1),
     "params has an empty, error or non-finite cell at row 1, column 2"),
    (lambda: udfs.sgd_step([[1, 2]], [[1, 2, 3]], 0.1), "grads is 1×3 but params is 1×2"),
    (lambda: udfs.sgd_step([[1]], [[1]], -1), "lr must be a positive finite number"),
    (lambda: udfs.sgd_step([[1e308]], [[1e308]], 10),
     "the result overflowed (inf or NaN) at row 1, column 1: lower lr"),
    (lambda: udfs.adam_step([[1]], [[1]], [[0]], [[0]], 1.5), "step must be a whole number"),
    (lambda: udfs.cross_entropy([[1, 2]], [[2]]), "targets must be whole numbers from 0 to 1"),
    (lambda: udfs.train_linear([[1], [2]], [[1]]), "x has 2 values and y has 1"),
    (lambda: udfs.train_linear([[1]], [[1]], "adadelta"), "optimizer must be one of"),
    (lambda: udfs.collab_train([[np.nan]]), "ratings has no ratings"),
])
def test_bad_arguments_give_messages(call, message):
    with pytest.raises(ValueError) as e:
        call()
    assert message in str(e.value)


def test_collab_train_sparse_path_equals_the_dense_one(monkeypatch):
    """Large ratings matrices go through collab.train_sparse (observed pairs only)."""
    R, _, _ = collab.synthetic_ratings(12, 9, blank=0.3, seed=4)
    dense = np.array(udfs.collab_train(R, 3, 15, 0.05, 0.01, 4, "adam", 0, 5.5)[1:])
    monkeypatch.setattr(udfs, "DENSE_LIMIT", 0)
    sparse = np.array(udfs.collab_train(R, 3, 15, 0.05, 0.01, 4, "adam", 0, 5.5)[1:])
    np.testing.assert_allclose(sparse, dense, rtol=1e-12)
