"""What the kernel benchmark prints besides its timings: the CPU smoke test (no GPU here),
the ahead-of-time ptxas report (``--compile-only``) and the table helpers.
"""
# Deferred imports: torch, triton and the kernels (scaling.kernels.*) are imported inside the
# functions because the Triton interpreter must be switched on (interpreter_on, for a run without
# a GPU) before the kernels load; scaling.config, analysis.common.rounds and analysis.common.text are
# light, deferred beside them for no gain.
from __future__ import annotations

import os
import sys

# --------------------------------------------------------------------------- CPU fallback

def interpreter_on() -> bool:
    """Turn the Triton interpreter on for CPU runs; it must be set before the kernels load."""
    os.environ.setdefault("TRITON_INTERPRET", "1")
    if os.environ["TRITON_INTERPRET"] != "1":
        print("(skipped: TRITON_INTERPRET is set to something other than 1)")
        return False
    return True


def no_gpu() -> int:
    print("scaling.app.bench kernels: no CUDA device here; kernel timings need a GPU.")
    print("Running a correctness smoke test of the kernels in the Triton interpreter instead.")
    if not interpreter_on():
        return 0
    import torch

    from analysis.common.text import format_table
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


def compile_report(arch: int, dtype: str) -> int:
    """Compile each kernel for ``sm_<arch>`` with the launch parameters the wrappers pick
    at the ~124M shapes, and report what ptxas says about it. Needs Triton's bundled
    ptxas, not a GPU; the interpreter must be off."""
    if os.environ.get("TRITON_INTERPRET", "0") not in ("0", ""):
        print("scaling.app.bench kernels --compile-only: unset TRITON_INTERPRET first", file=sys.stderr)
        return 2
    import re
    import subprocess
    import tempfile

    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from analysis.common.text import format_table
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


# --------------------------------------------------------------------------- tables

def ratio(a, b):
    return a / b if a and b else None


def columns(rows):
    cols = []
    for r in rows:
        cols.extend(c for c in r if c not in cols)
    return cols


def _cell(x):
    from analysis.common.rounds import Ratio
    from analysis.common.text import num

    return x.text(unit="") if isinstance(x, Ratio) else num(x, 3)


def markdown(rows, cols):
    from analysis.common.text import markdown_table

    return markdown_table(rows, cols, {c: _cell for c in cols})


def aligned(rows, cols):
    from analysis.common.text import format_table

    return format_table(rows, cols, {c: _cell for c in cols})
