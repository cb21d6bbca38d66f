"""What a planned sweep will cost in time on this machine, and what its plan warns about.

:func:`estimate_times` gives each planned run (:class:`sweeps.launch.PlannedRun`) a
training-time estimate from a tokens/s measured on the current device, from one of two
sources, named in each run's ``estimate_from``:

``sweep``
    A run of the same shape (parameters, batch and sequence length) already in the sweep
    directory, trained on a device of the same name: its summary's mean training
    throughput. A resumed run is timed for the tokens it has left.
``probe``
    A short timed probe: the run's model on this device, a few optimizer steps at the
    run's micro-batch after one untimed warm-up step (which absorbs one-off costs); the
    median step time counts (:func:`probe_tokens_per_s`). A shape too large to probe
    quickly takes the FLOP/s of the largest probed shape,
    scaled by its detailed FLOPs per token (``probe, scaled``); larger models usually use
    a device better, so that estimate errs long.

The estimate counts training steps only: validation, checkpoints and WSD branches add to
it (branches about their share of the tokens).

:func:`plan_warnings` condenses the runs' data warnings (:func:`scaling.data.corpus.data_warnings`:
a preset much larger than its name, a budget of more than one epoch) into one line each.
"""
# Deferred imports: scaling.train.preflight and scaling.model (torch) are imported inside
# estimate_times and probe_tokens_per_s, so that a plan without estimates (`scaling sweep
# --dry-run --no-estimate`: duration, plan_warnings) loads no torch; analysis.common.records and
# analysis.common.text are light, deferred for no gain.
from __future__ import annotations

import time
from typing import Dict, List, Optional, Sequence

#: Seconds of timed probe steps per shape (after one untimed warm-up step), and the most steps.
PROBE_SECONDS = 0.2
PROBE_MAX_STEPS = 4
#: Shapes whose one probe step is expected above this many seconds are not probed but
#: scaled from a smaller probe, so that a dry run stays quick (total well under a minute).
PROBE_MAX_STEP_SECONDS = 0.5


#: Probe results of this process, by device name, shape, batch and sequence length: a
#: second dry run in one process reuses them, so it is quick and prints the same plan.
_PROBED: Dict[tuple, float] = {}


def estimate_times(jobs: Sequence, device: str = "auto") -> str:
    """Fill in ``tokens_per_s``, ``seconds`` and ``estimate_from`` of each job that
    resolved; returns the name of the device the estimate is for."""
    import torch

    from analysis.common.records import RecordError, find_run_dirs, read_summary
    from scaling.train import preflight

    dev = preflight.resolve_device(device)
    measured: Dict[tuple, float] = {}
    trained: Dict = {}
    for root in {j.run_dir.parent for j in jobs}:
        for run_dir in find_run_dirs(root) if root.is_dir() else ():
            try:
                s = read_summary(run_dir)
            except RecordError:
                continue
            if s["status"] in ("resumable", "running"):  # a resumed run trains only what is left
                trained[run_dir] = int(s.get("tokens_trained") or 0)
            if s.get("tokens_per_s"):
                key = (s.get("device"), s["params"], s.get("batch_tokens"), (s.get("model") or {}).get("seq_len"))
                measured.setdefault(key, float(s["tokens_per_s"]))
    default_threads = torch.get_num_threads()
    flops_per_s: Dict[str, float] = {}  # device name (with threads) -> best probed FLOP/s
    probed = _PROBED
    names = []
    try:
        for j in sorted((j for j in jobs if j.plan is not None), key=lambda j: j.plan.flops_per_token):
            # smallest first: their FLOP/s decides whether the larger shapes are probed
            torch.set_num_threads(j.config.threads or default_threads)  # a run's device name counts its threads
            here = preflight.device_name(dev)
            names.append(here)
            key = (here, j.params, j.plan.batch_tokens, j.plan.model.seq_len)
            probe_key = key + (j.plan.micro_batch, j.plan.grad_accum, j.config.kernels, j.config.precision)
            if key in measured:
                j.tokens_per_s, j.estimate_from = measured[key], "sweep"
            elif probe_key not in probed and here in flops_per_s and (
                    j.plan.flops_per_token * j.plan.batch_tokens / flops_per_s[here] > PROBE_MAX_STEP_SECONDS):
                j.tokens_per_s, j.estimate_from = flops_per_s[here] / j.plan.flops_per_token, "probe, scaled"
            else:
                if probe_key not in probed:
                    probed[probe_key] = probe_tokens_per_s(j.config, j.plan, dev)
                j.tokens_per_s, j.estimate_from = probed[probe_key], "probe"
                flops_per_s[here] = max(flops_per_s.get(here, 0.0), j.tokens_per_s * j.plan.flops_per_token)
            j.seconds = max(0, j.tokens - (trained.get(j.run_dir, 0) if j.action == "resume" else 0)) / j.tokens_per_s
    finally:
        torch.set_num_threads(default_threads)
        if dev.type == "cuda":
            torch.cuda.empty_cache()
    return ", ".join(sorted(set(names))) or preflight.device_name(dev)


