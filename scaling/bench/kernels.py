"""Kernel benchmark: ``python -m scaling.bench kernels``.

Per op and shape, times eager PyTorch, ``torch.compile`` of the same function, our
Triton kernels and Liger-Kernel (when importable), forward and backward separately,
with ``triton.testing.do_bench`` (CUDA events, median of many runs). For the
element-wise ops it converts our time into achieved bandwidth from the fewest bytes the
op must move (each input read once, each output written once) and compares that with
the device's measured copy bandwidth (a 1 GiB device-to-device copy, bytes read plus
written). For fused linear cross-entropy it also reports the peak memory of one
forward + backward against eager's at vocabularies of 32k and 50k.

Shapes follow the model presets at sequence 1024: ~124M (d_model 768) and ~350M
(d_model 1024), 8 sequences per step unless ``--tokens`` says otherwise.

On a machine without CUDA the timings cannot be taken; the command says so, runs a
small correctness check of the kernels in the Triton interpreter, and exits 0.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import os
import sys

EXAMPLE = "python -m scaling.bench kernels --ops rms_norm,flce --json kernels.json"
OPS = ("rms_norm", "swiglu", "rope", "flce")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m scaling.bench kernels",
        description="Time eager, torch.compile, our Triton kernels and Liger-Kernel per op and shape.",
        epilog=f"example:\n  {EXAMPLE}", formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ops", default=",".join(OPS), help=f"comma-separated subset of {','.join(OPS)}")
    p.add_argument("--dtype", default="bf16", choices=("bf16", "fp16", "fp32"), help="activation dtype")
    p.add_argument("--tokens", type=int, default=8 * 1024, help="tokens per step, B*T (default 8192)")
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
    from analysis.errors import ToolkitError

    try:
        return _main(argv)
    except ToolkitError as e:
        print(f"scaling.bench kernels: error: {e}", file=sys.stderr)
        return 2


def _main(argv):
    from analysis.errors import InputError

    args = _parser().parse_args(argv)
    ops = [o.strip() for o in args.ops.split(",") if o.strip()]
    bad = [o for o in ops if o not in OPS]
    if bad:
        raise InputError(f"unknown op {bad[0]!r}", field="--ops", fix="choose from " + ",".join(OPS))
    if args.tokens < 1:
        raise InputError(f"--tokens={args.tokens} is not positive", field="--tokens", fix="pass e.g. 8192")
    if args.write_docs:
        import torch

        from scaling.bench._docs import check_target

        on_gpu = torch.cuda.is_available() and not args.dry_run and args.compile_only is None
        check_target(args.write_docs, _doc_blocks(ops), "cuda" if on_gpu else "cpu")
    if args.compile_only is not None:
        return _compile_report(args.compile_only, args.dtype)
    if args.dry_run:
        if not _interpreter_on():
            return 0
        return _bench(args, ops, device="cpu")
    import torch

    if not torch.cuda.is_available():
        return _no_gpu()
    return _bench(args, ops, device="cuda")


def _doc_blocks(ops) -> list[str]:
    """The docs/benchmarks.md blocks a run over ``ops`` fills in."""
    return (["kernels"] if set(ops) - {"flce"} else []) + (["flce"] if "flce" in ops else [])


# --------------------------------------------------------------------------- CPU fallback


def _interpreter_on() -> bool:
    """Turn the Triton interpreter on for CPU runs; it must be set before the kernels load."""
    os.environ.setdefault("TRITON_INTERPRET", "1")
    if os.environ["TRITON_INTERPRET"] != "1":
        print("(skipped: TRITON_INTERPRET is set to something other than 1)")
        return False
    return True


def _no_gpu() -> int:
    print("scaling.bench kernels: no CUDA device here; kernel timings need a GPU.")
    print("Running a correctness smoke test of the kernels in the Triton interpreter instead.")
    if not _interpreter_on():
        return 0
    import torch

    from analysis.text import format_table
    from scaling.kernels import _utils as U
    from scaling.kernels import reference as R
    from scaling.kernels.cross_entropy import fused_linear_cross_entropy
    from scaling.kernels.rms_norm import rms_norm
    from scaling.kernels.rope import apply_rope
    from scaling.kernels.swiglu import swiglu

    torch.manual_seed(0)
    x, w = torch.randn(37, 123), torch.randn(123)
    g, u = torch.randn(37, 123), torch.randn(37, 123)
    q, k = torch.randn(2, 4, 19, 32), torch.randn(2, 2, 19, 32)
    ang = torch.randn(19, 16)
    h, lw, t = torch.randn(50, 32), torch.randn(301, 32), torch.randint(0, 301, (50,))
    cases = [
        ("rms_norm", lambda: rms_norm(x, w, 1e-5), lambda: R.rms_norm(x.double(), w.double(), 1e-5)),
        ("swiglu", lambda: swiglu(g, u), lambda: R.swiglu(g.double(), u.double())),
        ("rope", lambda: torch.cat([a.flatten() for a in apply_rope(q, k, ang.cos(), ang.sin())]),
         lambda: torch.cat([a.flatten() for a in R.apply_rope(q.double(), k.double(),
                                                               ang.cos().double(), ang.sin().double())])),
        ("flce", lambda: fused_linear_cross_entropy(h, lw, t, chunk_size=16),
         lambda: R.linear_cross_entropy(h.double(), lw.double(), t)),
    ]
    rows = []
    for name, ours, ref in cases:
        err = U.rel_err(ours(), ref())
        rows.append({"op": name, "rel. error vs float64": err, "ok": err < 1e-5})
    print(format_table(rows))
    return 0 if all(r["ok"] for r in rows) else 1


# --------------------------------------------------------------------------- ahead-of-time compile

#: Pointer arguments that hold float32 (statistics, partial sums, tables) or token ids;
#: every other pointer holds activations of the benchmark dtype.
_FP32_POINTERS = {"RSTD", "DW_PART", "LOSS", "INV_N", "COS", "SIN"}
_FLOAT_SCALARS = {"eps", "z_loss"}
_NOT_MULTIPLE_OF_16 = {"n_vocab", "ignore_index", "n_q_heads"}


def _compile_report(arch: int, dtype: str) -> int:
    """Compile each kernel for ``sm_<arch>`` with the launch parameters the wrappers pick
    at the ~124M shapes, and report what ptxas says about it. Needs Triton's bundled
    ptxas, not a GPU; the interpreter must be off."""
    if os.environ.get("TRITON_INTERPRET", "0") not in ("0", ""):
        print("scaling.bench kernels --compile-only: unset TRITON_INTERPRET first", file=sys.stderr)
        return 2
    import re
    import subprocess
    import tempfile

    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from analysis.text import format_table
    from scaling.config import swiglu_hidden
    from scaling.kernels import _utils as U
    from scaling.kernels import cross_entropy as CE
    from scaling.kernels import rms_norm as RN
    from scaling.kernels import rope as RP
    from scaling.kernels import swiglu as SW

    act = {"bf16": "*bf16", "fp16": "*fp16", "fp32": "*fp32"}[dtype]
    M, C, H, T, hs, V = 8192, 768, swiglu_hidden(768), 1024, 64, 50257
    br, bc = U.row_tile(M, C)
    _, sr, sc, sw = SW.grid_and_tile(M, H)
    bt, bd = RP.rope_tile(T, hs // 2)
    cr, cv, cw = CE.ce_launch_shape(4096, V)
    kernels = [
        (RN._rms_norm_fwd_kernel, dict(BLOCK_R=br, BLOCK_C=bc), U.num_warps_for(br * bc)),
        (RN._rms_norm_bwd_kernel, dict(BLOCK_R=br, BLOCK_C=bc), U.num_warps_for(br * bc)),
        (SW._swiglu_fwd_kernel, dict(BLOCK_R=sr, BLOCK_C=sc), sw),
        (SW._swiglu_bwd_kernel, dict(BLOCK_R=sr, BLOCK_C=sc), sw),
        (RP._rope_kernel, dict(SIGN=1, HALF=hs // 2, BLOCK_T=bt, BLOCK_D=bd), U.num_warps_for(bt * bd)),
        (CE._ce_chunk_kernel, dict(HAS_GRAD=True, BLOCK_R=cr, BLOCK_V=cv), cw),
    ]
    try:  # the ptxas Triton itself picks for this architecture
        from triton.backends.nvidia.compiler import get_ptxas

        ptxas = get_ptxas(arch).path
    except (ImportError, AttributeError):
        ptxas = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "ptxas")
    target = GPUTarget("cuda", arch, 32)
    rows = []
    for fn, const, warps in kernels:
        sig, attrs = {}, {}
        for i, prm in enumerate(fn.params):
            if prm.is_constexpr:
                sig[prm.name] = "constexpr"
            elif prm.name == "TARGETS":
                sig[prm.name] = "*i64"
            elif prm.name.isupper() or prm.name.endswith("_"):
                sig[prm.name] = "*fp32" if prm.name in _FP32_POINTERS else act
            else:
                sig[prm.name] = "fp32" if prm.name in _FLOAT_SCALARS else "i32"
            # What the launcher infers at run time: buffers are 16-byte aligned and, at
            # these shapes, every size and stride is a multiple of 16 except the
            # vocabulary (50257), the target sentinel and the head count.
            if sig[prm.name] not in ("constexpr", "fp32") and prm.name not in _NOT_MULTIPLE_OF_16:
                attrs[(i,)] = [["tt.divisibility", 16]]
        kern = triton.compile(ASTSource(fn, sig, const, attrs), target=target, options={"num_warps": warps})
        ptx = kern.asm["ptx"]
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "k.ptx")
            with open(path, "w") as f:
                f.write(ptx)
            sm = re.search(r"\.target\s+(sm_\w+)", ptx)  # e.g. sm_90a for Hopper-only features
            res = subprocess.run([ptxas, f"-arch={sm.group(1) if sm else f'sm_{arch}'}", "-v", path,
                                  "-o", os.path.join(tmp, "k.cubin")],
                                 capture_output=True, text=True)
        log = res.stdout + res.stderr
        regs = re.findall(r"Used (\d+) registers", log)
        spill = re.findall(r"(\d+) bytes spill stores", log)
        rows.append({"kernel": fn.__name__.strip("_"), "num_warps": warps,
                     "constexprs": " ".join(f"{k}={v}" for k, v in const.items()),
                     "registers": int(regs[-1]) if regs else None,
                     "spill bytes": int(spill[-1]) if spill else None,
                     "16B loads": len(re.findall(r"ld\.global(?:\.\w+)*\.v4", ptx)),
                     "16B stores": len(re.findall(r"st\.global(?:\.\w+)*\.v4", ptx)),
                     "ptxas": "ok" if res.returncode == 0 else "failed"})
        if res.returncode:
            print(f"{fn.__name__}: ptxas failed: {' '.join(log.split())[:300]}", file=sys.stderr)
    print(f"Triton {triton.__version__}, sm_{arch}, {dtype}, shapes of the ~124M model (C={C}, H={H}, V={V})")
    print(format_table(rows))
    return 0 if all(r["ptxas"] == "ok" for r in rows) else 1


# --------------------------------------------------------------------------- GPU


def _providers(op: str, use_compile: bool, use_liger: bool):
    """name -> callable with the reference's signature for ``op``."""
    import torch

    from scaling.kernels import reference as R
    from scaling.kernels.cross_entropy import fused_linear_cross_entropy
    from scaling.kernels.rms_norm import rms_norm
    from scaling.kernels.rope import apply_rope
    from scaling.kernels.swiglu import swiglu

    eager = {"rms_norm": R.rms_norm, "swiglu": R.swiglu, "rope": R.apply_rope,
             "flce": R.linear_cross_entropy}[op]
    ours = {"rms_norm": rms_norm, "swiglu": swiglu, "rope": apply_rope, "flce": fused_linear_cross_entropy}[op]
    out = {"eager": eager}
    if use_compile:
        out["compile"] = torch.compile(eager, dynamic=False)
    liger = _liger(op) if use_liger else None
    if liger is not None:
        out["liger"] = liger
    out["ours"] = ours
    return out


