"""Helpers shared by the trainer tests: the tiny config, training it in this process or in a
child process, reading its losses back, a poisoned loss op and a host-read counter.

The token cache these take is the session fixture ``cache`` of ``conftest.py``.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from analysis.common import records
from scaling.train import trainer as trainer_mod
from scaling.config import from_overrides, resolve
from scaling.train.run import train

ROOT = Path(__file__).resolve().parents[1]

#: A ~41k-parameter model (d=32, 2 layers) on 40 standard-library files; 1,024-token steps.
TINY = ["model=nano", "arch.d_model=32", "arch.n_heads=2", "seq_len=64", "batch_tokens=1024", "threads=1",
        "data.max_files=40", "data.val_frac=0.2", "data.val_tokens=4096", "log_every=1", "optim.lr=1e-2",
        "progress=none"]


def tiny_overrides(cache, out, *extra) -> list:
    """The tiny config's overrides, writing to ``out`` with its token cache in ``cache``."""
    return TINY + [f"data.cache_dir={cache}", f"out={out}", *extra]


def losses(run_dir, key="train_loss"):
    return [r[key] for r in records.read_metrics(run_dir)]


def run(cache, out, *extra) -> dict:
    return train(from_overrides(tiny_overrides(cache, out, *extra)))


def poison(monkeypatch, calls):
    """Make the loss op return NaN on the given calls (1-based): a stand-in for a blow-up."""
    from scaling import model as model_mod
    from scaling.kernels import Ops, get_ops

    real = get_ops("eager")
    n = {"calls": 0}

    def lce(h, w, t, **kw):
        n["calls"] += 1
        out = real.linear_cross_entropy(h, w, t, **kw)
        return out * float("nan") if n["calls"] in calls else out

    monkeypatch.setattr(model_mod, "get_ops", lambda name: Ops("poisoned", real.rms_norm, real.swiglu,
                                                                real.apply_rope, lce))


def start_train(cache, out, extra) -> subprocess.Popen:
    """``scaling train`` of the tiny run with ``extra`` in its own process (to be killed)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-m", "scaling", "train", *tiny_overrides(cache, out, *extra)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_rows(proc, out, n, timeout=120.0) -> int:
    """Block until metrics.jsonl has n complete rows; fail if the run ends first."""
    path = out / records.METRICS_FILE
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None:
            pytest.fail(f"the run ended before it could be interrupted: {proc.stderr.read()[-2000:]}")
        if path.exists():
            rows = path.read_text().count("\n")
            if rows >= n:
                return rows
        time.sleep(0.02)
    proc.kill()
    pytest.fail("timed out waiting for the run to log")


class HostReads(TorchDispatchMode):
    """Device-to-host reads made while ``trainer`` is at each step, as ``{step: count}``.

    AdamW's step counters are left out: torch keeps them on the host even when the
    parameters are on a GPU (unless ``capturable``), so reading them waits for nothing."""

    def __init__(self, trainer):
        super().__init__()
        self.trainer, self.by_step = trainer, {}

    def count(self, t) -> None:
        if any(t is s.get("step") for s in self.trainer.opt.state.values()):
            return
        step = getattr(self.trainer, "step", None)
        if step:
            self.by_step[step] = self.by_step.get(step, 0) + 1

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten._local_scalar_dense.default:
            self.count(args[0])
        return func(*args, **(kwargs or {}))


def counted_run(monkeypatch, over):
    """Train ``over`` with every host read counted; (reads by step, summary, plan)."""
    seen = {}
    run = trainer_mod.Trainer.run

    def counted(self):
        with HostReads(self) as mode:
            seen["mode"] = mode
            real = {name: getattr(torch.Tensor, name) for name in ("tolist", "numpy")}
            for name, f in real.items():  # not dispatched on CPU tensors: count them by hand
                def wrapped(t, *a, _real=f, **k):
                    mode.count(t)
                    return _real(t, *a, **k)

                setattr(torch.Tensor, name, wrapped)
            try:
                return run(self)
            finally:
                for name, f in real.items():
                    setattr(torch.Tensor, name, f)

    monkeypatch.setattr(trainer_mod.Trainer, "run", counted)
    cfg = from_overrides(over)
    s = train(cfg)
    return seen["mode"].by_step, s, resolve(cfg, 256, 1)


def bad_input_argv(argv, work, cache) -> list[str]:
    """A bad-input case's command line with ``{d}`` (its work directory) and ``{cache}``
    filled in; a ``train`` case also gets the tiny model and corpus slice, writing under {d}/run."""
    out = [a.format(d=work, cache=cache) for a in argv]
    if out[0] == "train":
        out = ["train", *TINY, f"data.cache_dir={cache}", f"out={work}/run", *out[1:]]
    return out


def mtimes(d) -> dict:
    """Every path under ``d`` with its modification time: what a refused command may not change."""
    from pathlib import Path

    return {str(p.relative_to(d)): p.stat().st_mtime_ns for p in Path(d).rglob("*")}
