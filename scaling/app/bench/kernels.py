"""Kernel benchmark: ``python -m scaling.app.bench kernels``.

Per op and shape, times eager PyTorch, ``torch.compile`` of the same function, our
Triton kernels and Liger-Kernel (when importable), forward and backward separately,
with ``triton.testing.do_bench`` (CUDA events, median of many runs), in ``--rounds``
interleaved rounds (each round times every provider once, the order rotated each round;
:mod:`analysis.common.rounds`): a time is the median over the rounds, a ratio is taken within
each round and shown as median (min-max), with a warning when it spreads by more than
10%. For the
element-wise ops it converts our time into achieved bandwidth from the fewest bytes the
op must move (each input read once, each output written once) and compares that with
the device's measured copy bandwidth (a 1 GiB device-to-device copy, bytes read plus
written). For fused linear cross-entropy it also reports the peak memory of one
forward + backward against eager's at vocabularies of 32k and 50k.

Shapes follow the model presets at sequence 1024: ~124M (d_model 768) and ~350M
(d_model 1024), 8 sequences per step unless ``--tokens`` says otherwise.

On a machine without CUDA the timings cannot be taken; the command says so, runs a
small correctness check of the kernels in the Triton interpreter, and exits 0.

This file holds the command line and the benchmark's run; the providers and their
inputs are in :mod:`scaling.app.bench.kernel_providers`, the timers in
:mod:`scaling.app.bench.kernel_timing`, and the smoke test, the ptxas report and the table
helpers in :mod:`scaling.app.bench.kernel_reports`.
"""
# Deferred imports: scaling.kernels.cross_entropy (torch, triton) is imported in _bench, after
# the Triton interpreter may have been switched on for a run without a GPU, and torch after the
# options are checked; scaling.app.bench._docs, analysis.common.rounds (imported at the top as well, for
# DEFAULT_ROUNDS) and analysis.common are light, deferred for no gain.
from __future__ import annotations

import argparse
import datetime as _dt
import sys

from analysis.common.rounds import DEFAULT_ROUNDS
from scaling.app.bench import kernel_providers as P
from scaling.app.bench import kernel_reports as Rp
from scaling.app.bench import kernel_timing as T

