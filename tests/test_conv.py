"""The conv lesson: a convolutional network trained in formulas, against torch autograd
(F.conv2d → relu → max_pool2d(2) → flatten → linear → cross_entropy, float64, full batch,
torch.optim), through IronCalc and LibreOffice; max-pool's ties routed as torch routes
them; the finite-difference tap; its options and data."""
import re
import subprocess
import sys

import numpy as np
import openpyxl
import pytest
import torch
import torch.nn.functional as F

import sheetdl
from conftest import named_values
from sheetdl.lessons.conv import layout as conv_book, model as conv
from sheetdl.math import optim
from sheetdl.verification import libreoffice, verifier as verify
from sheetdl.write import xlsx
from torch_reference import torch_optimizer, torch_scheduler

KINDS = optim.NAMES
NAMES = ("loss_trace", "K_final", "kb_final", "Wd_final", "bd_final")


def random_lesson(kind, seed, schedule="constant"):
    rng = np.random.default_rng(seed * 53 + KINDS.index(kind))
    h, w = int(rng.integers(5, 10)), int(rng.integers(5, 10))
    k, c, n = int(rng.integers(1, 4)), int(rng.integers(2, 5)), int(rng.integers(2, 7))
    images = np.round(rng.uniform(0, 1, (n, h, w)), 2)
    labels = rng.integers(0, c, n)
    hyper = {"lr": float(np.exp(rng.uniform(np.log(0.005), np.log(0.2)))),
             "weight_decay": float(rng.choice([0.0, 0.01])),
             "momentum": float(rng.uniform(0.5, 0.9)), "beta2": float(rng.uniform(0.9, 0.999))}
    if kind == "rmsprop":
        hyper["momentum"] = 0.0
    return conv_book.make_lesson(images, labels, [f"c{i}" for i in range(c)], kernels=k,
                                 optimizer=kind, steps=int(rng.integers(3, 7)), seed=seed,
                                 schedule=schedule, schedule_options={"cycle_momentum": True},
                                 **hyper)


def torch_replay(lesson, theta0=None, steps=None):
    """Loss per step and the final (K, kb, Wd, bd) from torch autograd and torch.optim."""
    prev = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        sh = lesson.shape
        params = [torch.tensor(v, requires_grad=True) for v in
                  sh.unpack(lesson.theta0 if theta0 is None else theta0)]
        K, kb, Wd, bd = params
        opt = torch_optimizer(lesson.kind, lesson.opt, params)
        scheduler = torch_scheduler(opt, lesson.schedule)
        x = torch.tensor(lesson.images)[:, None]
        y = torch.tensor(lesson.labels)
        losses = []
        for t in range(lesson.steps if steps is None else steps):
            opt.zero_grad()
            maps = F.max_pool2d(F.relu(F.conv2d(x, K[:, None], kb)), 2)
            flat = torch.flatten(maps, 1)
            if lesson.dropout:  # what F.dropout does in training mode, with the sheet's mask
                flat = flat * torch.tensor(lesson.masks[t]) / (1 - lesson.dropout)
            loss = F.cross_entropy(F.linear(flat, Wd, bd), y)
            loss.backward()
            opt.step()
            if scheduler is not None:
                scheduler.step()
            losses.append(loss.item())
        return [np.array(losses)] + [p.detach().numpy().ravel() for p in params]
    finally:
        torch.set_default_dtype(prev)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    folder = tmp_path_factory.mktemp("conv")
    out = {}
    for kind in KINDS:
        for seed in (0, 1):
            lesson = random_lesson(kind, seed, "cosine" if seed else "constant")
            path = xlsx.write(conv_book.build(lesson), folder / f"{kind}-{seed}.xlsx")
            out[(kind, seed)] = (path, lesson, torch_replay(lesson))
    return out


@pytest.mark.parametrize("kind", KINDS)
def test_workbook_matches_torch_autograd_through_ironcalc(built, kind):
    for seed in (0, 1):
        path, lesson, want = built[(kind, seed)]
        report = verify.verify(path)
        assert report.ok, report.summary()
        wb = verify.recalculated(path)
        for name, w in zip(NAMES, want):
            np.testing.assert_allclose(wb.values(name), w, rtol=1e-9, atol=1e-12,
                                       err_msg=f"{kind} seed {seed} {name}")
        assert want[0][-1] != want[0][0]


