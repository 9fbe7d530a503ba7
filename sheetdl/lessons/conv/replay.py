"""verify's replay of the conv lesson: the train sheet's loss, accuracy and final weights,
recomputed from the named images, labels, start and inputs. Imported by verify only."""
from __future__ import annotations

import numpy as np

from ...math import dropout as inverted_dropout
from ...math import optim
from ...verification.report import TraceCheck, VerifyError
from ...verification.replay.common import (bounded_work, compare, dropout_masks, numbers,
                                           schedule, sheet_hyper)
from . import course, layout
from . import model as conv


def replay(wb, meta: dict, path, rtol, atol) -> list[TraceCheck]:
    if meta.get("course"):
        return replay_course(wb, path, rtol, atol)
    if meta.get("udf"):
        return replay_udf(wb, meta, path, rtol, atol)
    image, steps = meta["image"], meta["steps"]
    sides = range(layout.MIN_SIDE, layout.MAX_SIDE + 1)
    if not (isinstance(image, list) and len(image) == 2
            and all(type(side) is int and side in sides for side in image)):
        raise VerifyError(f"{path}: its sheetdl metadata gives images of {image!r}, not a "
                          "size sheetdl writes: not replayed")
    h, w = image
    labels = np.array(numbers(wb, "y_index", None, path))
    X = np.array(numbers(wb, "X", None, path))
    part = {name: np.array(numbers(wb, name, None, path))
            for name in ("K_init", "kb_init", "Wd_init", "bd_init")}
    k, c = len(part["kb_init"]), len(part["bd_init"])
    shape = conv.Shape(h, w, k, c)
    n = len(labels)
    if n == 0 or X.size != n * h * w:
        raise VerifyError(f"{path}: names X ({X.size} cells) and y_index ({n}) do not hold "
                          f"{h}×{w} images")
    if (part["K_init"].size, part["Wd_init"].size) != (k * conv.TAP ** 2, c * shape.features):
        raise VerifyError(f"{path}: names K_init and Wd_init do not fit {k} kernels and {c} "
                          f"classes of {h}×{w} images")
    if not np.all((labels == np.round(labels)) & (labels >= 0) & (labels < c)):
        raise VerifyError(f"{path}: y_index holds a label that is not a class 0 to {c - 1}")
    kind = meta["optimizer"]
    hyper = sheet_hyper(wb, optim.OPTIMIZERS[kind], meta.get("schedule"), None, path)
    sched = schedule(wb, meta.get("schedule"), None, path, hyper.get("lr"))
    opt = optim.make(kind, **meta["options"], **hyper)
    theta0 = shape.pack(*(part[name] for name in ("K_init", "kb_init", "Wd_init", "bd_init")))
    bounded_work(path, steps * n * h * w * k * (conv.TAP ** 2 + c), steps)
    masks, p = dropout_masks(wb, meta, path, steps, n, shape.features,
                             f"{n} images × {shape.features} features")
    with np.errstate(all="ignore"):
        tr = conv.train(opt, shape, X.reshape(n, h, w), labels.astype(int), theta0, steps,
                        sched, numbers(wb, "fd_h", None, path)[0], masks=masks, dropout=p)
    K, kb, Wd, bd = shape.unpack(tr.theta[-1])
    want = {"loss_trace": [s.loss for s in tr.steps],
            "accuracy_trace": [s.accuracy for s in tr.steps],
            "K_final": K, "kb_final": kb, "Wd_final": Wd, "bd_final": bd}
    if sched is not None:
        want["lr_trace"] = [s["lr"] for s in tr.shown]
    return [compare(wb, "train", name, None, v, rtol, atol) for name, v in want.items()]


