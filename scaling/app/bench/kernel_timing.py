"""How the kernel benchmark times: ``triton.testing.do_bench`` (CUDA events, median of many
runs) for forward, backward alone, and fused linear cross-entropy's forward + backward with
its peak memory; the device's copy bandwidth as the yardstick; the rule that only a
provider that computes the op correctly gets a time; and the providers of one op and
shape timed in interleaved rounds, so that ratios between them are taken within a round.
"""
# Deferred imports: torch and triton are imported inside the functions, after the Triton
# interpreter may have been switched on (kernel_reports.interpreter_on); analysis.common.rounds is
# light, deferred beside them for no gain, and may move up.
from __future__ import annotations

import sys

from scaling.app.bench import kernel_providers as P


def median_ms(fn, device, warmup, rep, grad_to_none=None):
    """Median ms: CUDA events through ``triton.testing.do_bench`` on a GPU; on the CPU
    (dry runs only) a few wall-clock repeats."""
    if device == "cuda":
        from triton.testing import do_bench

        return do_bench(fn, warmup=warmup, rep=rep, grad_to_none=grad_to_none, return_mode="median")
    import statistics
    import time

    times = []
    for _ in range(3):
        for t in grad_to_none or ():
            t.grad = None
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def copy_bandwidth(device) -> float:
    """Device-to-device copy of 1 GiB (1 MiB on the CPU), bytes read plus written, per second."""
    import torch

    src = torch.empty(1 << (28 if device == "cuda" else 18), dtype=torch.float32, device=device).uniform_()
    dst = torch.empty_like(src)
    ms = median_ms(lambda: dst.copy_(src), device, warmup=25, rep=200)
    return 2 * src.numel() * 4 / (ms * 1e-3)


def time_fwd_bwd(fn, inputs, device):
    """Median ms of forward, and of backward alone (graph retained, replayed)."""
    import torch

    leaves = [t for t in inputs if isinstance(t, torch.Tensor) and t.requires_grad]

    def fwd():
        with torch.no_grad():
            return fn(*inputs)

    t_fwd = median_ms(fwd, device, warmup=10, rep=50)
    out = fn(*inputs)
    outs = out if isinstance(out, tuple) else (out,)
    grads = [torch.randn_like(o) for o in outs]
    t_bwd = median_ms(lambda: torch.autograd.grad(outs, leaves, grads, retain_graph=True), device,
                      warmup=10, rep=50)
    return t_fwd, t_bwd


def time_flce(fn, inputs, device):
    """Median ms of one forward + backward, and its peak extra memory in bytes (CUDA only)."""
    import torch

    h, w, t = inputs

    def step():
        fn(h, w, t).backward()

    ms = median_ms(step, device, warmup=5, rep=30, grad_to_none=[h, w])
    h.grad = w.grad = None
    if device != "cuda":
        return ms, None
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    step()
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() - base
    h.grad = w.grad = None
    return ms, peak


def check(op, name, fn, inputs, bound, failures):
    """(whether ``fn`` computes the op within ``bound`` and may be timed, its error or None);
    a failure is appended to ``failures`` and printed."""
    try:
        err = P.rel_err(op, fn, inputs)
        problem = None if err <= bound else f"relative error {err:.2g} against float64 exceeds {bound:g}"
    except Exception as e:  # noqa: BLE001 - an old Liger, a compile error: the table goes on
        err, problem = None, f"failed to run: {type(e).__name__}: {' '.join(str(e).split())[:160]}"
    if problem:
        failures.append(f"{op} {name}: {problem}; not timed")
        print(f"  {failures[-1]}", file=sys.stderr, flush=True)
        return False, err
    return True, err


def checked_rounds(timer, op, model, provs, inputs, device, bound, failures, default, rounds):
    """Check every provider, then time those that passed in ``rounds`` interleaved rounds
    (:func:`analysis.common.rounds.interleave`: each round times each one once, in an order
    rotated every round). Returns ({name: [timer result per round]}, {name: error}); a
    provider that failed its check has no entry in the first."""
    from analysis.common.rounds import interleave

    errs, ok = {}, []
    for name, fn in provs.items():
        passed, errs[name] = check(op, name, fn, inputs, bound, failures)
        if passed:
            ok.append(name)

    def one(name):
        return lambda: guarded(timer, provs[name], inputs, device, what=f"{op} {name}", default=default)

    def progress(r, name, got):
        ms = got[0] if isinstance(got, tuple) else got
        print(f"  {op:9s} {model:5s} {name:14s} round {r + 1}: "
              + ("failed" if ms is None else f"{ms:8.3f} ms"), file=sys.stderr, flush=True)

    return interleave({name: one(name) for name in ok}, rounds, on_call=progress), errs


def guarded(timer, fn, inputs, device, *, what, default):
    """Run one measurement; a provider that fails (an old Liger, a compile error) costs
    its cell in the table, not the whole run."""
    try:
        return timer(fn, inputs, device)
    except Exception as e:  # noqa: BLE001 - reported, then the table goes on
        print(f"  {what}: failed: {type(e).__name__}: {' '.join(str(e).split())[:200]}", file=sys.stderr)
        return default
