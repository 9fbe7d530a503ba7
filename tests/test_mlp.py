"""The mlp lesson: a two-layer ReLU network trained by backprop in formulas, against torch
autograd (nn.Linear → relu → nn.Linear, float64, full batch, torch.optim), through
IronCalc and LibreOffice; the finite-difference check; dead ReLUs; the add-in functions."""
import re

import numpy as np
import openpyxl
import pytest
import torch

from conftest import named_values
from sheetdl.lessons.graddesc import layout as graddesc
from sheetdl.verification import libreoffice, verifier as verify
from sheetdl.lessons.mlp import model as mlp, layout as mlp_book
from sheetdl.addin import udfs
from sheetdl.write import xlsx
from torch_reference import torch_optimizer, torch_scheduler

KINDS = graddesc.ALL_OPTIMIZERS
NAMES = ("loss_trace", "W1_final", "b1_final", "W2_final", "b2_final")


def random_lesson(kind, seed, schedule="constant"):
    rng = np.random.default_rng(seed * 41 + KINDS.index(kind))
    d, h, n = int(rng.integers(1, 4)), int(rng.integers(1, 7)), int(rng.integers(4, 16))
    X = np.round(rng.uniform(-2, 2, (n, d)), 2)
    y = np.round(np.sin(X.sum(axis=1)) + rng.normal(0, 0.1, n), 3)
    hyper = {"lr": float(np.exp(rng.uniform(np.log(0.005), np.log(0.1)))),
             "weight_decay": float(rng.choice([0.0, 0.05])),
             "momentum": float(rng.uniform(0.5, 0.9)), "beta2": float(rng.uniform(0.9, 0.999))}
    if kind == "rmsprop":
        hyper["momentum"] = 0.0
    return mlp_book.make_lesson(X, y, hidden=h, optimizer=kind, steps=int(rng.integers(3, 10)),
                                seed=seed, schedule=schedule,
                                schedule_options={"cycle_momentum": True}, **hyper)


def torch_replay(lesson, theta0=None, eval_losses=None):
    """Loss per step and the final parameters (W1, b1, W2, b2, or under batch norm W1, γ,
    β, W2, b2 and the running mean and variance) from torch autograd and torch.optim; with
    the lesson's dropout masks, layer 2 reads relu(·)·mask/(1 − p), and ``eval_losses`` (a
    list) gets each step's loss in eval mode (``net.eval()``) before its training step."""
    prev = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        shape = lesson.shape
        theta = lesson.theta0 if theta0 is None else theta0
        if shape.batchnorm:
            norm = torch.nn.BatchNorm1d(shape.hidden, momentum=lesson.norm.momentum,
                                        eps=lesson.norm.eps)
            first = [torch.nn.Linear(shape.features, shape.hidden, bias=False), norm]
        else:
            first = [torch.nn.Linear(shape.features, shape.hidden)]
        net = torch.nn.Sequential(*first, torch.nn.ReLU(), torch.nn.Linear(shape.hidden, 1))
        with torch.no_grad():
            at = 0
            for p in net.parameters():
                p.copy_(torch.tensor(theta[at:at + p.numel()]).reshape(p.shape))
                at += p.numel()
        head = list(net[-1].parameters())
        body = [p for p in net.parameters() if all(p is not q for q in head)]
        lr1 = lesson.opt.lr if lesson.lr_layer1 is None else lesson.lr_layer1
        opt = torch_optimizer(lesson.kind, lesson.opt,
                              [{"params": body, "lr": lr1}, {"params": head}])
        scheduler = torch_scheduler(opt, lesson.schedule)
        X, y = torch.tensor(lesson.X), torch.tensor(lesson.y)
        mse = torch.nn.functional.mse_loss
        losses = []
        for t in range(lesson.steps):
            if eval_losses is not None:
                net.eval()
                with torch.no_grad():
                    eval_losses.append(mse(net(X).squeeze(1), y).item())
                net.train()
            for p in body:  # fastai's freeze: the body has no grad, torch.optim skips it
                p.requires_grad_(t >= lesson.freeze_steps)
            opt.zero_grad()
            if lesson.masks is None:
                out = net(X)
            else:
                hidden = net[:-1](X)
                out = net[-1](hidden * torch.tensor(lesson.masks[t]) / (1 - lesson.dropout))
            loss = mse(out.squeeze(1), y)
            loss.backward()
            opt.step()
            if scheduler is not None:
                scheduler.step()
            losses.append(loss.item())
        params = [p.detach().numpy().ravel() for p in net.parameters()]
        if shape.batchnorm:
            params += [norm.running_mean.numpy().copy(), norm.running_var.numpy().copy()]
        return [np.array(losses)] + params
    finally:
        torch.set_default_dtype(prev)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mlp")
    out = {}
    for kind in KINDS:
        for seed in (0, 1):
            lesson = random_lesson(kind, seed, "cosine" if seed else "constant")
            path = xlsx.write(mlp_book.build(lesson), folder / f"{kind}-{seed}.xlsx")
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
        ironcalc = verify.recalculated(built[key][0])
        lo = openpyxl.load_workbook(out, data_only=True)
        for name in NAMES + ("dead_trace",):
            np.testing.assert_allclose(named_values(lo, name), ironcalc.values(name),
                                       rtol=1e-9, atol=1e-12, err_msg=f"{key} {name}")


