"""One registry of optimizers (issue 12): each optimizer's name, presets, lesson learning
rates, plain sentence and own hyperparameters are declared once, in its own file beside
its rule (sheetdl/math/optimizers/), and the CLI, presets, schedules, the add-in and the
README's tables read them from there."""
import io
import tokenize

import pytest

from conftest import ROOT
from sheetdl.sheet import formulas
from sheetdl.math import optim, presets, schedules
from sheetdl import options
from sheetdl.addin import udfs

PACKAGE = ROOT / "sheetdl"
#: the lessons with a package of their own, each keeping its measured learning rates
RATED = [lesson for lesson in options.LESSONS if (PACKAGE / "lessons" / lesson).is_dir()]


def modules_naming_in(path) -> set[str]:
    """The identifiers and exact strings a module spells."""
    return {tok.string.strip("\"'") for tok in
            tokenize.generate_tokens(io.StringIO(path.read_text()).readline)
            if tok.type in (tokenize.NAME, tokenize.STRING)}


def modules_naming(name: str) -> set[str]:
    """Package modules that spell ``name`` as code: an identifier or a string that is
    exactly it (a help example mentioning it inside a sentence does not count)."""
    found = set()
    for path in PACKAGE.rglob("*.py"):
        for tok in tokenize.generate_tokens(io.StringIO(path.read_text()).readline):
            if (tok.type == tokenize.NAME and tok.string == name) or (
                    tok.type == tokenize.STRING and tok.string.strip("\"'") == name):
                found.add(str(path.relative_to(ROOT)))
                break
    return found


@pytest.mark.parametrize("name", ["nadam", "adamax", "adagrad"])
def test_an_optimizer_is_named_in_at_most_two_package_files(name):
    """Before: nadam, adamax and adagrad were each named in 6–7 package files. Now its own
    file (rule, templates, registration) and the line that lists the optimizers in order;
    one with learning rates of its own (not ``lr_as`` another's) also in each lesson that
    measured them."""
    files = modules_naming(name)
    own = {f"sheetdl/math/optimizers/{name}.py", "sheetdl/math/optimizers/__init__.py"}
    lessons = {f"sheetdl/lessons/{lesson}/__init__.py" for lesson in RATED}
    assert files == (own if optim.REGISTRY[name].lr_as else own | lessons), files


def test_the_optimizers_know_no_lesson():
    """Before: each optimizer's registration carried every lesson's learning rate, and
    adding a lesson meant editing all of them. The rates live in the lessons now."""
    modules = [PACKAGE / "math" / "optim.py", *(PACKAGE / "math" / "optimizers").glob("*.py")]
    for lesson in RATED:
        for path in modules:
            assert lesson not in modules_naming_in(path), (lesson, path)


def test_every_consumer_reads_the_registry():
    names = tuple(optim.REGISTRY)
    assert optim.NAMES == names and set(optim.OPTIMIZERS) == set(names)
    assert set(formulas.PLAIN) == set(names)
    for framework, table in presets.PRESETS.items():
        for name, options_ in table.items():
            assert options_ == optim.REGISTRY[name].presets[framework]
    assert set(schedules.MOMENTUM_OF) == {n for n, r in optim.REGISTRY.items() if r.cycles}
    for name in names:
        # every optimizer resolves under torch with its implied options applied
        opt, _ = presets.resolve("torch", name)
        for key, value in optim.REGISTRY[name].implies.items():
            assert getattr(opt, key) == value
    table = options.defaults_table()
    assert all(f"| `{name}` |" in table for name in names)
    with pytest.raises(udfs.UdfError, match="optimizer must be one of " + ", ".join(names)):
        udfs.train_linear([[1.0]], [[2.0]], "lion")


def test_a_lesson_must_give_every_optimizer_a_learning_rate():
    with pytest.raises(ValueError, match="toy: no learning rate for rmsprop, adagrad"):
        optim.learning_rates("toy", dict(sgd=0.1, momentum=0.1, adam=0.1))
    rates = optim.learning_rates("toy", dict(sgd=1, momentum=2, rmsprop=3, adam=4, adagrad=5))
    assert rates == dict(sgd=1, momentum=2, nesterov=2, rmsprop=3, adam=4, adamw=4, adagrad=5,
                         adamax=4, nadam=4)
    with pytest.raises(ValueError, match="lr_as='lion' names no optimizer registered"):
        optim.register("lion", optim.OPTIMIZERS["sgd"], presets={}, plain="", lr_as="lion")
    assert "lion" not in optim.REGISTRY