def test_libreoffice_recalculates_identically(built, soffice, tmp_path):
    keys = sorted(built)
    outs = libreoffice.recalculate([built[k][0] for k in keys], tmp_path)
    for key, out in zip(keys, outs):
        lesson, want = built[key][1:]
        lo = openpyxl.load_workbook(out, data_only=True)
        for name, w in zip(NAMES, want):
            np.testing.assert_allclose(named_values(lo, name), w, rtol=1e-9, atol=1e-12,
                                       err_msg=f"{key} {name}")


def tied_lesson():
    """Images of 0s and 1s under integer kernels: many pool windows hold equal maxima, some
    of them positive, so where the gradient goes decides ∂L/∂kernel."""
    images, labels, names = conv.glyph_images(4, 2, 0)
    images = (images > 0.5).astype(float)
    sh = conv.Shape(8, 8, 2, 2)
    theta0 = conv.init_params(sh, 0, "edges")
    return conv_book.make_lesson(images, labels, names, optimizer="sgd", lr=1.0, steps=1,
                                 theta0=theta0)


def test_max_pool_ties_route_as_torch(tmp_path):
    """One SGD step with lr 1: K_final = K_init − ∂L/∂K, so the recalculated kernels are the
    gradient. torch's CPU max_pool2d routes a tie to the window's first maximum (row by row),
    as the sheet's IF chain; routing to the last would give another gradient."""
    lesson = tied_lesson()
    st = lesson.trace.steps[0]
    win = conv._pool_windows(st.a, lesson.shape)
    ties = (win == win.max(axis=-1, keepdims=True)).sum(axis=-1) > 1
    # a tie of positive values whose window gets a gradient: where it goes moves ∂L/∂K
    assert np.any(ties & (win.max(axis=-1) > 0) & (st.dpool != 0)), \
        "no tie that matters: the test would prove nothing"
    path = xlsx.write(conv_book.build(lesson), tmp_path / "ties.xlsx")
    wb = verify.recalculated(path)
    want = torch_replay(lesson)
    np.testing.assert_allclose(wb.values("K_final"), want[1], rtol=1e-12, atol=1e-15)


def test_finite_difference_matches_backprop(tmp_path):
    """The sheet's numeric ∂L/∂K₁[1,1] against torch autograd's at step 1: a central
    difference is second order, its error shrinking ~100× from h = 1e-2 to 1e-3."""
    images, labels, names = conv.glyph_images(6, 3, 0)
    lesson = conv_book.make_lesson(images, labels, names, steps=2)
    path = xlsx.write(conv_book.build(lesson), tmp_path / "fd.xlsx")
    sh = lesson.shape
    K, kb, Wd, bd = (torch.tensor(v, requires_grad=True) for v in sh.unpack(lesson.theta0))
    x = torch.tensor(lesson.images)[:, None]
    maps = F.max_pool2d(F.relu(F.conv2d(x, K[:, None], kb)), 2)
    F.cross_entropy(F.linear(torch.flatten(maps, 1), Wd, bd),
                    torch.tensor(lesson.labels)).backward()
    autograd = K.grad[0, 0, 0].item()
    ws = openpyxl.load_workbook(path)["train"]
    step1 = next(c.row for c in ws["A"] if c.value == "step 1")
    labels_row = {c.value: c.column for c in ws[step1] if isinstance(c.value, str)}
    fd_cell = openpyxl.load_workbook(path).defined_names["fd_h"].attr_text.split("!")[1]
    col = openpyxl.utils.column_index_from_string(fd_cell.replace("$", "").rstrip("0123456789"))
    errors = {}
    for h in (None, 1e-2, 1e-3):
        wb = verify.recalculated(path)
        si = wb.index["train"]
        if h is not None:
            wb.model.set_user_input(si, 4, col, str(h))
            wb.model.evaluate()
        backprop = wb.model.get_cell_value(si, step1 + 1, labels_row["backprop"])
        assert backprop == pytest.approx(autograd, rel=1e-12)
        errors[h] = abs(wb.model.get_cell_value(si, step1 + 1, labels_row["fd check"]) - autograd)
    assert errors[None] < 1e-7 * max(1.0, abs(autograd)), errors
    assert 20 < errors[1e-2] / errors[1e-3] < 500, errors