def agree_with_torch(tmp_path, cases):
    """Each case (label, lesson, {name: torch's values}) built, verified, recalculated by
    IronCalc and, all in one call, by LibreOffice, every named value torch's to 1e-9.
    Returns each case's path and IronCalc workbook, for what a test checks beyond."""
    done = []
    for i, (label, lesson, want) in enumerate(cases):
        path = xlsx.write(mlp_book.build(lesson), tmp_path / f"case{i}.xlsx")
        report = verify.verify(path)
        assert report.ok, report.summary()
        wb = verify.recalculated(path)
        for name, w in want.items():
            np.testing.assert_allclose(wb.values(name), w, rtol=1e-9, atol=1e-12,
                                       err_msg=f"{label} {name}")
        done.append((path, wb))
    outs = libreoffice.recalculate([path for path, _ in done], tmp_path / "lo")
    for out, (label, _, want) in zip(outs, cases):
        lo = openpyxl.load_workbook(out, data_only=True)
        for name, w in want.items():
            np.testing.assert_allclose(named_values(lo, name), w, rtol=1e-9, atol=1e-12,
                                       err_msg=f"{label} {name} (LibreOffice)")
    return done


def test_dropout_matches_torch_with_the_same_masks(soffice, tmp_path):
    """--dropout on the hidden units, every optimizer, random sizes and p: the masks are
    0/1 inputs drawn at build time, kept units scaled by 1/(1 − p), the same mask on the way
    back; torch with those masks gives the losses, eval-mode losses and weights, through
    IronCalc and LibreOffice. The status names dropout's effect; the masks change training."""
    cases = []
    for kind in KINDS:
        base = random_lesson(kind, 3)
        p = float(np.random.default_rng(KINDS.index(kind)).uniform(0.1, 0.6))
        lesson = mlp_book.make_lesson(base.X, base.y, hidden=base.shape.hidden, optimizer=kind,
                                      steps=base.steps, seed=3, dropout=p,
                                      **base.opt.hyper())
        assert lesson.masks.shape == (lesson.steps, len(lesson.X), lesson.shape.hidden)
        eval_losses = []
        want = torch_replay(lesson, eval_losses=eval_losses)
        plain = torch_replay(base)
        assert not np.allclose(plain[0], want[0]), kind
        np.testing.assert_allclose(plain[0][0], eval_losses[0], rtol=1e-12)  # same start
        names = NAMES + ("loss_eval_trace",)
        cases.append((kind, lesson, dict(zip(names, want + [np.array(eval_losses)]))))
    for (_, lesson, _), (_, wb) in zip(cases, agree_with_torch(tmp_path, cases)):
        np.testing.assert_array_equal(wb.values("dropout_masks").reshape(lesson.masks.shape),
                                      lesson.masks)


BN_NAMES = ("loss_trace", "W1_final", "bn_gamma_final", "bn_beta_final", "W2_final",
            "b2_final", "bn_running_mean_final", "bn_running_var_final")


