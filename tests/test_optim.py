"""Reference math against the golden table (measured with torch 2.13, Keras 3.15
and fastai 2.8 in ../shared/docs/optimizer-conventions.md) and against
torch.optim itself on random problems."""
import numpy as np
import pytest

from sheetdl.lessons.graddesc import model as linear
from sheetdl.math import optim, presets

X = np.array([0.14, 0.86, 0.28])
Y = np.array([0.58, 2.02, 0.86])


def full_batch_grads(theta):
    err = theta[0] + theta[1] * X - Y
    return np.array([2 * err.mean(), 2 * (err * X).mean()])


def three_steps(opt):
    theta = np.array([1.0, 1.0])
    state = opt.init(theta)
    for _ in range(3):
        theta, state, _ = opt.update(theta, full_batch_grads(theta), state)
    return theta


def test_initial_gradient():
    np.testing.assert_allclose(full_batch_grads(np.array([1.0, 1.0])),
                               [0.5466666667, 0.0389333333], atol=1e-10)


GOLDEN = [
    ("torch", "sgd", dict(lr=0.1), (0.8671269581, 1.0017329225)),
    ("torch", "momentum", dict(lr=0.1), (0.7447249741, 1.0003594492)),
    ("torch", "momentum", dict(lr=0.1, dampening=0.1), (0.7546641854, 0.9989400606)),
    ("torch", "nesterov", dict(lr=0.1), (0.6983577566, 1.0281017858)),
    ("torch", "momentum", dict(lr=0.1, weight_decay=0.1), (0.7044449949, 0.9512530637)),
    ("torch", "rmsprop", dict(lr=1e-2), (0.8176654385, 1.0559602381)),
    ("torch", "rmsprop", dict(lr=0.1, centered=True, momentum=0.9), (0.7978741838, 0.8680912103)),
    ("torch", "rmsprop", dict(lr=0.1, eps=1.0), (0.8738579811, 1.0010526162)),
    ("torch", "adam", dict(lr=1e-3), (0.9970005133, 0.9970042159)),
    ("torch", "adam", dict(lr=0.1, eps=1.0), (0.8992905515, 0.9936002332)),
    ("torch", "adam", dict(lr=0.1, weight_decay=0.1), (0.7245492418, 0.8500637487)),
    ("torch", "adam", dict(lr=0.1, amsgrad=True), (0.7252160509, 1.0182964816)),
    ("torch", "adamw", dict(lr=0.1, weight_decay=0.1), (0.7053855461, 0.9953610352)),
    ("torch", "adagrad", dict(lr=1e-2), (0.9775918418, 0.9813607687)),
    ("torch", "adamax", dict(lr=2e-3), (0.9940272679, 0.9942249932)),
    ("torch", "nadam", dict(lr=2e-3), (0.9948742864, 0.9949969822)),
    ("keras", "rmsprop", dict(lr=1e-3), (0.9926649582, 0.9929519102)),
    ("keras", "adam", dict(lr=1e-3), (0.9970005265, 0.9970044031)),
    ("fastai", "adam", dict(lr=0.1), (0.7227722472, 1.0157715680)),
    ("fastai", "rmsprop", dict(lr=0.1), (0.7686829231, 0.9879448562)),
]


@pytest.mark.parametrize("preset,kind,overrides,expected", GOLDEN,
                         ids=[f"{p}-{k}-{o}" for p, k, o, _ in GOLDEN])
def test_golden_table(preset, kind, overrides, expected):
    opt, _ = presets.resolve(preset, kind, **overrides)
    np.testing.assert_allclose(three_steps(opt), expected, rtol=0, atol=6e-11)


def test_controls_tell_variants_apart():
    """The doc's controls: ε inside √ moves RMSprop (lr 0.1, ε 1) by 6.5e-3;
    dampening on step 1 moves SGD momentum by 1.1e-2. Our options must
    reproduce both gaps, or the golden rows could not tell variants apart."""
    out = three_steps(presets.resolve("torch", "rmsprop", lr=0.1, eps=1.0)[0])
    ins = three_steps(presets.resolve("torch", "rmsprop", lr=0.1, eps=1.0, eps_in_sqrt=True)[0])
    assert np.max(np.abs(out - ins)) == pytest.approx(6.5e-3, abs=1e-4)
    skip = three_steps(presets.resolve("torch", "momentum", lr=0.1, dampening=0.1)[0])
    damp = three_steps(presets.resolve("torch", "momentum", lr=0.1, dampening=0.1,
                                       dampen_first_step=True)[0])
    assert np.max(np.abs(skip - damp)) == pytest.approx(1.1e-2, abs=1e-3)


def test_unknown_names_are_refused():
    with pytest.raises(ValueError, match="unknown optimizer 'adadelta'"):
        optim.make("adadelta")
    with pytest.raises(ValueError, match="unknown preset 'jax'"):
        presets.resolve("jax", "sgd")


def test_finite_difference_matches_analytic():
    rng = np.random.default_rng(0)
    b, a, x, y = rng.normal(size=4)
    _, _, _, gb, ga = linear.forward(b, a, x, y)
    fd_b, fd_a = linear.finite_difference(b, a, x, y, 1e-3)
    assert fd_b == pytest.approx(gb, rel=1e-9)
    assert fd_a == pytest.approx(ga, rel=1e-9)