def _liger(op: str):
    """Liger-Kernel's version of ``op`` adapted to our signature, or None if unavailable."""
    try:
        from liger_kernel.transformers import functional as LF
    except Exception:  # not installed, or incompatible with this torch/triton
        return None
    import torch

    if op == "rms_norm":
        return lambda x, w, eps: LF.liger_rms_norm(x, w, eps)
    if op == "swiglu":
        return LF.liger_swiglu
    if op == "rope":
        def rope(q, k, cos, sin):
            # Liger takes the Hugging Face layout: (1, T, hs) tables with both halves filled.
            return LF.liger_rope(q, k, torch.cat((cos, cos), -1)[None], torch.cat((sin, sin), -1)[None])
        return rope
    if op == "flce":
        def flce(h, w, t, ignore_index=-100, z_loss=0.0):
            out = LF.liger_fused_linear_cross_entropy(h, w, t, ignore_index=ignore_index, lse_square_scale=z_loss)
            return out[0] if isinstance(out, tuple) else out
        return flce
    return None


def _shapes(tokens: int, tiny: bool = False):
    from scaling.config import swiglu_hidden

    seq = 16 if tiny else 1024
    batch = max(1, tokens // seq)
    models = (("tiny", 48, 4),) if tiny else (("124M", 768, 12), ("350M", 1024, 16))
    return [dict(model=m, C=C, H=swiglu_hidden(C), nh=nh, hs=C // nh, B=batch, T=min(seq, tokens), M=tokens)
            for m, C, nh in models]


def _inputs(op, s, dtype, device, vocab=None):
    import torch

    g = torch.Generator(device=device).manual_seed(0)

    def rnd(*shape, scale=1.0, dt=dtype):
        return (torch.randn(*shape, generator=g, device=device) * scale).to(dt).requires_grad_()

    if op == "rms_norm":
        return (rnd(s["M"], s["C"]), rnd(s["C"]), 1e-5)
    if op == "swiglu":
        return (rnd(s["M"], s["H"]), rnd(s["M"], s["H"]))
    if op == "rope":
        ang = torch.rand(s["T"], s["hs"] // 2, generator=g, device=device) * 6.3
        q = rnd(s["B"], s["T"], s["nh"], s["hs"]).detach().transpose(1, 2).requires_grad_()
        k = rnd(s["B"], s["T"], s["nh"], s["hs"]).detach().transpose(1, 2).requires_grad_()
        return (q, k, ang.cos(), ang.sin())
    if op == "flce":
        t = torch.randint(0, vocab, (s["M"],), generator=g, device=device)
        return (rnd(s["M"], s["C"]), rnd(vocab, s["C"], scale=0.02), t)
    raise AssertionError(op)


def _min_bytes(op, inputs):
    """Fewest bytes (forward, backward) the op must move through device memory."""
    def nb(t):
        return t.numel() * t.element_size()

    if op == "rms_norm":
        x, w, _ = inputs
        rows = x.numel() // x.shape[-1]
        # fwd: read x, w; write y and rstd (4 B a row). bwd: read dy, x, w, rstd; write dx, dw.
        return 2 * nb(x) + nb(w) + 4 * rows, 3 * nb(x) + 2 * nb(w) + 4 * rows
    if op == "swiglu":
        g, _ = inputs
        return 3 * nb(g), 5 * nb(g)
    if op == "rope":
        q, k, cos, sin = inputs
        moved = 2 * (nb(q) + nb(k)) + nb(cos) + nb(sin)
        return moved, moved
    raise AssertionError(op)


def _do_bench(fn, device, warmup, rep, grad_to_none=None):
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


def _copy_bandwidth(device) -> float:
    """Device-to-device copy of 1 GiB (1 MiB on the CPU), bytes read plus written, per second."""
    import torch

    src = torch.empty(1 << (28 if device == "cuda" else 18), dtype=torch.float32, device=device).uniform_()
    dst = torch.empty_like(src)
    ms = _do_bench(lambda: dst.copy_(src), device, warmup=25, rep=200)
    return 2 * src.numel() * 4 / (ms * 1e-3)


def _time_fwd_bwd(fn, inputs, device):
    """Median ms of forward, and of backward alone (graph retained, replayed)."""
    import torch

    leaves = [t for t in inputs if isinstance(t, torch.Tensor) and t.requires_grad]

    def fwd():
        with torch.no_grad():
            return fn(*inputs)

    t_fwd = _do_bench(fwd, device, warmup=10, rep=50)
    out = fn(*inputs)
    outs = out if isinstance(out, tuple) else (out,)
    grads = [torch.randn_like(o) for o in outs]
    t_bwd = _do_bench(lambda: torch.autograd.grad(outs, leaves, grads, retain_graph=True), device,
                      warmup=10, rep=50)
    return t_fwd, t_bwd


def _time_flce(fn, inputs, device):
    """Median ms of one forward + backward, and its peak extra memory in bytes (CUDA only)."""
    import torch

    h, w, t = inputs

    def step():
        fn(h, w, t).backward()

    ms = _do_bench(step, device, warmup=5, rep=30, grad_to_none=[h, w])
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


def _bench(args, ops, device) -> int:
    import torch

    from analysis.records import atomic_write_json
    from analysis.text import format_table

    dry = device != "cuda"
    # The interpreter runs no bf16 arithmetic worth timing, and torch.compile on the CPU
    # would need a C++ toolchain: a dry run checks the flow in float32, without compile.
    dtype = torch.float32 if dry else {"bf16": torch.bfloat16, "fp16": torch.float16,
                                       "fp32": torch.float32}[args.dtype]
    dev = "CPU (dry run: timings mean nothing)" if dry else torch.cuda.get_device_name()
    copy_bw = _copy_bandwidth(device)
    when = _dt.date.today().isoformat()
    dtype_name = str(dtype).replace("torch.", "")
    print(f"device: {dev}   date: {when}   torch {torch.__version__}   dtype {dtype_name}")
    print(f"measured copy bandwidth: {copy_bw / 1e9:.0f} GB/s ({'1 MiB' if dry else '1 GiB'} "
          "device-to-device, read + write)")
    bound = ERR_BOUND[dtype_name]
    rows, flce_rows, failures = [], [], []
    for op in ops:
        provs = _providers(op, not (args.no_compile or dry), not args.no_liger)
        for s in _shapes(min(args.tokens, 64) if dry else args.tokens, tiny=dry):
            if op == "flce":
                for vocab in ((300, 517) if dry else (32000, 50257)):
                    inputs = _inputs(op, s, dtype, device, vocab)
                    r = {"op": op, "model": s["model"], "shape": f"M{s['M']} C{s['C']} V{vocab}"}
                    errs = {}
                    for name, fn in provs.items():
                        (ms, peak), err = _checked(_time_flce, op, name, fn, inputs, device, bound, failures,
                                                   default=(None, None))
                        errs[name] = err
                        r[f"{name} ms"] = ms
                        r[f"{name} peak GiB"] = None if peak is None else peak / 2 ** 30
                        _progress(op, s["model"], name, ms)
                    r["peak ours/eager"] = _ratio(r["ours peak GiB"], r["eager peak GiB"])
                    r["x eager"] = _ratio(r["eager ms"], r["ours ms"])
                    if "liger ms" in r:
                        r["x liger"] = _ratio(r["liger ms"], r["ours ms"])
                    r["ours err"] = errs["ours"]
                    flce_rows.append(r)
                continue
            inputs = _inputs(op, s, dtype, device)
            bytes_f, bytes_b = _min_bytes(op, inputs)
            shape = {"rms_norm": f"{s['M']}x{s['C']}", "swiglu": f"{s['M']}x{s['H']}",
                     "rope": f"B{s['B']} nh{s['nh']} T{s['T']} hs{s['hs']}"}[op]
            checked = {name: _checked(_time_fwd_bwd, op, name, fn, inputs, device, bound, failures,
                                      default=(None, None)) for name, fn in provs.items()}
            times = {name: tt for name, (tt, _) in checked.items()}
            for i, pas in enumerate(("fwd", "bwd")):
                r = {"op": op, "model": s["model"], "shape": shape, "pass": pas}
                for name, tt in times.items():
                    r[f"{name} ms"] = tt[i]
                    _progress(op, s["model"], f"{name} {pas}", tt[i])
                ours = times["ours"][i]
                gbs = (bytes_f, bytes_b)[i] / (ours * 1e-3) if ours else None
                r["ours GB/s"] = None if gbs is None else gbs / 1e9
                r["% of copy"] = None if gbs is None else 100 * gbs / copy_bw
                for base in ("eager", "compile", "liger"):
                    if base in times:
                        r[f"x {base}"] = _ratio(times[base][i], ours)
                r["ours err"] = checked["ours"][1]
                rows.append(r)
    fmt = _markdown if args.markdown else format_table
    if rows:
        print("\nElement-wise ops: median ms; GB/s from the minimum bytes moved; x = speedup of ours")
        print(fmt(rows, _columns(rows)))
    if flce_rows:
        from scaling.kernels import cross_entropy as CE

        how = {True: "float32-output GEMM", False: "bf16 GEMM per chunk, float32 sum"}.get(
            CE._ADDMM_OUT_DTYPE.get(device), "float32 throughout")
        print("\nFused linear cross-entropy, forward + backward: median ms and peak extra memory"
              f" (grad-weight accumulation: {how})")
        print(fmt(flce_rows, _columns(flce_rows)))
    checks = (f"Every provider is checked before it is timed: \"ours err\" is our kernels' worst relative "
              f"error (output and every gradient) against a float64 reference; above {bound:g} a provider "
              "is not timed." + "".join(f"\n- {f}" for f in failures))
    print("\n" + checks)
    if args.write_docs:
        from scaling.bench._docs import write_blocks

        head = (f"Device: {dev} · Date: {when} · torch {torch.__version__} · {dtype_name} · "
                f"Measured copy bandwidth: {copy_bw / 1e9:.0f} GB/s")
        blocks = {}
        if rows:
            blocks["kernels"] = head + "\n\n" + _markdown(rows, _columns(rows)) + "\n\n" + checks
        if flce_rows:
            blocks["flce"] = (f"{head} · grad-weight accumulation: {how}\n\n"
                              + _markdown(flce_rows, _columns(flce_rows)) + "\n\n" + checks)
        write_blocks(args.write_docs, blocks)
    if args.json:
        atomic_write_json(args.json, {"device": dev, "date": when, "torch": torch.__version__,
                                      "dtype": dtype_name, "copy_GBps": copy_bw / 1e9,
                                      "err_bound": bound, "failed_checks": failures,
                                      "elementwise": rows, "flce": flce_rows})
    return 0


#: Largest relative error (output and every input gradient, against float64) a provider
#: may show before its time is left out: a fast wrong answer is no result. Half precision
#: rounds each element at about 2^-9, so 1e-2 leaves room for accumulation but catches
#: wrong indexing; the same bound as the kernel tests' bf16 cases.
ERR_BOUND = {"bfloat16": 1e-2, "float16": 1e-2, "float32": 1e-4}


def _rel_err(op, fn, inputs) -> float:
    """Worst ||out - ref|| / ||ref|| over the output(s) and every input gradient of ``fn``
    on ``inputs``, against the plain-PyTorch reference run in float64 on the same values."""
    import torch

    from scaling.kernels import _utils as U

    def fresh(dt=None):
        # Copies (strides kept): a provider that writes its inputs in place must not
        # change the values the reference sees or the timings use.
        return [t.detach().to(dt or t.dtype, copy=True).requires_grad_(t.requires_grad)
                if isinstance(t, torch.Tensor) and t.is_floating_point() else t for t in inputs]

    ref_fn = _providers(op, False, False)["eager"]
    xs, xs64 = fresh(), fresh(torch.float64)
    outs, refs = fn(*xs), ref_fn(*xs64)
    outs = outs if isinstance(outs, tuple) else (outs,)
    refs = refs if isinstance(refs, tuple) else (refs,)
    gen = torch.Generator(device=outs[0].device).manual_seed(1)
    grads = [torch.randn(o.shape, generator=gen, device=o.device, dtype=torch.float64) for o in outs]
    # Cloned per use: some providers (Liger's RMSNorm) write the incoming gradient in place.
    torch.autograd.backward(refs, [g.clone() for g in grads])
    torch.autograd.backward(outs, [g.to(o.dtype) for g, o in zip(grads, outs)])
    errs = [U.rel_err(o, r) for o, r in zip(outs, refs)]
    errs += [U.rel_err(x.grad, x64.grad) for x, x64 in zip(xs, xs64)
             if isinstance(x, torch.Tensor) and x.requires_grad]
    return max(errs)


def _checked(timer, op, name, fn, inputs, device, bound, failures, default):
    """Time ``fn`` only when it computes the op within ``bound``; returns (result, error)."""
    try:
        err = _rel_err(op, fn, inputs)
        problem = None if err <= bound else f"relative error {err:.2g} against float64 exceeds {bound:g}"
    except Exception as e:  # noqa: BLE001 - an old Liger, a compile error: the table goes on
        err, problem = None, f"failed to run: {type(e).__name__}: {' '.join(str(e).split())[:160]}"
    if problem:
        failures.append(f"{op} {name}: {problem}; not timed")
        print(f"  {failures[-1]}", file=sys.stderr, flush=True)
        return default, err
    return _guarded(timer, fn, inputs, device, what=f"{op} {name}", default=default), err


def _guarded(timer, fn, inputs, device, *, what, default):
    """Run one measurement; a provider that fails (an old Liger, a compile error) costs
    its cell in the table, not the whole run."""
    try:
        return timer(fn, inputs, device)
    except Exception as e:  # noqa: BLE001 - reported, then the table goes on
        print(f"  {what}: failed: {type(e).__name__}: {' '.join(str(e).split())[:200]}", file=sys.stderr)
        return default


def _ratio(a, b):
    return a / b if a and b else None


def _columns(rows):
    cols = []
    for r in rows:
        cols.extend(c for c in r if c not in cols)
    return cols


def _progress(op, model, what, ms):
    # One plain line per measurement: long runs show where they are, in logs too.
    shown = "failed" if ms is None else f"{ms:8.3f} ms"
    print(f"  {op:9s} {model:5s} {what:14s} {shown}", file=sys.stderr, flush=True)


def _markdown(rows, columns):
    from analysis.text import markdown_table, num

    return markdown_table(rows, columns, {c: lambda x: num(x, 3) for c in columns})


if __name__ == "__main__":
    sys.exit(main())
