"""What the kernel benchmark times: one callable per provider and op, with the inputs.

Per op: eager PyTorch (the plain-PyTorch reference of :mod:`scaling.kernels.reference`),
``torch.compile`` of the same function, Liger-Kernel adapted to our signatures (when
importable) and our Triton kernels. Each is checked against the reference in float64
(:func:`rel_err`) before it is timed. Shapes follow the model presets at sequence 1024.
"""
# Deferred imports: torch and the kernels (scaling.kernels.*, which load triton) are imported
# inside the functions because the Triton interpreter must be switched on (TRITON_INTERPRET,
# kernel_reports.interpreter_on, for a run without a GPU) before the kernels load; scaling.config
# is deferred beside them for no gain.
from __future__ import annotations


def providers(op: str, use_compile: bool, use_liger: bool):
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
    liger = liger_adapter(op) if use_liger else None
    if liger is not None:
        out["liger"] = liger
    out["ours"] = ours
    return out


def liger_adapter(op: str):
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


def shapes(tokens: int, tiny: bool = False):
    from scaling.config import swiglu_hidden

    seq = 16 if tiny else 1024
    batch = max(1, tokens // seq)
    models = (("tiny", 48, 4),) if tiny else (("124M", 768, 12), ("350M", 1024, 16))
    return [dict(model=m, C=C, H=swiglu_hidden(C), nh=nh, hs=C // nh, B=batch, T=min(seq, tokens), M=tokens)
            for m, C, nh in models]


def inputs(op, s, dtype, device, vocab=None):
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


def min_bytes(op, inputs):
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


#: Largest relative error (output and every input gradient, against float64) a provider
#: may show before its time is left out: a fast wrong answer is no result. Half precision
#: rounds each element at about 2^-9, so 1e-2 leaves room for accumulation but catches
#: wrong indexing; the same bound as the kernel tests' bf16 cases.
ERR_BOUND = {"bfloat16": 1e-2, "float16": 1e-2, "float32": 1e-4}


def rel_err(op, fn, inputs) -> float:
    """Worst ||out - ref|| / ||ref|| over the output(s) and every input gradient of ``fn``
    on ``inputs``, against the plain-PyTorch reference run in float64 on the same values."""
    import torch

    from scaling.kernels import _utils as U

    def fresh(dt=None):
        # Copies (strides kept): a provider that writes its inputs in place must not
        # change the values the reference sees or the timings use.
        return [t.detach().to(dt or t.dtype, copy=True).requires_grad_(t.requires_grad)
                if isinstance(t, torch.Tensor) and t.is_floating_point() else t for t in inputs]

    ref_fn = providers(op, False, False)["eager"]
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
