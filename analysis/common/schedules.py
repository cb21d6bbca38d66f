"""Learning-rate schedules: the one definition the trainer runs and the curve laws read.

A schedule is linear warmup to the peak, then one of: cosine decay (Loshchilov & Hutter
2017) to ``final_frac`` of the peak at the end; constant; or warmup-stable-decay
(Hägele et al. 2024), flat until the cooldown and then down to ``final_frac`` along a
linear, 1 - sqrt or cosine shape. The trainer multiplies its peak rate by
:func:`lr_factor` at every step and takes the warmup length and the cooldown start from
:func:`warmup_steps` and :func:`decay_start`; the curve laws (:mod:`analysis.fitting.curves`)
read a :class:`Schedule`, the rate at every step, either rebuilt from a run's logged rows
(:func:`schedule_from_rows`) or planned from the same definition (:func:`planned`).

Torch-free. numpy is imported only where an array is built, so the trainer's config,
which needs the enums and the step arithmetic, stays numpy-free too.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

from .errors import InputError, TableError
from .text import num

if TYPE_CHECKING:
    import numpy as np

__all__ = ["ScheduleKind", "CooldownShape", "lr_factor", "warmup_steps", "cooldown_start", "decay_start",
           "Schedule", "planned", "schedule_from_rows"]


class ScheduleKind(str, Enum):
    cosine = "cosine"      # linear warmup, cosine decay to final_lr_frac at the budget
    constant = "constant"  # linear warmup, then constant
    wsd = "wsd"            # warmup-stable-decay (Hägele et al. 2024)


class CooldownShape(str, Enum):
    linear = "linear"
    sqrt = "sqrt"          # 1 - sqrt: reported to match or beat cosine (Hägele et al. 2024)
    cosine = "cosine"


# --------------------------------------------------------------------------- the definition

def lr_factor(step: int, warmup: int, decay_start: int, total: int, kind: ScheduleKind,
              final_frac: float, shape: CooldownShape = CooldownShape.sqrt) -> float:
    """Multiplier of the peak learning rate at optimizer step ``step`` (1-based).

    Linear warmup over ``warmup`` steps, then: cosine (Loshchilov & Hutter 2017) from the
    warmup's end down to ``final_frac`` at ``total``; constant; or warmup-stable-decay
    (Hägele et al. 2024),
    flat until ``decay_start`` and then down to ``final_frac`` at ``total`` along
    ``shape`` (linear, 1 - sqrt, or cosine).
    """
    if warmup and step <= warmup:
        return step / warmup
    if kind == ScheduleKind.constant:
        return 1.0
    if kind == ScheduleKind.cosine:
        p = (step - warmup) / max(1, total - warmup)
        return final_frac + (1 - final_frac) * 0.5 * (1 + math.cos(math.pi * min(1.0, p)))
    if step <= decay_start:
        return 1.0
    p = min(1.0, (step - decay_start) / max(1, total - decay_start))
    if shape == CooldownShape.linear:
        f = 1 - p
    elif shape == CooldownShape.sqrt:
        f = 1 - math.sqrt(p)
    else:
        f = 0.5 * (1 + math.cos(math.pi * p))
    return final_frac + (1 - final_frac) * f


def warmup_steps(total_steps: int, batch_tokens: int, warmup_frac: float,
                 warmup_tokens: float | None = None) -> int:
    """Warmup length in steps: ``warmup_tokens`` in whole batches if given, else
    ``warmup_frac`` of the run."""
    if warmup_tokens is not None:
        return round(warmup_tokens / batch_tokens)
    return round(warmup_frac * total_steps)


def cooldown_start(total_steps: int, cooldown_frac: float) -> int:
    """Last step before a WSD cooldown of ``cooldown_frac`` of ``total_steps`` (at least
    one step): where the main run starts decaying, and where a branch ending at
    ``total_steps`` forks from the stable phase."""
    return total_steps - max(1, round(cooldown_frac * total_steps))


def decay_start(kind: ScheduleKind, total_steps: int, warmup: int, cooldown_frac: float) -> int:
    """First step of the decay: the warmup's end, or for WSD the cooldown's start (never
    inside the warmup)."""
    if kind == ScheduleKind.wsd:
        return max(warmup, cooldown_start(total_steps, cooldown_frac))
    return warmup


# --------------------------------------------------------------------------- per-step rates

@dataclass
class Schedule:
    """The learning rate at every step 1..T, and where warmup ends.

    ``lr[t-1]`` is eta_t. ``warmup_end`` is the step at which the peak is first reached
    (or the given warmup length): the annealing terms start there.
    """

    lr: np.ndarray
    warmup_end: int
    assumed: str = ""

    @property
    def steps(self) -> int:
        return len(self.lr)

    def cumulative(self) -> np.ndarray:
        """S(t) = sum_{tau<=t} eta_tau for t = 0..T (S(0) = 0)."""
        import numpy as np

        return np.concatenate([[0.0], np.cumsum(self.lr)])

    def decrements(self) -> np.ndarray:
        """eta_{t-1} - eta_t for t = 1..T, zero up to the end of warmup (eta_0 = the peak)."""
        import numpy as np

        d = np.zeros(self.steps)
        w = self.warmup_end
        if w < self.steps:
            prev = np.concatenate([[self.lr[w - 1] if w >= 1 else self.lr[0]], self.lr[w:-1]])
            d[w:] = prev - self.lr[w:]
        return d


def planned(peak_lr: float, total: int, warmup: int, decay_start: int, kind: ScheduleKind,
            final_frac: float, shape: CooldownShape = CooldownShape.sqrt) -> Schedule:
    """The schedule a run will follow, step by step: ``peak_lr * lr_factor(step, ...)``
    for steps 1..``total``, the same numbers the trainer sets (and logs as ``lr``)."""
    import numpy as np

    kind, shape = ScheduleKind(kind), CooldownShape(shape)
    lr = np.array([peak_lr * lr_factor(s, warmup, decay_start, total, kind, final_frac, shape)
                   for s in range(1, total + 1)], dtype=float)
    how = kind.value + (f" with a {shape.value} cooldown from step {decay_start}" if kind == ScheduleKind.wsd
                        else "")
    return Schedule(lr, min(warmup, total), f"{how}, {warmup} warmup steps (planned)")


def schedule_from_rows(steps, lrs, warmup_steps: int | None = None, total_steps: int | None = None) -> Schedule:
    """Rebuild the per-step learning rate from logged (step, lr) rows.

    Between rows the learning rate is interpolated linearly. Before the first row it rises
    linearly from zero: up to the first row by default, or over ``warmup_steps`` and then
    held at the first row's value. ``total_steps`` extends the schedule at the last rate.
    """
    import numpy as np


    steps = np.asarray(steps, dtype=float)
    lrs = np.asarray(lrs, dtype=float)
    ok = np.isfinite(steps) & np.isfinite(lrs)
    steps, lrs = steps[ok], lrs[ok]
    if len(steps) == 0:
        raise TableError("no rows with both step and lr", field="lr", fix="log the learning rate on every row")
    order = np.argsort(steps)
    steps, lrs = steps[order], lrs[order]
    if np.any(lrs < 0):
        raise TableError("negative learning rates", field="lr", fix="check the lr column")
    if steps[0] < 1:
        # a row at step 0 is the state before training; the laws sum over steps 1..t
        keep = steps >= 1
        steps, lrs = steps[keep], lrs[keep]
    T = int(max(steps[-1], total_steps or 0))
    t = np.arange(1, T + 1, dtype=float)
    knots_s, knots_v = list(steps), list(lrs)
    if warmup_steps is not None:
        if warmup_steps < 0:
            raise InputError("warmup_steps must be >= 0", field="warmup_steps")
        w = int(warmup_steps)
        if w > 0 and w < steps[0]:
            knots_s = [0.0, float(w)] + knots_s
            knots_v = [0.0, float(lrs[0])] + knots_v
            assumed = f"linear warmup from 0 over {w} steps, then {num(lrs[0])} up to the first logged row"
        else:
            knots_s = [0.0] + knots_s
            knots_v = [0.0 if w > 0 else float(lrs[0])] + knots_v
            assumed = f"warmup of {w} steps" if w else "no warmup"
    elif steps[0] > 1:
        knots_s = [0.0] + knots_s
        knots_v = [0.0] + knots_v
        assumed = f"linear warmup from 0 up to the first logged row (step {int(steps[0])})"
    else:
        assumed = "the logged learning rates from step 1"
    eta = np.interp(t, knots_s, knots_v)
    if warmup_steps is not None:
        w_end = min(int(warmup_steps), T)
    else:
        # the peak is first reached at the end of warmup
        w_end = int(np.argmax(eta >= eta.max() * (1 - 1e-9))) + 1
    return Schedule(eta, w_end, assumed)
