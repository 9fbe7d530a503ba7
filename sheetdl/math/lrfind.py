"""The learning-rate finder's bookkeeping, fastai's ``LRFinder`` semantics.

Training runs with lr_t = lr_min·(lr_max/lr_min)^((t − 1)/N) (``schedules``,
kind ``lrfind``); given each step's lr and loss, ``analyse`` computes what the
finder sheet shows, in the order its formulas compute it:

    avg_t    = β·avg_{t−1} + (1 − β)·loss_t,   avg_0 = 0
    smooth_t = avg_t/(1 − β^t)                  (debiased; fastai's AvgSmoothLoss, β = 0.98)
    best_t   = min(best_{t−1}, smooth_t)
    stopped_t = stopped_{t−1} or smooth_t > stop_factor·best_t   (fastai: 4)

The finder stops after the first step with stopped = 1 (step S; S = N if it
never stops). Like fastai's ``lr_find`` the suggestions skip the first ⌊N/10⌋
steps and the last 5 recorded: the window is ⌊N/10⌋ < t ≤ S − 5.

    minimum  = lr at the window's smallest smoothed loss, ÷ 10
    steep    = lr_{t−1} where (smooth_t − smooth_{t−1})/(ln lr_t − ln lr_{t−1})
               is most negative over pairs inside the window (fastai's ``steep``)

Once stopped (or when the smoothed loss overflows, which stops it too), a
step's best is carried and its smoothed loss is not compared, so a loss that
overflows (#NUM!) does not reach the suggestions.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

SKIP_END = 5


@dataclass
class Finder:
    avg: np.ndarray
    smooth_pow: np.ndarray
    smooth: np.ndarray
    best: np.ndarray
    stopped: np.ndarray
    in_window: np.ndarray
    slope: list            # float, or "" outside the window
    stop_step: int
    lr_at_stop: float
    min_loss: float | str
    lr_at_min: float | str
    lr_min10: float | str  # "" when the window is empty
    min_slope: float | str
    lr_steep: float | str
    loss: np.ndarray | None = None

    def _through_stop(self, values) -> list:
        return [float(v) if t < self.stop_step else "#N/A" for t, v in enumerate(values)]

    @property
    def plot_loss(self) -> list:
        """The loss up to the stop, #N/A after it (charts skip #N/A)."""
        return self._through_stop(self.loss)

    @property
    def plot_smooth(self) -> list:
        return self._through_stop(self.smooth)

    @property
    def smooth_in(self) -> list:
        """The smoothed loss inside the window, "" outside it."""
        return [float(v) if w else "" for v, w in zip(self.smooth, self.in_window)]


def settings(steps=None, smooth_beta=None, stop_factor=None) -> tuple[int, float, float]:
    """The finder's step count, smoothing β and stop factor, fastai's defaults filled in."""
    steps = 100 if steps is None else int(steps)
    beta = 0.98 if smooth_beta is None else float(smooth_beta)
    stop = 4.0 if stop_factor is None else float(stop_factor)
    if steps < 10:
        raise ValueError(f"the lr finder needs at least 10 --steps, got {steps}")
    if not 0 <= beta < 1:
        raise ValueError(f"--smooth-beta must be in [0, 1), got {beta}")
    if not stop > 1:
        raise ValueError(f"--stop-factor must be above 1, got {stop}")
    return steps, beta, stop


def skip_start(steps: int) -> int:
    return int(steps / 10)


def analyse(lr, loss, beta: float = 0.98, stop_factor: float = 4.0) -> Finder:
    lr, loss = np.asarray(lr, float), np.asarray(loss, float)
    n = len(lr)
    avg, pw, smooth, best = (np.empty(n) for _ in range(4))
    stopped = np.zeros(n, dtype=int)
    a, p, b, s_prev = 0.0, 1.0, math.nan, 0
    with np.errstate(all="ignore"):
        for t in range(n):
            a = beta * a + (1 - beta) * loss[t]
            p = p * beta
            sm = a / (1 - p)
            finite = math.isfinite(sm)
            if t == 0:
                b = sm
            elif not s_prev and finite:
                b = min(b, sm)
            s_prev = 1 if (s_prev or not finite or sm > stop_factor * b) else 0
            avg[t], pw[t], smooth[t], best[t], stopped[t] = a, p, sm, b, s_prev
    total = int(stopped.sum())
    stop = n - total + 1 if total > 0 else n
    step = np.arange(1, n + 1)
    in_window = ((step > skip_start(n)) & (step <= stop - SKIP_END)).astype(int)
    slope: list = [""] * n
    for t in range(1, n):
        if in_window[t] and in_window[t - 1]:
            slope[t] = (smooth[t] - smooth[t - 1]) / (math.log(lr[t]) - math.log(lr[t - 1]))
    inside = [smooth[t] for t in range(n) if in_window[t]]
    slopes = [v for v in slope if v != ""]
    if inside:
        min_loss = min(inside)
        lr_at_min = float(lr[next(t for t in range(n) if in_window[t] and smooth[t] == min_loss)])
        lr_min10 = lr_at_min / 10
    else:
        min_loss = lr_at_min = lr_min10 = ""
    if slopes:
        min_slope = min(slopes)
        lr_steep = float(lr[slope.index(min_slope) - 1])
    else:
        min_slope = lr_steep = ""
    return Finder(avg, pw, smooth, best, stopped, in_window, slope, stop, float(lr[stop - 1]),
                  min_loss, lr_at_min, lr_min10, min_slope, lr_steep, loss)
