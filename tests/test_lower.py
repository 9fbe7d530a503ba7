"""Each rule written once: the array code printed from its formula templates.

Engine-free where it can be: the printed code's arithmetic against IronCalc's for the same
text, every rule on array-api-strict against NumPy (the path CuPy takes, on a CPU), and
the printed source's shape. torch.optim holds the rules themselves (test_optim.py,
test_differential.py, test_udfs.py)."""
import math

import array_api_strict as xs
import numpy as np
import pytest

from sheetdl.math import expr, lower, optim, presets

TRAPS = ("={a}-{b}-1", "={a}/({b}*4)", "={a}^2*{b}", "=-{a}^2", "=(1-0.5)*{b}^2",
         "=8/{a}/2", "={a}*3/4-{b}+5", "=SQRT({a})+-1", "=MAX({a},{b})-INT(2.5)/COS(PI())",
         "={a}-({b}-1)", "=EXP(LN({b}))*ABS(-{a})", "={a}^0.5*3", "=1/(1+{a})^2")


@pytest.mark.parametrize("per_param", [False, True], ids=["numbers", "arrays"])
def test_printed_code_computes_what_ironcalc_computes(per_param):
    """Precedence, left association, unary minus and every function: the printer's
    parentheses keep Excel's tree, on numbers (``math``) and arrays (``xp``) alike."""
    import ironcalc

    model = ironcalc.create("t", "en", "UTC")
    values = {"a": 2.0, "b": 3.0}
    for text in TRAPS:
        model.set_user_input(0, 1, 1, text.replace("{a}", "2").replace("{b}", "3"))
        model.evaluate()
        env = {k: np.array([v]) if per_param else v for k, v in values.items()}
        source = lower._print(expr.parse(text), lambda t: (t.key, per_param), None)
        got = eval(source, {"math": math, "xp": np, **env})
        assert float(np.asarray(got).reshape(-1)[0]) == pytest.approx(
            model.get_cell_value(0, 1, 1), rel=1e-15), (text, source)


def _variants():
    for kind in optim.NAMES:
        for preset in presets.PRESETS:
            try:
                opt, _ = presets.resolve(preset, kind, lr=0.01)
            except ValueError:
                continue
            yield pytest.param(opt, id=f"{kind}-{preset}")


@pytest.mark.parametrize("opt", list(_variants()))
def test_every_rule_on_array_api_strict_equals_numpy(opt):
    """The reference math is the printed rule on NumPy; on array-api-strict (no NumPy
    behaviour to lean on, as on CuPy) the same code gives the same bits."""
    rng = np.random.default_rng(5)
    p = rng.normal(size=(3, 2))
    state_np = opt.init(p)
    state_xs = {k: xs.asarray(v) if isinstance(v, np.ndarray) else v for k, v in state_np.items()}
    p_np, p_xs = p, xs.asarray(p)
    for step in range(3):
        g = rng.normal(size=(3, 2)) * (step + 1)
        p_np, state_np, shown_np = opt.update(p_np, g, state_np)
        p_xs, state_xs, shown_xs = opt.update(p_xs, xs.asarray(g), state_xs, xp=xs)
        for key, value in shown_np.items():
            got = shown_xs[key]
            if isinstance(value, np.ndarray):
                assert type(got).__module__.startswith("array_api_strict"), key
            np.testing.assert_array_equal(np.asarray(got), value, err_msg=key)


def test_a_rule_prints_as_the_python_a_person_would_write():
    """Torch's Adam, printed: one line a column, the sheet's grouping, no stray brackets."""
    source = lower.array_source(optim.make("adam"), "adam").source
    assert "    exp_avg_sq = beta2 * state[\"exp_avg_sq\"] + (1.0 - beta2) * (grad * grad)\n" \
        in source
    assert "    new = p - lr * m_hat / (xp.sqrt(v_hat) + eps)\n" in source
    assert source.startswith("def adam(p, g, step, state, lr, beta1, beta2, eps, weight_decay, "
                             "xp):")


def test_a_template_naming_an_unknown_input_is_refused():
    class Broken(optim.OPTIMIZERS["sgd"]):
        def columns(self):
            return [optim.Column("new", "new", "", "={p}-rate*{g}")]

    with pytest.raises(expr.FormulaError, match="rate is no input of sgd"):
        lower.array_source(Broken())