def test_default_lesson_trains_and_its_first_screen_teaches(tmp_path):
    """The default build: 6 glyphs, 2 kernels, adam; the loss falls by over 5× to 100%
    accuracy, the charts sit on the first screen, and the maps are heatmaps."""
    path = sheetdl.build("conv", tmp_path / "conv.xlsx")
    wb = verify.recalculated(path)
    loss = wb.values("loss_trace")
    assert len(loss) == 40 and loss[-1] < loss[0] / 5
    assert wb.values("accuracy_trace")[-1] == 1.0
    ws = openpyxl.load_workbook(path)["train"]
    anchors = [(c.anchor._from.row, c.anchor._from.col) for c in ws._charts]
    assert anchors == [(6, 5), (22, 5)]  # F7: the loss, F23: the accuracy
    scales = [r for cf in ws.conditional_formatting for r in cf.rules if r.type == "colorScale"]
    assert len(scales) >= 5 * 40  # five kinds of map in every block


def test_options_are_checked(tmp_path):
    csv = tmp_path / "img.csv"
    csv.write_text("label," + ",".join(f"p{i}" for i in range(36)) + "\n"
                   + "\n".join(f"{i % 2}," + ",".join(str((i + j) % 3 / 2) for j in range(36))
                               for i in range(4)) + "\n")
    path = sheetdl.build("conv", tmp_path / "csv.xlsx", data=str(csv), steps=3)
    assert verify.verify(path).ok
    assert openpyxl.load_workbook(path)["data"].max_row == 5
    with pytest.raises(sheetdl.OptionError, match="--image-size is the size of a CSV"):
        sheetdl.build("conv", tmp_path / "x.xlsx", image_size="8")
    with pytest.raises(sheetdl.OptionError, match="a CSV's labels set its classes"):
        sheetdl.build("conv", tmp_path / "x.xlsx", data=str(csv), classes=3)
    with pytest.raises(ValueError, match="--kernels must be from 1 to 8, got 9"):
        sheetdl.build("conv", tmp_path / "x.xlsx", kernels=9)
    odd = tmp_path / "odd.csv"
    odd.write_text("".join(f"{i}," + ",".join(["0.5"] * 35) + "\n" for i in range(2)))
    with pytest.raises(ValueError, match="35 pixels per image is not a square; give"):
        sheetdl.build("conv", tmp_path / "x.xlsx", data=str(odd))
    path = sheetdl.build("conv", tmp_path / "odd.xlsx", data=str(odd), image_size="5x7",
                         steps=2)
    assert verify.verify(path).ok
    with pytest.raises(ValueError, match="formula cells, past the 3,000,000"):
        conv_book.make_lesson(np.zeros((32, 28, 28)), np.arange(32) % 2, ["a", "b"],
                              kernels=8, steps=100)
    r = subprocess.run([sys.executable, "-m", "sheetdl.cli", "build", "conv", "--hidden", "3"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "--hidden is a flag of mlp, not conv" in r.stderr



def test_maps_sheet_shows_the_picked_step_and_image(tmp_path):
    """Typing a step and an image into the maps sheet's yellow cells (IronCalc recalculating)
    shows that image, kernel 2's feature map and pool, and the class probabilities as they
    are at that step: the reference math's numbers, which the torch tests pin."""
    images, labels, names = conv.glyph_images(6, 3, 0)
    lesson = conv_book.make_lesson(images, labels, names, steps=7)
    path = xlsx.write(conv_book.build(lesson), tmp_path / "maps.xlsx")
    wb = verify.recalculated(path)
    si = wb.index["maps"]
    cell = lambda r, c: wb.model.get_cell_value(si, r + 1, c + 1)
    step, image = 5, 3
    wb.model.set_user_input(si, conv_book.PICK_ROW + 1, conv_book.STEP_COL + 1, str(step))
    wb.model.set_user_input(si, conv_book.PICK_ROW + 1, conv_book.IMAGE_COL + 1, str(image))
    wb.model.evaluate()
    st, sh = lesson.trace.steps[step - 1], lesson.shape
    assert cell(conv_book.IMAGE_ROW, 0) == f"image {image}, label {names[labels[image - 1]]}"
    assert cell(conv_book.IMAGE_ROW + 2, 3) == images[image - 1, 1, 3]
    hc, wc = sh.conv
    top = conv_book.IMAGE_ROW + sh.height + 2 + (max(3, hc) + 2) + 1  # kernel 2's band
    got = np.array([[cell(top + r, 4 + j) for j in range(wc)] for r in range(hc)])
    np.testing.assert_allclose(got, st.a[image - 1, 1], rtol=1e-12, atol=0)
    pool = np.array([[cell(top + r, 4 + wc + 1 + j) for j in range(sh.pooled[1])]
                     for r in range(sh.pooled[0])])
    np.testing.assert_allclose(pool, st.pool[image - 1, 1], rtol=1e-12, atol=0)
    ws = openpyxl.load_workbook(path)["maps"]
    right = next(c.column for c in ws[conv_book.IMAGE_ROW + 1] if c.value == "p at step") - 1
    probs = [cell(conv_book.IMAGE_ROW + 1 + c, right) for c in range(sh.classes)]
    np.testing.assert_allclose(probs, st.soft.probs[image - 1], rtol=1e-12)
    assert st.a[image - 1, 1].max() > 0 and not np.allclose(lesson.trace.steps[0].a, st.a)


@pytest.mark.parametrize("kind", ["sgd", "adam"])
def test_dropout_matches_torch_with_the_same_masks(kind, tmp_path, soffice):
    """--dropout: masks drawn at build time (a masks sheet of 0/1 inputs, never RAND()),
    kept features scaled by 1/(1 − p), the same mask on the way back; torch with those
    masks gives the same losses and weights, through IronCalc and LibreOffice, and the
    masks really drop about p of the features."""
    images, labels, names = conv.glyph_images(6, 3, 1)
    lesson = conv_book.make_lesson(images, labels, names, optimizer=kind, steps=6, seed=2,
                                   dropout=0.4)
    assert 0.25 < 1 - lesson.masks.mean() < 0.55
    path = xlsx.write(conv_book.build(lesson), tmp_path / "dropout.xlsx")
    report = verify.verify(path)
    assert report.ok, report.summary()
    want = torch_replay(lesson)
    wb = verify.recalculated(path)
    np.testing.assert_array_equal(wb.values("dropout_masks").reshape(lesson.masks.shape),
                                  lesson.masks)
    lo = openpyxl.load_workbook(libreoffice.recalculate([path], tmp_path / "lo")[0],
                                data_only=True)
    for name, w in zip(NAMES, want):
        np.testing.assert_allclose(wb.values(name), w, rtol=1e-9, atol=1e-12, err_msg=name)
        np.testing.assert_allclose(named_values(lo, name), w, rtol=1e-9, atol=1e-12,
                                   err_msg=name)
    plain = torch_replay(conv_book.make_lesson(images, labels, names, optimizer=kind, steps=6,
                                               seed=2))
    assert not np.allclose(plain[0], want[0])  # the masks change the training


@pytest.mark.parametrize("kind,dropout,init", [("adam", 0.0, "random"), ("sgd", 0.3, "edges"),
                                               ("rmsprop", 0.0, "edges")])
def test_conv_train_and_predict_udfs_match_torch(kind, dropout, init):
    """SHEETDL.CONV_TRAIN's losses, accuracies, kernels and dense layer are torch's for the
    start the workbook draws (dropout masks too), and SHEETDL.CONV_PREDICT's probabilities
    are torch's softmax of the trained network: the conv lesson in one call, past the
    sheet's size limits (32×32 images here)."""
    from sheetdl.addin import udfs

    rng = np.random.default_rng(3)
    # unrounded pixels: with 2-decimal ones the edge filters make pool windows whose cells
    # are equal in exact arithmetic, and which one is "first" then depends on each engine's
    # summation order (the 9-decimal rule of the sheet, torch's exact compare)
    images = rng.uniform(0, 1, (10, 32, 32))
    labels = rng.integers(0, 4, 10)
    labels[:4] = np.arange(4)
    X = images.reshape(10, -1)
    args = (X, labels.reshape(-1, 1), 3, 12, None, kind, 5)
    table = udfs.conv_train(*args, "loss", dropout or None, init)
    # the sheet refuses 32×32 (its cell limit): torch replays the start the workbook would
    # draw (conv.init_params) with the lesson's rate and masks
    from sheetdl.lessons import conv as conv_lesson
    from sheetdl.math import dropout as inverted_dropout, presets

    shape = conv.Shape(32, 32, 3, 4)
    theta0 = conv.init_params(shape, 5, init)
    opt, _ = presets.resolve("torch", kind, lr=conv_lesson.LEARNING_RATES[kind])
    fake = type("L", (), dict(shape=shape, theta0=theta0, kind=kind, opt=opt, schedule=None,
                              images=images, labels=labels, steps=12, dropout=dropout,
                              masks=inverted_dropout.draw(12, 10, shape.features, dropout, 5)
                              if dropout else None))
    losses, K, kb, Wd, bd = torch_replay(fake)
    assert table[0] == ["step", "loss", "accuracy"]
    np.testing.assert_allclose([r[1] for r in table[1:]], losses, rtol=1e-9)
    kernels = np.array(udfs.conv_train(*args, "kernels", dropout or None, init))
    dense = np.array(udfs.conv_train(*args, "dense", dropout or None, init))
    np.testing.assert_allclose(kernels[:, :9].ravel(), K, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(kernels[:, 9], kb, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(dense[:, :-1].ravel(), Wd, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(dense[:, -1], bd, rtol=1e-9, atol=1e-12)
    probs = udfs.conv_predict(X, kernels[:, :9], kernels[:, 9], dense[:, :-1], dense[:, -1])
    with torch.no_grad():
        x = torch.tensor(images)[:, None]
        Kt = torch.tensor(K.reshape(3, 1, 3, 3))
        flat = torch.flatten(F.max_pool2d(F.relu(F.conv2d(x, Kt, torch.tensor(kb))), 2), 1)
        want = F.softmax(F.linear(flat, torch.tensor(Wd.reshape(4, -1)), torch.tensor(bd)), 1)
    np.testing.assert_allclose(probs, want.numpy(), rtol=1e-9, atol=1e-15)


@pytest.mark.parametrize("call,message", [
    (lambda u: u.conv_train(np.zeros((2, 30)), [[0], [1]]), "30 pixels a row, not a square"),
    (lambda u: u.conv_train(np.zeros((2, 16)), [[0]]), "images has 2 rows and labels 1"),
    (lambda u: u.conv_train(np.zeros((2, 16)), [[0], [0.5]]), "whole class numbers"),
    (lambda u: u.conv_train(np.zeros((2, 16)), [[0], [0]]), "1 classes; 2 to 10"),
    (lambda u: u.conv_train(np.zeros((2, 9)), [[0], [1]]), "each side must be from 4 to 64"),
    (lambda u: u.conv_train(np.zeros((2, 16)), [[0], [1]], 2, 5, None, "adam", 0, "maps"),
     'output must be "loss", "kernels" or "dense"'),
    (lambda u: u.conv_train(np.zeros((4000, 4096)), np.arange(4000) % 2, 16, 1000),
     "a call may take"),
    (lambda u: u.conv_predict(np.zeros((1, 16)), np.zeros((2, 8)), [0, 0], np.zeros((2, 8)),
                              [0, 0]), "kernels must have 9 columns"),
    (lambda u: u.conv_predict(np.zeros((1, 16)), np.zeros((2, 9)), [0, 0], np.zeros((3, 5)),
                              [0, 0, 0]),
     "dense must be classes × 2 (the pooled features of 2 kernel(s))"),
])
def test_conv_udf_arguments_are_checked(call, message):
    from sheetdl.addin import udfs

    with pytest.raises(udfs.UdfError, match=re.escape(message)):
        call(udfs)


def test_an_overflowing_lr_caches_what_the_engines_show(tmp_path):
    """lr 1e200 overflows the maps to #NUM! within a few steps: the cached routes (the
    nested IF reads a #NUM! cell: #NUM!), predicted classes and losses are what IronCalc
    recalculates, so verify passes and the status says OVERFLOWED (before: the routes
    cached 1 where every engine shows #NUM!, and an lr of 1e308 crashed the build)."""
    images, labels, names = conv.glyph_images(4, 2, 0)
    lesson = conv_book.make_lesson(images, labels, names, steps=5, lr=1e200, optimizer="sgd")
    assert not np.isfinite(lesson.trace.steps[-1].loss)
    path = xlsx.write(conv_book.build(lesson), tmp_path / "over.xlsx")
    report = verify.verify(path)
    assert report.ok, report.summary()
    wb = verify.recalculated(path)
    status = next(v for v in (wb.model.get_cell_value(wb.index["train"], r, 1)
                              for r in range(1, 12)) if isinstance(v, str)
                  and v.startswith(("OVERFLOWED", "training", "DIVERGING")))
    assert status.startswith("OVERFLOWED"), status