EXAMPLE = "python -m scaling.app.bench kernels --ops rms_norm,flce --json kernels.json"
OPS = ("rms_norm", "swiglu", "rope", "flce")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m scaling.app.bench kernels",
        description="Time eager, torch.compile, our Triton kernels and Liger-Kernel per op and shape.",
        epilog=f"example:\n  {EXAMPLE}", formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ops", default=",".join(OPS), help=f"comma-separated subset of {','.join(OPS)}")
    p.add_argument("--dtype", default="bf16", choices=("bf16", "fp16", "fp32"), help="activation dtype")
    p.add_argument("--tokens", type=int, default=8 * 1024, help="tokens per step, B*T (default 8192)")
    p.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS,
                   help="interleaved rounds: each round times every provider of an op and shape once, in an "
                        "order rotated each round; times are medians over the rounds, ratios are taken within "
                        f"a round and shown as median (min-max) (default {DEFAULT_ROUNDS})")
    p.add_argument("--no-compile", action="store_true", help="skip torch.compile (saves its compile time)")
    p.add_argument("--no-liger", action="store_true", help="skip Liger-Kernel even if it is installed")
    p.add_argument("--markdown", action="store_true", help="print Markdown tables (for docs/benchmarks.md)")
    p.add_argument("--json", metavar="PATH", help="also write every measurement to PATH (atomically)")
    p.add_argument("--write-docs", metavar="PATH",
                   help="GPU only: replace the kernel tables in PATH (docs/benchmarks.md) with this run's, "
                        "between their bench markers")
    p.add_argument("--dry-run", action="store_true",
                   help="run the whole benchmark flow at tiny shapes on the CPU (Triton interpreter), "
                        "to check the script itself; its timings mean nothing")
    p.add_argument("--compile-only", metavar="ARCH", nargs="?", const=90, type=int,
                   help="no GPU needed: compile every kernel ahead of time for CUDA compute capability "
                        "ARCH (default 90, Hopper) at the ~124M shapes and report registers, spills "
                        "and 16-byte memory accesses")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (bad options: one line on stderr, status 2)."""
    from analysis.common.errors import ToolkitError

    try:
        return _main(argv)
    except ToolkitError as e:
        print(f"scaling.app.bench kernels: error: {e}", file=sys.stderr)
        return 2


def _main(argv):
    from analysis.common.errors import InputError

    args = _parser().parse_args(argv)
    ops = [o.strip() for o in args.ops.split(",") if o.strip()]
    bad = [o for o in ops if o not in OPS]
    if bad:
        raise InputError(f"unknown op {bad[0]!r}", field="--ops", fix="choose from " + ",".join(OPS))
    if args.tokens < 1:
        raise InputError(f"--tokens={args.tokens} is not positive", field="--tokens", fix="pass e.g. 8192")
    if args.rounds < 1:
        raise InputError(f"--rounds={args.rounds} is not positive", field="--rounds", fix="pass e.g. 7")
    if args.write_docs:
        import torch

        from scaling.app.bench._docs import check_target

        on_gpu = torch.cuda.is_available() and not args.dry_run and args.compile_only is None
        check_target(args.write_docs, _doc_blocks(ops), "cuda" if on_gpu else "cpu")
    if args.compile_only is not None:
        return Rp.compile_report(args.compile_only, args.dtype)
    if args.dry_run:
        if not Rp.interpreter_on():
            return 0
        return _bench(args, ops, device="cpu")
    import torch

    if not torch.cuda.is_available():
        return Rp.no_gpu()
    return _bench(args, ops, device="cuda")


def _doc_blocks(ops) -> list[str]:
    """The docs/benchmarks.md blocks a run over ``ops`` fills in."""
    return (["kernels"] if set(ops) - {"flce"} else []) + (["flce"] if "flce" in ops else [])


def _bench(args, ops, device) -> int:
    import torch

    from analysis.common.records import atomic_write_json
    from analysis.common.rounds import median, plain, ratio, spread_warning

    dry = device != "cuda"
    # The interpreter runs no bf16 arithmetic worth timing, and torch.compile on the CPU
    # would need a C++ toolchain: a dry run checks the flow in float32, without compile.
    dtype = torch.float32 if dry else {"bf16": torch.bfloat16, "fp16": torch.float16,
                                       "fp32": torch.float32}[args.dtype]
    dev = "CPU (dry run: timings mean nothing)" if dry else torch.cuda.get_device_name()
    copy_bw = T.copy_bandwidth(device)
    when = _dt.date.today().isoformat()
    dtype_name = str(dtype).replace("torch.", "")
    print(f"device: {dev}   date: {when}   torch {torch.__version__}   dtype {dtype_name}")
    print(f"measured copy bandwidth: {copy_bw / 1e9:.0f} GB/s ({'1 MiB' if dry else '1 GiB'} "
          "device-to-device, read + write)")
    bound = P.ERR_BOUND[dtype_name]
    rows, flce_rows, failures = [], [], []
    comparisons = {}
    for op in ops:
        provs = P.providers(op, not (args.no_compile or dry), not args.no_liger)
        for s in P.shapes(min(args.tokens, 64) if dry else args.tokens, tiny=dry):
            if op == "flce":
                for vocab in ((300, 517) if dry else (32000, 50257)):
                    inputs = P.inputs(op, s, dtype, device, vocab)
                    r = {"op": op, "model": s["model"], "shape": f"M{s['M']} C{s['C']} V{vocab}"}
                    got, errs = T.checked_rounds(T.time_flce, op, s["model"], provs, inputs, device, bound,
                                                 failures, (None, None), args.rounds)
                    ms = {name: [g[0] for g in v] for name, v in got.items()}
                    for name in provs:
                        peaks = [g[1] for g in got.get(name, ()) if g[1] is not None]
                        r[f"{name} ms"] = median(ms.get(name, ()))
                        r[f"{name} peak GiB"] = max(peaks) / 2 ** 30 if peaks else None
                    r["peak ours/eager"] = Rp.ratio(r["ours peak GiB"], r["eager peak GiB"])
                    r["x eager"] = ratio(ms.get("eager", ()), ms.get("ours", ()))
                    if "liger" in provs:
                        r["x liger"] = ratio(ms.get("liger", ()), ms.get("ours", ()))
                    r["spread"] = _spread(r, comparisons, f"{op} {s['model']} V{vocab}")
                    r["ours err"] = errs["ours"]
                    flce_rows.append(r)
                continue
            inputs = P.inputs(op, s, dtype, device)
            bytes_f, bytes_b = P.min_bytes(op, inputs)
            shape = {"rms_norm": f"{s['M']}x{s['C']}", "swiglu": f"{s['M']}x{s['H']}",
                     "rope": f"B{s['B']} nh{s['nh']} T{s['T']} hs{s['hs']}"}[op]
            got, errs = T.checked_rounds(T.time_fwd_bwd, op, s["model"], provs, inputs, device, bound, failures,
                                         (None, None), args.rounds)
            for i, pas in enumerate(("fwd", "bwd")):
                r = {"op": op, "model": s["model"], "shape": shape, "pass": pas}
                times = {name: [g[i] for g in v] for name, v in got.items()}
                for name in provs:
                    r[f"{name} ms"] = median(times.get(name, ()))
                ours = r["ours ms"]
                gbs = (bytes_f, bytes_b)[i] / (ours * 1e-3) if ours else None
                r["ours GB/s"] = None if gbs is None else gbs / 1e9
                r["% of copy"] = None if gbs is None else 100 * gbs / copy_bw
                for base in ("eager", "compile", "liger"):
                    if base in provs:
                        r[f"x {base}"] = ratio(times.get(base, ()), times.get("ours", ()))
                r["spread"] = _spread(r, comparisons, f"{op} {s['model']} {pas}")
                r["ours err"] = errs["ours"]
                rows.append(r)
    fmt = Rp.markdown if args.markdown else Rp.aligned
    if rows:
        print(f"\nElement-wise ops: median ms over {args.rounds} interleaved rounds; GB/s from the minimum bytes "
              "moved; x = speed-up of ours, median (min-max) of the per-round ratios")
        print(fmt(rows, Rp.columns(rows)))
    if flce_rows:
        from scaling.kernels import cross_entropy as CE

        how = {True: "float32-output GEMM", False: "bf16 GEMM per chunk, float32 sum"}.get(
            CE._ADDMM_OUT_DTYPE.get(device), "float32 throughout")
        print("\nFused linear cross-entropy, forward + backward: median ms and peak extra memory"
              f" (grad-weight accumulation: {how})")
        print(fmt(flce_rows, Rp.columns(flce_rows)))
    checks = (f"Every provider is checked before it is timed: \"ours err\" is our kernels' worst relative "
              f"error (output and every gradient) against a float64 reference; above {bound:g} a provider "
              f"is not timed. The providers of each op and shape are timed in {args.rounds} interleaved rounds "
              "(each round times each once, the order rotated every round); spread: the row's widest "
              "(max - min) / median of a ratio over the rounds." + "".join(f"\n- {f}" for f in failures))
    print("\n" + checks)
    warning = spread_warning(comparisons)
    if warning:
        print(warning)
        checks += "\n\n**" + warning.lstrip("# ").replace("warning:", "Warning:", 1) + "**"
    if args.write_docs:
        from scaling.app.bench._docs import write_blocks

        head = (f"Device: {dev} · Date: {when} · torch {torch.__version__} · {dtype_name} · "
                f"Measured copy bandwidth: {copy_bw / 1e9:.0f} GB/s")
        blocks = {}
        if rows:
            blocks["kernels"] = head + "\n\n" + Rp.markdown(rows, Rp.columns(rows)) + "\n\n" + checks
        if flce_rows:
            blocks["flce"] = (f"{head} · grad-weight accumulation: {how}\n\n"
                              + Rp.markdown(flce_rows, Rp.columns(flce_rows)) + "\n\n" + checks)
        write_blocks(args.write_docs, blocks)
    if args.json:
        atomic_write_json(args.json, {"device": dev, "date": when, "torch": torch.__version__,
                                      "dtype": dtype_name, "copy_GBps": copy_bw / 1e9, "rounds": args.rounds,
                                      "err_bound": bound, "failed_checks": failures,
                                      "elementwise": [plain(r) for r in rows], "flce": [plain(r) for r in flce_rows]})
    return 0


def _spread(row, comparisons, where):
    """The row's widest spread as a table cell; its ratios also go into ``comparisons``."""
    from analysis.common.rounds import Ratio, spread_text

    got = {f"{where} ours vs {k[2:]}": v for k, v in row.items() if k.startswith("x ") and isinstance(v, Ratio)}
    comparisons.update(got)
    return spread_text(max(got.values(), key=lambda r: r.spread)) if got else None


if __name__ == "__main__":
    sys.exit(main())
