"""The compiled per-sample loop and the expression trees it is lowered from.

The loop is generated from the formula templates the sheets hold, so these tests hold
it to torch.optim (the ground truth), and to the reference math ``linear.train`` bit for
bit: the same templates printed as array code by another lowering (``math.lower``), so
the two lowerings must agree on every operation's order.
"""
import math

import numpy as np
import pytest

from sheetdl.lessons.graddesc import compiled, model as linear
from sheetdl.lessons import data
from sheetdl.lessons import graddesc as graddesc_lesson
from sheetdl.math import expr, optim, presets, schedules
from sheetdl.sheet import formulas
from torch_reference import torch_trace

pytestmark = pytest.mark.skipif(not compiled.available(), reason="numba is not installed")

FIELDS = ("b", "a", "pred", "err", "loss", "grad_b", "grad_a", "lr", "x", "y")


def _every_preset():
    for kind in optim.NAMES:
        for preset in presets.PRESETS:
            try:
                opt, _ = presets.resolve(preset, kind, lr=graddesc_lesson.LEARNING_RATES[kind])
            except ValueError:  # a framework without this optimizer
                continue
            yield kind, preset, opt


CASES = list(_every_preset())


def _same(ref, got):
    for f in FIELDS:
        np.testing.assert_array_equal(getattr(got, f), getattr(ref, f), err_msg=f)
    assert set(got.shown) == set(ref.shown)
    for k in ref.shown:
        np.testing.assert_array_equal(got.shown[k], ref.shown[k], err_msg=k)


@pytest.mark.parametrize("kind,preset,opt", CASES, ids=[f"{k}-{p}" for k, p, _ in CASES])
def test_the_loop_is_the_reference_math_bit_for_bit(kind, preset, opt):
    x, y = data.synthetic_line(300, 1)
    ref = linear.train(opt, x, y, epochs=3, b_init=1.0, a_init=1.0,
                       drop_last_update=preset == "course")
    got = compiled.train(opt, x, y, epochs=3, b_init=1.0, a_init=1.0,
                         drop_last_update=preset == "course", force=True)
    _same(ref, got)