def test_batchnorm_matches_torch_batchnorm1d(soffice, tmp_path):
    """--batchnorm, every optimizer, random sizes, momentum and ε (and dropout on some):
    nn.Linear(bias=False) → nn.BatchNorm1d in training mode → relu → nn.Linear gives the
    sheet's losses, weights, γ, β and running statistics, and in eval mode (running
    statistics, dropout off) its eval losses, through IronCalc and LibreOffice."""
    cases = []
    for kind in KINDS:
        base = random_lesson(kind, 5)
        rng = np.random.default_rng(7 + KINDS.index(kind))
        options = dict(batchnorm=True, bn_momentum=float(rng.choice([0.1, 0.3, 1.0])),
                       bn_eps=float(rng.choice([1e-5, 1e-3])),
                       dropout=0.3 if KINDS.index(kind) % 2 else 0.0)
        lesson = mlp_book.make_lesson(base.X, base.y, hidden=base.shape.hidden, optimizer=kind,
                                      steps=base.steps, seed=5, **options, **base.opt.hyper())
        eval_losses = []
        want = torch_replay(lesson, eval_losses=eval_losses) + [np.array(eval_losses)]
        cases.append((f"{kind} {options}", lesson,
                      dict(zip(BN_NAMES + ("loss_eval_trace",), want))))
    for _, wb in agree_with_torch(tmp_path, cases):
        assert wb.values("bn_running_var_final").min() > 0


def test_batchnorm_finite_difference_and_refusals(tmp_path):
    """Under batch norm the nudge of W1₁₁ moves the batch's μ and σ², which the sheet's
    nudged columns recompute: the finite difference still matches autograd's ∂L/∂W1[0, 0]
    (to O(h²) now: the loss is no longer quadratic in the weight). The default data's
    x = 0 sits on every unit's kink (z1 = 0, x̂ ≈ 1e-17) and the sheet, IronCalc and the
    replay agree there. Options that need batch norm without it, or one example, are refused."""
    X, y = mlp.curve()
    lesson = mlp_book.make_lesson(X, y, steps=4, batchnorm=True)
    path = xlsx.write(mlp_book.build(lesson), tmp_path / "bn.xlsx")
    assert verify.verify(path).ok
    shape = lesson.shape
    parts = {k: torch.tensor(v, requires_grad=True)
             for k, v in shape.parts(lesson.theta0.copy()).items() if v is not None}
    Xt, yt = torch.tensor(X), torch.tensor(y)
    z1 = Xt @ parts["W1"].T
    out = torch.nn.functional.batch_norm(z1, None, None, parts["gamma"], parts["beta"],
                                         training=True, eps=1e-5)
    loss = torch.nn.functional.mse_loss((torch.relu(out) @ parts["W2"].T).squeeze(1)
                                        + parts["b2"], yt)
    loss.backward()
    got = block_scalars(verify.recalculated(path), step_rows(path)[1])
    assert got["backprop"] == pytest.approx(parts["W1"].grad[0, 0].item(), rel=1e-9)
    assert got["fd check"] == pytest.approx(got["backprop"], rel=1e-4, abs=1e-9)
    for bad, message in ((dict(bn_momentum=0.2), "give --batchnorm too"),
                         (dict(batchnorm=True, bn_eps=0.0), "--bn-eps above 0")):
        with pytest.raises(ValueError, match=re.escape(message)):
            mlp_book.make_lesson(X, y, steps=2, **bad)
    with pytest.raises(ValueError, match="at least 2 examples"):
        mlp_book.make_lesson(X[:1], y[:1], steps=2, batchnorm=True)


