"""torch.optim stepping per sample on y = b + a·x: the ground truth for presets."""
import numpy as np
import torch

from sheetdl.math import optim


def torch_optimizer(kind: str, opt: optim.Optimizer, params):
    o = opt
    if kind in ("sgd", "momentum", "nesterov"):
        return torch.optim.SGD(params, lr=o.lr, momentum=getattr(o, "momentum", 0.0),
                               dampening=getattr(o, "dampening", 0.0),
                               weight_decay=o.weight_decay, nesterov=getattr(o, "nesterov", False))
    if kind == "rmsprop":
        return torch.optim.RMSprop(params, lr=o.lr, alpha=o.alpha, eps=o.eps,
                                   weight_decay=o.weight_decay, momentum=o.momentum,
                                   centered=o.centered)
    if kind in ("adam", "adamw"):
        cls = torch.optim.AdamW if kind == "adamw" else torch.optim.Adam
        return cls(params, lr=o.lr, betas=(o.beta1, o.beta2), eps=o.eps,
                   weight_decay=o.weight_decay, amsgrad=o.amsgrad)
    if kind == "adagrad":
        return torch.optim.Adagrad(params, lr=o.lr, lr_decay=o.lr_decay, eps=o.eps,
                                   weight_decay=o.weight_decay,
                                   initial_accumulator_value=o.initial_accumulator_value)
    if kind == "adamax":
        return torch.optim.Adamax(params, lr=o.lr, betas=(o.beta1, o.beta2), eps=o.eps,
                                  weight_decay=o.weight_decay)
    if kind == "nadam":
        return torch.optim.NAdam(params, lr=o.lr, betas=(o.beta1, o.beta2), eps=o.eps,
                                 weight_decay=o.weight_decay, momentum_decay=o.momentum_decay)
    raise ValueError(kind)


def torch_scheduler(o, sched):
    """torch.optim.lr_scheduler for a sheetdl ``schedules.Schedule`` (torch convention)."""
    S = torch.optim.lr_scheduler
    if sched is None or sched.kind == "constant":
        return None
    if sched.kind == "onecycle":
        return S.OneCycleLR(o, max_lr=sched.lr_max, total_steps=sched.steps,
                            pct_start=sched.pct_start, div_factor=sched.div,
                            final_div_factor=sched.div_final, anneal_strategy="cos",
                            three_phase=False, cycle_momentum=bool(sched.cycles),
                            base_momentum=sched.mom_min, max_momentum=sched.mom_max)
    if sched.kind == "cosine":
        return S.CosineAnnealingLR(o, T_max=sched.steps, eta_min=sched.lr_min)
    if sched.kind == "step":
        return S.StepLR(o, step_size=sched.step_size, gamma=sched.gamma)
    if sched.kind == "exp":
        return S.ExponentialLR(o, gamma=sched.gamma)
    raise ValueError(sched.kind)


def torch_trace(kind, opt, x, y, epochs, b_init, a_init, sched=None):
    """(b after each step, a after each step, loss at each step) from torch.optim.

    torch keeps scalar optimizer state (NAdam's mu_product, step counts) in
    float32 unless the default dtype is float64, which costs NAdam ~1e-9; the
    comparison is with torch computing in float64 throughout.
    """
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        return _torch_trace(kind, opt, x, y, epochs, b_init, a_init, sched)
    finally:
        torch.set_default_dtype(previous)


def _torch_trace(kind, opt, x, y, epochs, b_init, a_init, sched=None):
    b = torch.tensor(b_init, dtype=torch.float64, requires_grad=True)
    a = torch.tensor(a_init, dtype=torch.float64, requires_grad=True)
    o = torch_optimizer(kind, opt, [b, a])
    scheduler = torch_scheduler(o, sched)
    bs, as_, losses, lrs = [], [], [], []
    for _ in range(epochs):
        for xi, yi in zip(x, y):
            o.zero_grad()
            loss = (b + a * float(xi) - float(yi)) ** 2
            loss.backward()
            lrs.append(o.param_groups[0]["lr"])
            o.step()
            if scheduler is not None:
                scheduler.step()
            bs.append(b.item())
            as_.append(a.item())
            losses.append(loss.item())
    if sched is not None:
        return np.array(bs), np.array(as_), np.array(losses), np.array(lrs)
    return np.array(bs), np.array(as_), np.array(losses)


def softmax_torch_replay(lesson):
    """The softmax lesson in torch: F.cross_entropy, full batch, the same init and
    optimizer (and lr scheduler), in float64."""
    prev = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        W = torch.tensor(lesson.W0, requires_grad=True)
        b = torch.tensor(lesson.b0, requires_grad=True)
        # one flat parameter, like the sheet's θ: the update rules are element-wise
        theta = torch.nn.Parameter(torch.cat([W.detach().ravel(), b.detach()]))
        opt = torch_optimizer(lesson.kind, lesson.opt, [theta])
        scheduler = torch_scheduler(opt, lesson.schedule)
        X, y = torch.tensor(lesson.X), torch.tensor(lesson.labels)
        k, d = lesson.W0.shape
        losses = []
        for _ in range(lesson.steps):
            opt.zero_grad()
            Wt, bt = theta[:k * d].reshape(k, d), theta[k * d:]
            loss = torch.nn.functional.cross_entropy(X @ Wt.T + bt, y)
            loss.backward()
            opt.step()
            if scheduler is not None:
                scheduler.step()
            losses.append(loss.item())
        return np.array(losses), theta.detach()[:k * d].numpy(), theta.detach()[k * d:].numpy()
    finally:
        torch.set_default_dtype(prev)