@pytest.mark.parametrize("kind", ["sgd", "momentum", "adam", "nadam", "rmsprop"])
def test_the_loop_matches_torch(kind):
    x, y = data.course_points()
    opt, _ = presets.resolve("torch", kind, lr=graddesc_lesson.LEARNING_RATES[kind],
                             weight_decay=0.01)
    got = compiled.train(opt, x, y, epochs=4, b_init=1.0, a_init=1.0, force=True)
    b, a, loss = torch_trace(kind, opt, x, y, 4, 1.0, 1.0)
    np.testing.assert_allclose(got.b_trace, b, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(got.a_trace, a, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(got.loss, loss, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("kind,sched", [("adam", "onecycle"), ("momentum", "onecycle"),
                                        ("sgd", "cosine"), ("rmsprop", "step")])
def test_scheduled_runs_read_the_schedule_per_step(kind, sched):
    x, y = data.course_points()
    opt, _ = presets.resolve("torch", kind, lr=graddesc_lesson.LEARNING_RATES[kind])
    s = schedules.make(sched, steps=3 * len(x), optimizer=kind, lr=opt.lr)
    ref = linear.train(opt, x, y, epochs=3, b_init=1.0, a_init=1.0, schedule=s)
    got = compiled.train(opt, x, y, epochs=3, b_init=1.0, a_init=1.0, schedule=s, force=True)
    _same(ref, got)
    b, _, loss, lrs = torch_trace(kind, opt, x, y, 3, 1.0, 1.0, s)
    np.testing.assert_allclose(got.lr, lrs, rtol=1e-12)
    np.testing.assert_allclose(got.b_trace, b, rtol=1e-9, atol=1e-12)


def test_an_overflow_falls_back_to_the_reference_and_its_nums():
    x, y = data.course_points()
    opt = optim.make("sgd", lr=50.0)  # diverges: the losses overflow to #NUM!
    ref = linear.train(opt, x, y, epochs=40, b_init=1.0, a_init=1.0)
    assert np.isnan(ref.loss).any()
    got = compiled.train(opt, x, y, epochs=40, b_init=1.0, a_init=1.0, force=True)
    for f in FIELDS:
        np.testing.assert_array_equal(getattr(got, f), getattr(ref, f))


def _templates():
    """Every formula template of every optimizer, option set and schedule."""
    seen = set()
    for kind, preset, opt in CASES:
        for extra in ({}, {"amsgrad": True}, {"centered": True}, {"use_momentum": True},
                      {"beta1_pow_from_step": True}, {"nesterov": True}):
            try:
                o = opt.replace(**extra)
            except TypeError:
                continue
            for scheduled in ((), ("lr",), ("lr", "beta1"), ("lr", "momentum")):
                for c in formulas.optimizer_columns(o, scheduled):
                    for t in (c.formula if isinstance(c.formula, list) else [c.formula]):
                        if t not in seen:
                            seen.add(t)
                            yield t


def test_every_optimizer_template_parses_and_prints_back_to_itself():
    texts = list(_templates())
    assert len(texts) > 60
    for t in texts:
        assert expr.excel(expr.parse(t)) == t


def test_the_parser_follows_excel_precedence():
    tree = expr.parse("=1-2*3^2")
    assert tree == expr.BinOp("-", expr.Num("1"), expr.BinOp(
        "*", expr.Num("2"), expr.BinOp("^", expr.Num("3"), expr.Num("2"))))
    # the lowering computes what IronCalc computes for the same text
    import ironcalc

    model = ironcalc.create("t", "en", "UTC")
    for text in ("=1-2*3^2", "=(1-2)*3/4", "=-2^2", "=SQRT(2)+EXP(LN(3))*ABS(-1)",
                 "=MAX(2,3)-INT(2.5)/COS(PI())", "=2^0.5*3"):
        model.set_user_input(0, 1, 1, text)
        model.evaluate()
        source = expr.python(expr.parse(text), None, None, lambda s: f"({s})")
        assert eval(source, {"math": math}) == pytest.approx(model.get_cell_value(0, 1, 1),
                                                             rel=1e-15), text


def test_only_known_functions_parse():
    for bad in ("=RAND()", "=OFFSET(A1,1,1)", "=LOG(2)", "={x}+"):
        with pytest.raises(expr.FormulaError):
            expr.parse(bad)


def test_a_layout_is_compiled_once_whatever_its_values():
    x, y = data.course_points()
    compiled._compile.cache_clear()
    for lr in (1e-4, 2e-4, 3e-4):
        compiled.train(optim.make("adam", lr=lr), x, y, epochs=1, b_init=1.0, a_init=1.0,
                       force=True)
    assert compiled._compile.cache_info().misses == 1
    compiled.train(optim.make("adam", lr=1e-4, amsgrad=True), x, y, epochs=1, b_init=1.0,
                   a_init=1.0, force=True)
    assert compiled._compile.cache_info().misses == 2


def test_without_numba_the_reference_runs(monkeypatch):
    """Without numba, compiled.train answers through the Python reference, never the
    generated loops, and gives what the loops give."""
    x, y = data.synthetic_line(3000, 0)
    opt = optim.make("adam", lr=0.3)
    loops = compiled.train(opt, x, y, epochs=1, b_init=1.0, a_init=1.0, force=True)
    monkeypatch.setattr(compiled, "available", lambda: False)

    def no_loops(*args, **kwargs):
        raise AssertionError("the generated loops ran without numba")
    monkeypatch.setattr(compiled, "_compile", no_loops)
    _same(loops, compiled.train(opt, x, y, epochs=1, b_init=1.0, a_init=1.0))


def test_the_generated_loops_are_kept_where_numba_caches_them(tmp_path, monkeypatch):
    monkeypatch.setenv("SHEETDL_CACHE", str(tmp_path))
    compiled._compile.cache_clear()
    x, y = data.course_points()
    compiled.train(optim.make("momentum", lr=1e-5), x, y, epochs=1, b_init=1.0, a_init=1.0,
                   force=True)
    files = list(tmp_path.glob("loop_*.py"))
    assert len(files) == 1
    text = files[0].read_text()
    # the rule's text in the sheet, lowered: momentum*{buf@prev}+(1-dampening)*{grad}
    assert "h_momentum * q_buf_b" in text and "def forward(b, a, x, y):" in text
    compiled._compile.cache_clear()


def test_a_ragged_template_is_refused_with_its_text():
    with pytest.raises(expr.FormulaError, match="SQRT"):
        expr.parse("=SQRT({v}")


def test_checking_absorbed_operands_finds_every_overflow():
    """The loop checks each formula's value and only the operands an operation may turn
    finite (divisors, powers, EXP and MAX arguments), not every intermediate: on every
    template, with values from tiny to past overflow, that finds a non-finite
    intermediate exactly when checking all of them does."""
    rng = np.random.default_rng(5)
    scales = [0.0, 1e-300, 1e-8, 0.5, 1.0, 3.0, 1e8, 1e200, 1e308, -1e308, -2.0]
    cases = 0
    for text in _templates():
        tree = expr.parse(text)
        for _ in range(12):
            env = {"math": math}
            lines, checked = [], []

            def ref(tok):  # float64s: IEEE results (1/0 = inf), as the compiled loop's
                var = f"v_{tok.key}_{int(tok.prev)}"
                env.setdefault(var, np.float64(rng.choice(scales)))
                return var

            def name(h):
                env.setdefault(f"h_{h}", np.float64(rng.choice(scales)))
                return f"h_{h}"

            def emit(src):
                lines.append(f"t{len(lines)} = {src}")
                return f"t{len(lines) - 1}"
            value = expr.python(tree, ref, name, emit, checked.append)
            with np.errstate(all="ignore"):  # math's functions as NumPy's, IEEE throughout
                exec("\n".join(lines).replace("math.", "np."),
                     {**env, "np": np, "float": np.float64}, scope := {})
            finite = lambda v: bool(np.isfinite(scope.get(v, env.get(v, 0.0))))  # noqa: E731
            every = all(finite(f"t{i}") for i in range(len(lines)))
            some = finite(value) and all(finite(v) for v in checked if v in scope)
            assert every == some, (text, {k: v for k, v in env.items() if k != "math"})
            cases += not every
    assert cases > 200, "the values must overflow often enough to test anything"


def test_a_long_run_is_the_same_with_its_pages_mapped_beside_it(monkeypatch):
    """Past memory.MIN_BYTES of trace, a second thread maps the output's pages while the
    loop (running without the GIL) writes them: the values must not notice."""
    from sheetdl.math import memory

    x, y = data.synthetic_line(400_000, 3)
    x, y = x / 100, y / 100
    opt = optim.make("adam", lr=0.01)
    assert 400_000 * 21 * 8 > memory.MIN_BYTES
    beside = compiled.train(opt, x, y, epochs=1, b_init=1.0, a_init=1.0)
    monkeypatch.setattr(memory, "MIN_BYTES", 1 << 62)
    alone = compiled.train(opt, x, y, epochs=1, b_init=1.0, a_init=1.0)
    _same(alone, beside)
    head = linear.train(opt, x[:3000], y[:3000], epochs=1, b_init=1.0, a_init=1.0)
    np.testing.assert_array_equal(beside.b[:3000], head.b)


def test_the_pages_asked_for_lie_inside_the_array_on_page_bounds(monkeypatch):
    import mmap
    import sys

    from sheetdl.math import memory

    for offset in (0, 1, 7, 4095):  # views that start anywhere in a page
        a = np.empty(3_000_000)[offset:]
        start, size = memory.page_range(a)
        assert start % mmap.PAGESIZE == 0 and size % mmap.PAGESIZE == 0
        assert a.ctypes.data <= start and start + size <= a.ctypes.data + a.nbytes
        assert a.ctypes.data + a.nbytes - (start + size) < mmap.PAGESIZE
    assert memory.page_range(np.empty(3)[1:])[1] == 0
    monkeypatch.setattr(sys, "platform", "win32")
    assert memory._libc() is None  # elsewhere: no advice asked, the loop maps its own pages