def test_layer_rates_and_freezing_match_torch_parameter_groups(soffice, tmp_path):
    """--lr LO:HI and --freeze-steps N, every optimizer (with batch norm on some): torch with
    two parameter groups (body at LO, head at HI) whose body has requires_grad off for the
    first N steps gives the sheet's losses and weights, through IronCalc and LibreOffice.
    While frozen, layer 1's θ and optimizer state do not move and its intermediates say
    "frozen"; its step count (Adam's bias correction, Adagrad's decay, NAdam's μ) starts at
    the unfreezing, as torch's state does for a parameter that had no grad."""
    cases = []
    for kind in KINDS:
        base = random_lesson(kind, 6)
        k = KINDS.index(kind)
        options = dict(lr=(base.opt.lr / 10, base.opt.lr), freeze_steps=min(2, base.steps - 1),
                       batchnorm=k % 3 == 0)
        hyper = {**base.opt.hyper(), **options}
        lesson = mlp_book.make_lesson(base.X, base.y, hidden=base.shape.hidden, optimizer=kind,
                                      steps=base.steps, seed=6, **hyper)
        names = BN_NAMES if lesson.shape.batchnorm else NAMES
        cases.append((f"{kind} {options}", lesson, dict(zip(names, torch_replay(lesson)))))
    done = agree_with_torch(tmp_path, cases)
    # adam's block 1: layer 1's new θ is its θ, its m̂ "frozen", layer 2 moved
    path = done[KINDS.index("adam")][0]
    ws = openpyxl.load_workbook(path, data_only=True)["train"]
    first = step_rows(path)[1]
    title = lambda text: next(c for row in ws.iter_rows(min_row=first, max_row=first + 200)
                              for c in row if c.value == text)
    m_hat = title("m̂ (layer 1)")
    assert ws.cell(m_hat.row + 2, m_hat.column).value == "frozen"
    p1, new1 = title("θ (layer 1)"), title("new θ (layer 1)")
    assert ws.cell(p1.row + 2, p1.column).value == ws.cell(new1.row + 2, new1.column).value
    p2, new2 = title("θ (layer 2)"), title("new θ (layer 2)")
    assert ws.cell(p2.row + 2, p2.column).value != ws.cell(new2.row + 2, new2.column).value


