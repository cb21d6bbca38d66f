"""The learning-rate schedule (analysis.common.schedules) against hand computations of its formulas,
and the trainer's logged rates against the same definition the curve laws read."""
from __future__ import annotations

import math

import numpy as np
import pytest

from analysis.common import records
from analysis.common.schedules import (CooldownShape, ScheduleKind, cooldown_start, decay_start, lr_factor, planned,
                                schedule_from_rows, warmup_steps)
from scaling.config import from_overrides, resolve
from trainer_testing import run

COS, WSD, CONST = ScheduleKind.cosine, ScheduleKind.wsd, ScheduleKind.constant


@pytest.mark.parametrize("step, want", [
    (1, 0.1), (5, 0.5), (10, 1.0),               # linear warmup over 10 steps: step / 10
    # cosine from step 10 to 110 (Loshchilov & Hutter 2017): 0.1 + 0.9 * (1 + cos(pi p)) / 2
    (35, 0.1 + 0.45 * (1 + 2 ** -0.5)),          # p = 1/4, cos = 1/sqrt(2)
    (60, 0.55),                                   # p = 1/2, cos = 0
    (85, 0.1 + 0.45 * (1 - 2 ** -0.5)),          # p = 3/4
    (110, 0.1), (140, 0.1),                       # the end, and past it: the floor
])
def test_cosine(step, want):
    assert lr_factor(step, 10, 10, 110, COS, 0.1) == pytest.approx(want, rel=1e-14, abs=1e-15)


@pytest.mark.parametrize("step, want", [(1, 0.25), (3, 0.75), (4, 1.0), (5, 1.0), (1000, 1.0)])
def test_constant(step, want):
    assert lr_factor(step, 4, 4, 100, CONST, 0.1) == want


@pytest.mark.parametrize("shape, step, want", [
    # warmup 10, stable to step 90, cooldown over steps 91..110 to 0.1 (Hägele et al. 2024)
    (CooldownShape.sqrt, 50, 1.0), (CooldownShape.sqrt, 90, 1.0),
    (CooldownShape.sqrt, 95, 0.1 + 0.9 * 0.5),             # p = 1/4: 1 - sqrt(1/4) = 1/2
    (CooldownShape.sqrt, 100, 0.1 + 0.9 * (1 - 2 ** -0.5)),  # p = 1/2
    (CooldownShape.linear, 95, 0.1 + 0.9 * 0.75),           # 1 - p
    (CooldownShape.linear, 105, 0.1 + 0.9 * 0.25),
    (CooldownShape.cosine, 100, 0.55),                      # (1 + cos(pi / 2)) / 2 = 1/2
    (CooldownShape.cosine, 95, 0.1 + 0.45 * (1 + 2 ** -0.5)),
    (CooldownShape.sqrt, 110, 0.1), (CooldownShape.linear, 120, 0.1),
])
def test_wsd(shape, step, want):
    assert lr_factor(step, 10, 90, 110, WSD, 0.1, shape) == pytest.approx(want, rel=1e-14)
    assert lr_factor(5, 10, 90, 110, WSD, 0.1, shape) == 0.5  # the same warmup


def test_no_warmup_starts_at_the_peak():
    assert lr_factor(1, 0, 0, 100, COS, 0.0) == pytest.approx(0.5 * (1 + math.cos(math.pi / 100)))
    assert lr_factor(1, 0, 0, 100, CONST, 0.0) == 1.0


def test_step_arithmetic():
    assert warmup_steps(100, 8192, 0.05) == 5
    assert warmup_steps(100, 8192, 0.05, warmup_tokens=5e4) == 6  # 50,000 / 8,192 = 6.1 batches
    assert cooldown_start(100, 0.2) == 80
    assert cooldown_start(7, 0.01) == 6  # at least one cooldown step
    assert decay_start(WSD, 100, 5, 0.2) == 80
    assert decay_start(WSD, 100, 90, 0.2) == 90  # never inside the warmup
    assert decay_start(COS, 100, 5, 0.2) == decay_start(CONST, 100, 5, 0.2) == 5


def test_planned_schedule_is_the_rate_at_every_step():
    s = planned(2e-3, 110, 10, 90, "wsd", 0.1, "linear")
    assert s.steps == 110 and s.warmup_end == 10
    assert s.lr[4] == pytest.approx(1e-3) and s.lr[49] == 2e-3 and s.lr[94] == pytest.approx(2e-3 * 0.775)
    assert s.lr[-1] == pytest.approx(2e-4)
    # the annealing terms start where the stable phase ends
    assert np.all(s.decrements()[:90] == 0) and np.all(s.decrements()[90:] > 0)


def test_trainer_logs_the_planned_schedule_and_the_curve_laws_read_it_back(cache, tmp_path):
    over = ["tokens=40960", "schedule.kind=wsd", "schedule.cooldown_shape=cosine", "schedule.warmup_frac=0.1"]
    run(cache, tmp_path / "r", *over)  # 40 steps, every one logged
    rows = records.read_metrics(tmp_path / "r")
    cfg = from_overrides(["model=nano", "batch_tokens=1024", "seq_len=64", "optim.lr=1e-2", *over])
    p = resolve(cfg, 256)
    want = planned(1e-2, p.total_steps, p.warmup_steps, p.decay_start, "wsd", 0.1, "cosine")
    logged = np.array([r["lr"] for r in rows])
    assert np.array_equal(logged, want.lr)  # bit for bit
    back = schedule_from_rows([r["step"] for r in rows], logged)
    assert np.array_equal(back.lr, want.lr) and back.warmup_end == want.warmup_end == 4