def probe_tokens_per_s(cfg, plan, device) -> float:
    """Training tokens/s of ``plan``'s model on ``device`` with this process's torch
    threads: optimizer steps (forward, backward, AdamW) on random tokens at the run's
    micro-batch and accumulation, in the precision and kernels the run would use. After
    one untimed warm-up step, steps are timed until :data:`PROBE_SECONDS` have passed (at
    least 2, at most :data:`PROBE_MAX_STEPS`); the median step time counts, so one step
    slowed by another process on a shared machine does not decide the estimate."""
    import contextlib
    import statistics

    import torch

    from scaling.train import preflight
    from scaling.model import Transformer

    kernels = preflight.choose_kernels(cfg.kernels, device)
    precision = cfg.precision if cfg.precision != "auto" else ("bf16" if device.type == "cuda" else "fp32")
    autocast = (torch.autocast(device.type, dtype=torch.bfloat16) if precision == "bf16"
                else contextlib.nullcontext())
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    model = Transformer(plan.model, kernels=kernels).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.randint(0, plan.model.vocab_size, (plan.micro_batch, cfg.seq_len + 1), generator=gen).to(device)

    def step() -> float:
        t0 = time.perf_counter()
        for _ in range(plan.grad_accum):
            with autocast:
                loss = model(x[:, :-1], x[:, 1:])
            (loss / plan.grad_accum).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - t0

    step()
    times: List[float] = []
    while len(times) < 2 or (sum(times) < PROBE_SECONDS and len(times) < PROBE_MAX_STEPS):
        times.append(step())
    # each process trains its share of the global batch; the others run beside it
    return plan.grad_accum * plan.micro_batch * cfg.seq_len * plan.world_size / statistics.median(times)


def plan_warnings(jobs: Sequence) -> List[str]:
    """The runs' data warnings, one line each: a size warning once per preset, and the
    epochs over all runs that plan more tokens than the corpus holds."""
    from analysis.common.text import si

    out: List[str] = []
    over = [j for j in jobs if j.epochs is not None and j.epochs > 1]
    for j in jobs:
        for w in j.warnings:
            if "epochs of data.source" not in w and w not in out:
                out.append(w)
    if over:
        lo, hi = min(j.epochs for j in over), max(j.epochs for j in over)
        exact = all(j.epochs_exact for j in over)
        span = f"{lo:.3g}" if lo == hi else f"{lo:.3g}-{hi:.3g}"
        t_lo, t_hi = si(min(j.tokens for j in over)), si(max(j.tokens for j in over))
        sizes = {j.train_tokens for j in over}
        corpus = (f"the corpus's {'' if exact else '<= '}{si(over[0].train_tokens)} training tokens" if len(sizes) == 1
                  else "their corpora's training tokens")
        out.append(f"{len(over)} of {len(jobs)} runs plan more tokens ({t_lo if t_lo == t_hi else f'{t_lo}-{t_hi}'}) "
                   f"than {corpus}: {'' if exact else 'at least '}{span} epochs; "
                   f"repeated tokens are worth less than fresh ones (Muennighoff et al. 2023) (fix: a larger "
                   f"corpus, fewer tokens, or data.unique_tokens to study repetition on purpose)")
    return out


def duration(seconds: Optional[float]) -> str:
    """``42 s``, ``3.5 min``, ``2.1 h`` or ``4.0 d``; empty for None."""
    if seconds is None:
        return ""
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("min", 60.0)):
        if seconds >= 1.5 * size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"