def replay_course(wb, path, rtol, atol) -> list[TraceCheck]:
    """``--preset course``: every map and the output, recomputed from the named image and
    weights (a kernel a learner typed over included)."""
    c = course.course()
    read = lambda name, like: _shaped(wb, name, like, path)
    given = course.Course(
        read("course_image", c.image),
        np.stack([read(f"conv1_kernel_{k + 1}", c.conv1[k]) for k in range(course.MAPS)]),
        np.stack([[read(f"conv2_kernel_{k + 1}_{m + 1}", c.conv2[k, m])
                   for m in range(course.MAPS)] for k in range(course.MAPS)]),
        c.dense, c.source)
    values = course.forward(given)
    dense = np.stack([read(f"dense_{k + 1}", values["dense"][k]) for k in range(course.MAPS)])
    values = course.forward(course.Course(given.image, given.conv1, given.conv2,
                                          np.pad(dense, ((0, 0), (0, 0), (0, 1))), c.source))
    checks = []
    for k in range(course.MAPS):
        for name, key in ((f"conv1_map_{k + 1}", "conv1"), (f"conv2_map_{k + 1}", "conv2"),
                          (f"pool_{k + 1}", "pool")):
            checks.append(compare(wb, "course", name, None, values[key][k], rtol, atol))
    checks.append(compare(wb, "course", "course_output", None, values["output"], rtol, atol))
    return checks


def _shaped(wb, name: str, like: np.ndarray, path) -> np.ndarray:
    got = np.array(numbers(wb, name, None, path))
    if got.size != like.size:
        raise VerifyError(f"{path}: name {name} holds {got.size} cells, not the course's "
                          f"{like.size}")
    return got.reshape(like.shape)


def replay_udf(wb, meta: dict, path, rtol, atol) -> list[TraceCheck]:
    """``--udf``: the calls' cached tables, from the start conv_train draws from the seed."""
    image, steps, seed, kernels = meta["image"], meta["steps"], meta["seed"], meta["kernels"]
    sides = range(conv.CALL_MIN_SIDE, conv.CALL_MAX_SIDE + 1)
    if not (isinstance(image, list) and len(image) == 2 and all(
            type(s) is int and s in sides for s in image) and type(seed) is int and seed >= 0
            and type(kernels) is int and 1 <= kernels <= conv.CALL_MAX_KERNELS
            and meta.get("kernel_init") in ("random", "edges")):
        raise VerifyError(f"{path}: its sheetdl metadata is not what sheetdl writes for a "
                          "--udf conv workbook: not replayed")
    h, w = image
    labels = np.array(numbers(wb, "y_index", None, path))
    X = np.array(numbers(wb, "X", None, path))
    n, c = len(labels), len(wb.cells(wb.name_formula("classes", None) or "", 0))
    if n == 0 or X.size != n * h * w:
        raise VerifyError(f"{path}: names X ({X.size} cells) and y_index ({n}) do not hold "
                          f"{h}×{w} images")
    if not np.all((labels == np.round(labels)) & (labels >= 0) & (labels < c)):
        raise VerifyError(f"{path}: y_index holds a label that is not a class 0 to {c - 1}")
    shape = conv.Shape(h, w, kernels, c)
    bounded_work(path, conv.call_work(steps, n, shape), steps)
    opt = optim.make(meta["optimizer"], **meta["options"], lr=numbers(wb, "lr", None, path)[0])
    p = numbers(wb, "dropout", None, path)[0] if meta.get("dropout") else 0.0
    masks = inverted_dropout.draw(steps, n, shape.features, p, seed) if p else None
    with np.errstate(all="ignore"):
        tr = conv.train(opt, shape, X.reshape(n, h, w), labels.astype(int),
                        conv.init_params(shape, seed, meta["kernel_init"]), steps, masks=masks,
                        dropout=p)
    K, kb, Wd, bd = shape.unpack(tr.theta[-1])
    want = {"loss_trace": [s.loss for s in tr.steps],
            "accuracy_trace": [s.accuracy for s in tr.steps],
            "K_final": K, "kb_final": kb, "Wd_final": Wd, "bd_final": bd}
    return [compare(wb, "train", name, None, v, rtol, atol) for name, v in want.items()]