def test_typing_another_freeze_steps_retrains_as_torch(tmp_path):
    """freeze_steps is a yellow input: typing 1 where the build froze 4 steps retrains the
    sheet as torch does with one frozen step (adam: bias correction from the unfreezing),
    and the status says how long layer 1 is frozen."""
    X, y = mlp.curve()
    lesson = mlp_book.make_lesson(X, y, steps=8, freeze_steps=4, optimizer="adam")
    path = xlsx.write(mlp_book.build(lesson), tmp_path / "f.xlsx")
    wb = verify.recalculated(path)
    sheet, cell = openpyxl.load_workbook(path).defined_names["freeze_steps"].attr_text.split("!")
    m = re.fullmatch(r"\$([A-Z]+)\$(\d+)", cell)
    status = lambda: wb.model.get_cell_value(wb.index["train"], *_status_cell(path))
    assert status().endswith("; layer 1 frozen through step 4"), status()
    wb.model.set_user_input(wb.index[sheet], int(m.group(2)), ord(m.group(1)) - 64, "1")
    wb.model.evaluate()
    assert status().endswith("; layer 1 frozen through step 1"), status()
    want = torch_replay(mlp_book.make_lesson(X, y, steps=8, freeze_steps=1, optimizer="adam"))
    np.testing.assert_allclose(wb.values("loss_trace"), want[0], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(wb.values("W1_final"), want[1], rtol=1e-9, atol=1e-12)
    assert not np.allclose(want[0], torch_replay(lesson)[0])


def test_udf_layer_rates_and_freezing_match_torch():
    """SHEETDL.MLP_TRAIN's lr_layer1 and freeze_steps are the workbook's --lr LO:HI and
    --freeze-steps: torch's parameter groups and requires_grad toggling."""
    X, y = mlp.curve()
    lesson = mlp_book.make_lesson(X, y, steps=12, seed=2, optimizer="nadam", lr=(0.005, 0.05),
                                  freeze_steps=4)
    want = torch_replay(lesson)
    table = udfs.mlp_train(X, y, 6, 12, 0.05, "nadam", 2, None, "loss", None, None, 0.005, 4)
    np.testing.assert_allclose([r[1] for r in table[1:]], want[0], rtol=1e-9)
    with pytest.raises(udfs.UdfError, match="freeze_steps must be a whole number from 0 to 11"):
        udfs.mlp_train(X, y, 6, 12, 0.05, "nadam", 2, None, "loss", None, None, None, 12)


def test_layer_rate_and_freeze_refusals():
    X, y = mlp.curve()
    for kw, message in ((dict(lr=(0.01, 0.1), schedule="cosine"), "--lr LO:HI with --schedule"),
                        (dict(freeze_steps=5, steps=5), "--freeze-steps must be from 0 to 4")):
        with pytest.raises(ValueError, match=re.escape(message)):
            mlp_book.make_lesson(X, y, **{"steps": 10, **kw})
    with pytest.raises(ValueError, match="--lrfind with --lr LO:HI or --freeze-steps"):
        mlp_book.make_finder(mlp_book.make_lesson(X, y, steps=10, freeze_steps=2))


def test_dropout_status_and_an_edited_mask(tmp_path):
    """The default network with dropout 0.5: the status says the training loss is above the
    eval loss, as expected; flipping one mask cell on the masks sheet retrains the sheet as
    torch does with that mask; --lrfind with --dropout is refused with the reason."""
    X, y = mlp.curve()
    lesson = mlp_book.make_lesson(X, y, steps=30, dropout=0.5)
    path = xlsx.write(mlp_book.build(lesson), tmp_path / "d.xlsx")
    wb = verify.recalculated(path)
    status = wb.model.get_cell_value(wb.index["train"], *_status_cell(path))
    assert status.endswith("; dropout: training loss above eval loss, as expected"), status
    masks = lesson.masks.copy()
    masks[0, 2, 1] = 1 - masks[0, 2, 1]
    si = wb.index["masks"]
    wb.model.set_user_input(si, 2 + 2, 3, str(int(masks[0, 2, 1])))  # step 1, example 3, unit 2
    wb.model.evaluate()
    edited = mlp_book.make_lesson(X, y, steps=30, dropout=0.5, masks=masks)
    np.testing.assert_allclose(wb.values("loss_trace"), torch_replay(edited, eval_losses=[])[0],
                               rtol=1e-9, atol=1e-12)
    assert wb.values("loss_trace")[0] != lesson.trace.steps[0].loss
    with pytest.raises(ValueError, match="--lrfind with --dropout"):
        mlp_book.make_finder(lesson)


def _status_cell(path):
    """(row, column), 1-based, of the train sheet's status: the cell starting "=IF(" under
    the inputs whose text names the loss."""
    ws = openpyxl.load_workbook(path)["train"]
    for row in ws.iter_rows(min_row=1, max_row=12):
        for c in row:
            text = c.value
            if isinstance(text, str) and text.startswith("=IF(") and "training fine" in text:
                return c.row, c.column
    raise AssertionError("no status cell")


def default_book(tmp_path, steps=4):
    X, y = mlp.curve()
    lesson = mlp_book.make_lesson(X, y, steps=steps)
    return lesson, xlsx.write(mlp_book.build(lesson), tmp_path / "mlp.xlsx")


def block_scalars(wb, block_row):
    """{label: value} of a block's scalar rows (labels on the block's first row)."""
    si = wb.index["train"]
    out = {}
    for c in range(2, 12):
        label = wb.model.get_cell_value(si, block_row, c)
        if isinstance(label, str) and label:
            out[label] = wb.model.get_cell_value(si, block_row + 1, c)
    return out


def step_rows(path):
    """1-based sheet rows of each block's label row ("step t" in column A)."""
    ws = openpyxl.load_workbook(path)["train"]
    return {int(m.group(1)): c.row for c in ws["A"]
            if isinstance(c.value, str) and (m := re.fullmatch(r"step (\d+)", c.value))}


def test_finite_difference_matches_backprop(tmp_path):
    """The sheet's numeric ∂L/∂W1₁₁ against torch autograd's ∂L/∂W1[0, 0] at step 1. Between
    ReLU kinks the loss is a quadratic in W1₁₁, so the central difference has no truncation
    error: for small h it agrees to rounding (ε·L/h); an h large enough to push an example
    across its kink makes the error visible."""
    lesson, path = default_book(tmp_path)
    row = step_rows(path)[1]
    W1, b1, W2, b2 = (torch.tensor(v, requires_grad=True)
                      for v in lesson.shape.unpack(lesson.theta0))
    X, y = torch.tensor(lesson.X), torch.tensor(lesson.y)
    pred = (torch.relu(X @ W1.T + b1) @ W2.T).squeeze(1) + b2
    loss = torch.nn.functional.mse_loss(pred, y)
    loss.backward()
    autograd = W1.grad[0, 0].item()
    fd_cell = openpyxl.load_workbook(path).defined_names["fd_h"].attr_text
    col = fd_cell.split("!")[1].replace("$", "")
    errors = {}
    for h in (None, 1e-2, 1e-3, 1.0):
        wb = verify.recalculated(path)
        if h is not None:
            wb.model.set_user_input(wb.index["train"], int(col[1:]), ord(col[0]) - 64, str(h))
            wb.model.evaluate()
        got = block_scalars(wb, row)
        assert got["backprop"] == pytest.approx(autograd, rel=1e-12)
        errors[h] = abs(got["fd check"] - autograd)
    eps = np.finfo(float).eps
    for h in (mlp_book.FD_H, 1e-2, 1e-3):
        assert errors[None if h == mlp_book.FD_H else h] <= 100 * eps * loss.item() / h, errors
    z = lesson.X[:, 0] * lesson.theta0[0] + lesson.theta0[lesson.shape.hidden]
    assert np.any(np.abs(z) < np.abs(lesson.X[:, 0]))  # h = 1 crosses a kink ...
    assert errors[1.0] > 1e-6                           # ... and it shows


def test_a_dead_relu_is_visible_and_gets_no_gradient(tmp_path):
    """Typing a very negative starting b1 for unit 1 kills it: its 'active on' count and
    ∂L/∂W1, ∂L/∂b1 are 0, the trace counts one dead ReLU, and the recalculated losses are
    torch's for that start."""
    lesson, path = default_book(tmp_path)
    ws = openpyxl.load_workbook(path)
    b1 = ws.defined_names["b1_init"].attr_text.split("!")[1].replace("$", "").split(":")[0]
    wb = verify.recalculated(path)
    si = wb.index["train"]
    m = re.fullmatch(r"([A-Z]+)(\d+)", b1)
    col = sum((ord(ch) - 64) * 26 ** i for i, ch in enumerate(reversed(m.group(1))))
    wb.model.set_user_input(si, int(m.group(2)), col, "-100")
    wb.model.evaluate()
    assert list(wb.values("dead_trace")) == [1.0] * lesson.steps
    theta0 = lesson.theta0.copy()
    theta0[lesson.shape.hidden * lesson.shape.features] = -100.0  # b1[0]
    want = torch_replay(lesson, theta0)
    np.testing.assert_allclose(wb.values("loss_trace"), want[0], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(wb.values("W1_final")[0], lesson.theta0[0], rtol=0, atol=0)
    # step 1's "active on" row and unit 1's gradient row
    sheet = openpyxl.load_workbook(path)["train"]
    first = step_rows(path)[1]
    active = next(c.row for c in sheet["A"] if c.value == "active on" and c.row > first)
    mask_col = next(c.column for c in sheet[first + 2] if c.value == "relu' u1")
    assert wb.model.get_cell_value(si, active, mask_col) == 0
    grad_col = next(c.column for c in sheet[active + 2] if c.value == "∂L/∂θ (layer 1)")
    unit1 = next(c.row for c in sheet["A"] if c.value == "unit 1" and c.row > active)
    assert [wb.model.get_cell_value(si, unit1, grad_col + j) for j in range(2)] == [0, 0]


def test_default_lesson_bends_toward_the_curve(tmp_path):
    """The default build: six units on y = sin(x), the loss falling by over 10× and the
    fit chart and loss chart side by side on the first screen."""
    X, y = mlp.curve()
    lesson = mlp_book.make_lesson(X, y)
    assert lesson.trace.steps[-1].loss < lesson.trace.steps[0].loss / 10
    path = xlsx.write(mlp_book.build(lesson), tmp_path / "m.xlsx")
    ws = openpyxl.load_workbook(path)["train"]
    anchors = [(c.anchor._from.row, c.anchor._from.col) for c in ws._charts]
    assert anchors == [(6, 5), (22, 5)]  # F7: the fit, F23: the loss


def test_udfs_match_torch(built):
    """SHEETDL.MLP_TRAIN's losses and trained network and SHEETDL.MLP_PREDICT's ŷ against
    torch, for the seeded start the lesson uses."""
    X, y = mlp.curve()
    lesson = mlp_book.make_lesson(X, y, steps=30, seed=3, optimizer="nadam")
    losses, W1, b1, W2, b2 = torch_replay(lesson)
    table = udfs.mlp_train(X, y, 6, 30, None, "nadam", 3)
    assert table[0] == ["step", "MSE", "dead ReLUs"]
    np.testing.assert_allclose([r[1] for r in table[1:]], losses, rtol=1e-9)
    params = udfs.mlp_train(X, y, 6, 30, None, "nadam", 3, 0.0, "params")
    P = np.array([[np.nan if v == "" else v for v in r] for r in params])
    np.testing.assert_allclose(P[:-1, 0], W1, rtol=1e-9)
    np.testing.assert_allclose(P[:-1, 1], b1, rtol=1e-9)
    np.testing.assert_allclose(P[:-1, 2], W2, rtol=1e-9)
    np.testing.assert_allclose(P[-1, 2], b2[0], rtol=1e-9)
    net_in = torch.tensor(X)
    want = (torch.relu(net_in @ torch.tensor(W1.reshape(6, 1)).T + torch.tensor(b1))
            @ torch.tensor(W2) + torch.tensor(b2)).numpy()
    got = udfs.mlp_predict(X, W1.reshape(6, 1), b1, W2, b2)
    np.testing.assert_allclose(got.ravel(), want, rtol=1e-12)


def test_udf_dropout_matches_torch():
    """SHEETDL.MLP_TRAIN with dropout draws the workbook's masks from the seed: its losses
    and eval losses are torch's with those masks; with batchnorm TRUE, torch's BatchNorm1d
    (losses, eval losses, W1 | γ | β | W2)."""
    X, y = mlp.curve()
    lesson = mlp_book.make_lesson(X, y, steps=25, seed=4, optimizer="sgd", dropout=0.3)
    eval_losses = []
    losses = torch_replay(lesson, eval_losses=eval_losses)[0]
    table = udfs.mlp_train(X, y, 6, 25, None, "sgd", 4, None, "loss", 0.3)
    assert table[0] == ["step", "MSE", "dead ReLUs", "eval MSE"]
    np.testing.assert_allclose([r[1] for r in table[1:]], losses, rtol=1e-9)
    np.testing.assert_allclose([r[3] for r in table[1:]], eval_losses, rtol=1e-9)
    lesson = mlp_book.make_lesson(lesson.X[1::2], lesson.y[1::2], steps=15, seed=4,
                                  optimizer="adam", batchnorm=True)
    eval_losses = []
    want = torch_replay(lesson, eval_losses=eval_losses)
    table = udfs.mlp_train(lesson.X, lesson.y, 6, 15, None, "adam", 4, None, "loss", None, True)
    np.testing.assert_allclose([r[1] for r in table[1:]], want[0], rtol=1e-9)
    np.testing.assert_allclose([r[3] for r in table[1:]], eval_losses, rtol=1e-9)
    params = np.array(udfs.mlp_train(lesson.X, lesson.y, 6, 15, None, "adam", 4, None, "params",
                                     None, True)[:-1])
    tuned = mlp_book.make_lesson(lesson.X, lesson.y, steps=15, seed=4, optimizer="adam",
                                 batchnorm=True, bn_momentum=0.3, bn_eps=1e-3)
    eval_tuned = []
    want_tuned = torch_replay(tuned, eval_losses=eval_tuned)
    table = udfs.mlp_train(lesson.X, lesson.y, 6, 15, None, "adam", 4, None, "loss", None, True,
                           None, None, 0.3, 1e-3)
    np.testing.assert_allclose([r[1] for r in table[1:]], want_tuned[0], rtol=1e-9)
    np.testing.assert_allclose([r[3] for r in table[1:]], eval_tuned, rtol=1e-9)
    with pytest.raises(udfs.UdfError, match="bn_momentum set batch norm"):
        udfs.mlp_train(lesson.X, lesson.y, 6, 15, None, "adam", 4, None, "loss", None, None,
                       None, None, 0.3)
    for col, w in enumerate(want[1:5]):  # W1, γ, β, W2
        np.testing.assert_allclose(params[:, col], w, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("call,message", [
    (lambda: udfs.mlp_train([[1], [2]], [[1]]), "x has 2 examples"),
    (lambda: udfs.mlp_train([[1], [2]], [[1], [2]], 4, 10, None, "adam", 0, 0, "loss", 1),
     "dropout 1: must be at least 0 and below 1"),
    (lambda: udfs.mlp_train([[1], [2]], [[1], [2]], 0.5), "hidden must be a whole number"),
    (lambda: udfs.mlp_train([[1], [2]], [[1], [2]], 4, 10, None, "lion"),
     "optimizer must be one of"),
    (lambda: udfs.mlp_train([[1], [2]], [[1], [2]], 4, 10, -1), "lr must be a positive"),
    (lambda: udfs.mlp_train([[1], [2]], [[1], [2]], 4, 10, None, "adam", 0, 0, "weights"),
     'output must be "loss" or "params"'),
    (lambda: udfs.mlp_train([[1.0]] * 1000, [[1.0]] * 1000, 1000, 1000000),
     "past the 2,000,000,000 a call may take"),
    (lambda: udfs.mlp_predict([[1, 2], [3, 4]], [[1]], [0], [1], [0]), "x has 2 features"),
    (lambda: udfs.mlp_predict([[1]], [[1], [2]], [0], [1, 1], [0]), "b1 and W2 need 2"),
])
def test_udf_arguments_are_checked(call, message):
    with pytest.raises(udfs.UdfError, match=re.escape(message)):
        call()


def test_bad_input_gets_one_line(tmp_path):
    from sheetdl.lessons import data

    f = tmp_path / "p.csv"
    f.write_text("x,y\n1,2\n\n\n3,oops\n")  # blank lines still count as lines
    with pytest.raises(data.DataError, match=r"p.csv, line 5, column 2: 'oops' is not a number"):
        mlp_book.read_csv(f)
    f.write_text("x1,x2,t\n1,2,3\n4,5,6\n")
    X, y, names, target = mlp_book.read_csv(f)
    assert names == ["x1", "x2"] and target == "t" and X.shape == (2, 2)
    f.write_text("a,b,c,t\n1,2\n3,4\n")  # a header naming columns the data lacks
    with pytest.raises(data.DataError, match=r"line 1: the header names 4 columns, the data "
                                             r"has 2"):
        mlp_book.read_csv(f)
    with pytest.raises(ValueError, match="--hidden must be from 1 to 64"):
        mlp_book.make_lesson(X, y, hidden=65)
    with pytest.raises(ValueError, match="formula cells, past the"):
        mlp_book.make_lesson(np.zeros((500, 1)), np.zeros(500), hidden=64, steps=500)


def test_udf_takes_the_optimizers_own_weight_decay():
    """adamw's default weight decay (0.01) unless told otherwise, as the workbook does."""
    X, y = mlp.curve()
    lesson = mlp_book.make_lesson(X, y, steps=8, optimizer="adamw")
    assert lesson.opt.weight_decay == 0.01
    table = udfs.mlp_train(X, y, 6, 8, None, "adamw")
    np.testing.assert_allclose([r[1] for r in table[1:]], torch_replay(lesson)[0], rtol=1e-9)


def test_fit_panel_lists_examples_in_order_of_the_feature(tmp_path):
    """Unsorted data: the panel (which the fit chart draws as a line) runs in order of x,
    each row's ŷ still its own example's, and every band column has a width."""
    rng = np.random.default_rng(5)
    X = np.round(rng.uniform(-3, 3, (12, 1)), 2)
    lesson = mlp_book.make_lesson(X, np.sin(X[:, 0]), steps=3)
    path = xlsx.write(mlp_book.build(lesson), tmp_path / "u.xlsx")
    ws = openpyxl.load_workbook(path)["train"]
    head = next(c for row in ws.iter_rows(max_row=30) for c in row if c.value == "ŷ at step")
    wb = verify.recalculated(path)
    si = wb.index["train"]
    rows = range(head.row + 1, head.row + 13)
    xs = [wb.model.get_cell_value(si, r, head.column - 2) for r in rows]
    yhat = [wb.model.get_cell_value(si, r, head.column) for r in rows]
    assert xs == sorted(xs) and sorted(xs) == sorted(X[:, 0].tolist())
    order = np.argsort(X[:, 0], kind="stable")
    np.testing.assert_allclose(yhat, lesson.trace.steps[-1].yhat[order], rtol=1e-12)
    fd_col = next(c.column for c in ws[step_rows(path)[1] + 2] if c.value == "L(W1₁₁ − h)")
    assert ws.column_dimensions[openpyxl.utils.get_column_letter(fd_col)].width >= 10
