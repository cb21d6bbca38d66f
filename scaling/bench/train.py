"""End-to-end training throughput: ``python -m scaling.bench train``.

Two tables. **The trainer**: :class:`scaling.trainer.Trainer` itself, on the built-in
corpus, for each size twice in one process: *before* (the batch drawn on the main thread
as the loop once did, the loss read back every step) and *after* (the prefetching
loader, reads only at log steps), with tokens/s, the time each step waited for its
batch and the rest of the step, and the after/before ratio. This is what a sweep gets.

**The synthetic loop**, an upper bound: for each model size and each kernel choice
(eager, torch.compile, triton), full optimizer steps (forward, backward, clipping,
AdamW) of ``scaling.model`` on random tokens already on the device, and the same for a
nanoGPT-style plain-PyTorch model of the same shape (:mod:`scaling.bench.nanogpt_ref`)
measured in the same process, with tokens/s, MFU (PaLM's model FLOPs, Chowdhery et al.
2022 App. B, against the device's dense bf16 peak when it is known) and the ratio to
the reference. No data is loaded and nothing is logged, so no trainer runs faster.

Defaults follow the device: on CUDA the ~124M (``85m`` with a 50,304 vocabulary) and
~350M (``300m``) models at sequence 1024 in bf16; on a CPU small presets at sequence
256 in fp32, which finish in a few minutes (torch.compile alone takes ~20 s per model
there).
"""
from __future__ import annotations

import argparse
import datetime as _dt
import platform
import sys
import time
from typing import Optional

EXAMPLE = "python -m scaling.bench train --sizes nano,mini --kernels eager,compile --steps 8"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m scaling.bench train",
        description="Training tokens/s and MFU of scaling.model per size and kernel choice, "
                    "against a nanoGPT-style plain-PyTorch model of the same shape.",
        epilog=f"example:\n  {EXAMPLE}\n  python -m scaling.bench train   # on a GPU: 85m and 300m, seq 1024, bf16",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", help="comma-separated presets (default: 85m,300m on CUDA, nano,mini on CPU)")
    p.add_argument("--kernels", help="comma-separated subset of eager,compile,triton "
                                     "(default: all three on CUDA, eager,compile on CPU)")
    p.add_argument("--seq-len", type=int, help="sequence length (default 1024 on CUDA, 256 on CPU)")
    p.add_argument("--batch", type=int, help="sequences per step (default 16 on CUDA, 16 on CPU)")
    p.add_argument("--vocab", type=int, help="vocabulary (default 50304 on CUDA, 256 on CPU)")
    p.add_argument("--steps", type=int, help="timed steps (default 20 on CUDA, 8 on CPU)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first (compilation happens here)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"),
                   help="auto: bf16 autocast on CUDA, fp32 on CPU")
    p.add_argument("--peak-flops", type=float, help="device peak FLOP/s for MFU (default: looked up by GPU name)")
    p.add_argument("--no-reference", action="store_true", help="skip the nanoGPT-style reference model")
    p.add_argument("--trainer-sizes", help="presets for the trainer table (default: 85m,300m on CUDA, "
                                           "nano,mini,small on CPU); 'none' skips it")
    p.add_argument("--no-synthetic", action="store_true", help="skip the synthetic-loop table")
    p.add_argument("--markdown", action="store_true", help="print a Markdown table")
    p.add_argument("--json", metavar="PATH", help="also write the measurements to PATH (atomically)")
    p.add_argument("--write-docs", metavar="PATH",
                   help="replace the end-to-end table in PATH (docs/benchmarks.md) with this run's; on a CPU "
                        "only the trainer table (block train-cpu), and only on a quiet machine")
    return p


def main(argv: Optional[list] = None) -> int:
    from analysis.errors import ToolkitError

    try:
        return _main(argv)
    except ToolkitError as e:
        print(f"scaling.bench train: error: {e}", file=sys.stderr)
        return 2


def _main(argv) -> int:
    import torch

    from analysis.errors import InputError
    from analysis.text import format_table, markdown_table, si
    from scaling.config import PRESETS

    args = _parser().parse_args(argv)
    dev = args.device
    if dev == "auto":
        dev = "cuda" if torch.cuda.is_available() else "cpu"
    if dev.startswith("cuda") and not torch.cuda.is_available():
        raise InputError("CUDA is not available here", field="--device", fix="use --device cpu")
    device = torch.device(dev)
    gpu = device.type == "cuda"
    sizes = _split(args.sizes or ("85m,300m" if gpu else "nano,mini"))
    kernels = _split(args.kernels or ("eager,compile,triton" if gpu else "eager,compile"))
    for s in sizes:
        if s not in PRESETS:
            raise InputError(f"unknown preset {s!r}", field="--sizes", fix="use names from `scaling train --help`")
    for k in kernels:
        if k not in ("eager", "compile", "triton"):
            raise InputError(f"unknown kernels {k!r}", field="--kernels", fix="use eager, compile or triton")
    seq = args.seq_len or (1024 if gpu else 256)
    batch = args.batch or 16
    vocab = args.vocab or (50304 if gpu else 256)
    steps = args.steps or (20 if gpu else 8)
    precision = args.precision if args.precision != "auto" else ("bf16" if gpu else "fp32")
    if min(seq, batch, vocab, steps) < 1 or args.warmup < 0:
        raise InputError("sizes and counts must be positive", field="--steps", fix="e.g. --steps 8 --batch 16")

    trainer_sizes = [] if args.trainer_sizes == "none" else _split(
        args.trainer_sizes or ("85m,300m" if gpu else "nano,mini,small"))
    for s in trainer_sizes:
        if s not in PRESETS:
            raise InputError(f"unknown preset {s!r}", field="--trainer-sizes",
                             fix="use names from `scaling train --help`, or none")
    # --write-docs: on a GPU the synthetic table goes into block "train"; on a CPU only the
    # trainer's table, into "train-cpu", and only when no other work shares the cores
    cpu_block = bool(args.write_docs) and not gpu and bool(trainer_sizes)
    gpu_block = bool(args.write_docs) and not cpu_block and not args.no_synthetic
    if cpu_block:
        from scaling.bench._docs import check_blocks

        busy = _busy_warning()
        if busy:
            raise InputError(busy.lstrip("# "), field="--write-docs",
                             fix="rerun on a quiet machine, or leave --write-docs out")
        check_blocks(args.write_docs, ["train-cpu"])
    elif args.write_docs:
        from scaling.bench._docs import check_target

        check_target(args.write_docs, ["train"], device.type)  # refuses CPU timings
        if not gpu_block:
            raise InputError("--no-synthetic leaves nothing to write", field="--write-docs",
                             fix="drop --no-synthetic, or leave --write-docs out")

    from scaling import flops as F

    peak = args.peak_flops
    name = torch.cuda.get_device_name(device) if gpu else f"CPU {platform.machine()} ({torch.get_num_threads()} threads)"
    if peak is None and gpu:
        peak = F.peak_flops_for(name, precision)
    when = _dt.date.today().isoformat()
    setup = f"seq {seq}, {batch} sequences/step, vocab {vocab}, {steps} timed steps after {args.warmup}"
    print(f"# scaling.bench train on {name}, {precision}, torch {torch.__version__}, {when}: {setup}", flush=True)
    busy = _busy_warning()
    if busy and not gpu:
        print(busy, flush=True)

    if trainer_sizes:
        note, trows = _trainer_rows(trainer_sizes, device, precision, seq, batch, steps, args)
        print("# " + note + "\n" + _trainer_table(trows, args.markdown), flush=True)
        if cpu_block:
            from scaling.bench._docs import write_blocks

            head = (f"Device: {name} · Date: {when} · torch {torch.__version__} · {precision} · {setup} · "
                    f"load average below half the cores at the start")
            write_blocks(args.write_docs, {"train-cpu": head + "\n\n" + note + ".\n\n"
                                           + _trainer_table(trows, True)})
    if args.no_synthetic:
        return 0
    print("# synthetic loop (random tokens already on the device, nothing logged): an upper bound "
          "for the trainer", flush=True)

    rows = []
    for size in sizes:
        a = _args(size, vocab, seq)
        per_tok = F.palm_flops_per_token(a)
        ref_tps = {}
        impls = [(k, False) for k in kernels]
        if not args.no_reference:
            impls += [(k, True) for k in ("eager", "compile") if k in kernels or k == "eager"]
        for kern, is_ref in impls:
            label = f"nanoGPT-style {kern}" if is_ref else kern
            print(f"  {size} {label} ...", file=sys.stderr, flush=True)
            try:
                tps, mem = _measure(a, kern, is_ref, device, precision, batch, steps, args.warmup)
            except Exception as e:  # one failing choice (e.g. triton without a GPU) must not end the table
                rows.append({"size": size, "impl": label, "params": F.count_params(a), "error": _one_line(e)})
                continue
            if is_ref:
                ref_tps[kern] = tps
            rows.append({"size": size, "impl": label, "params": F.count_params(a), "tokens_per_s": tps,
                         "mfu": per_tok * tps / peak if peak else None, "peak_mem_gb": mem})
        ours_eager = next((r.get("tokens_per_s") for r in rows if r["size"] == size and r["impl"] == "eager"), None)
        for r in rows:
            if r["size"] == size and "tokens_per_s" in r:
                # The end-to-end target is stated against our own eager model.
                r["x_eager"] = r["tokens_per_s"] / ours_eager if ours_eager else None
                if not r["impl"].startswith("nanoGPT"):
                    base = ref_tps.get("compile" if r["impl"] == "compile" else "eager")
                    r["vs_reference"] = r["tokens_per_s"] / base if base else None

    def ratio(x):
        return "-" if x is None else f"{x:.2f}x"

    cols = ["size", "params", "impl", "tokens_per_s", "x_eager", "mfu", "vs_reference"] + (
        ["peak_mem_gb"] if gpu else [])
    fmts = {"params": si, "tokens_per_s": si, "mfu": lambda x: "-" if x is None else f"{100 * x:.1f}%",
            "x_eager": ratio, "vs_reference": ratio, "peak_mem_gb": lambda x: "-" if x is None else f"{x:.1f}"}
    headers = {"tokens_per_s": "tok/s", "x_eager": "x eager", "vs_reference": "vs ref", "peak_mem_gb": "mem GB"}
    table = markdown_table if args.markdown else format_table
    print(table(rows, cols, fmts, headers))
    for r in rows:
        if "error" in r:
            print(f"{r['size']} {r['impl']}: {r['error']}")
    print("x eager: tokens/s over our eager model's at the same size; "
          "vs ref: tokens/s over the nanoGPT-style model of the same shape "
          "(compile against its compiled run, eager and triton against its eager run); "
          "MFU uses 6N + 12LHQT per token" + ("" if peak else " and needs --peak-flops on this device"))
    if args.json:
        from analysis.records import atomic_write_json

        atomic_write_json(args.json, {"device": name, "precision": precision, "seq_len": seq, "batch": batch,
                                      "vocab": vocab, "steps": steps, "peak_flops": peak,
                                      "torch": torch.__version__, "rows": rows})
    if gpu_block:
        from scaling.bench._docs import write_blocks

        head = (f"Device: {name} · Date: {when} · torch {torch.__version__} · {precision} · {setup} · "
                f"MFU against {si(peak) if peak else 'an unknown'} FLOP/s")
        errors = "".join(f"\n\n{r['size']} {r['impl']}: {r['error']}" for r in rows if "error" in r)
        write_blocks(args.write_docs, {"train": head + "\n\n" + markdown_table(rows, cols, fmts, headers) + errors})
    return 0


class _Loop:
    """The two loops the trainer table compares, as Trainer's arguments."""

    BEFORE = {"prefetch": False, "read_every_step": True}
    AFTER = {"prefetch": True, "read_every_step": False}


def _trainer_rows(sizes, device, precision, seq, batch, steps, args) -> tuple[str, list]:
    """The real trainer's tokens/s before and after, per size: (what was measured, rows)."""
    rows = []
    for size in sizes:
        got = {}
        for label, loop in (("before", _Loop.BEFORE), ("after", _Loop.AFTER)):
            print(f"  trainer {size} {label} ...", file=sys.stderr, flush=True)
            got[label] = _measure_trainer(size, device, precision, seq, batch, steps, args.warmup, **loop)
        for label in ("before", "after"):
            r = got[label]
            rows.append({"size": size, "params": r["params"], "loop": label, "tokens_per_s": r["tokens_per_s"],
                         "wait_ms": 1e3 * r["wait_s"], "compute_ms": 1e3 * r["compute_s"],
                         "x_before": r["tokens_per_s"] / got["before"]["tokens_per_s"]})
    note = (f"the trainer (scaling.trainer.Trainer, built-in corpus, seq {seq}, {batch} sequences/step, "
            f"{steps} timed steps after {args.warmup}, kernels=auto, log_every=10): before = batch drawn on the "
            "main thread and the loss read back every step; after = prefetching loader, reads at log steps. "
            "data wait: time the loop waited for its batch; rest: everything else in a step")
    return note, rows


def _trainer_table(rows: list, markdown: bool) -> str:
    from analysis.text import format_table, markdown_table, si

    cols = ["loop", "size", "params", "tokens_per_s", "wait_ms", "compute_ms", "x_before"]
    fmts = {"params": si, "tokens_per_s": si, "wait_ms": lambda x: f"{x:.2f}", "compute_ms": lambda x: f"{x:.1f}",
            "x_before": lambda x: f"{x:.2f}x"}
    headers = {"tokens_per_s": "tok/s", "wait_ms": "data wait ms/step", "compute_ms": "rest ms/step",
               "x_before": "x before"}
    return (markdown_table if markdown else format_table)(rows, cols, fmts, headers)


def _measure_trainer(size, device, precision, seq, batch, steps, warmup, *, prefetch, read_every_step) -> dict:
    """Tokens/s of ``Trainer`` steps warmup+1 .. warmup+steps, and the seconds a step spent
    waiting for its batch; the first ``warmup`` steps are untimed."""
    import tempfile
    from pathlib import Path

    import torch

    from scaling import distributed as D
    from scaling.config import from_overrides
    from scaling.train import isolated
    from scaling.trainer import Trainer

    total = warmup + steps
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    class Timed(Trainer):
        first, t_first, t_last, wait = warmup + 1, None, None, 0.0

        def _setup(self):
            super()._setup()
            get = self.loader.get

            def timed(step):
                t0 = time.perf_counter()
                b = get(step)
                if self.first <= step <= total and not self.in_branch:
                    self.wait += time.perf_counter() - t0
                return b

            self.loader.get = timed

        def train_step(self, step, lr):
            if step == self.first:
                sync()  # the untimed steps' work must not spill into the timed ones
                self.t_first = time.perf_counter()
            return super().train_step(step, lr)

        def read(self, loss, gnorm):
            out = super().read(loss, gnorm)  # waits for the device
            if self.step == total:
                self.t_last = time.perf_counter()
            return out

    with tempfile.TemporaryDirectory() as d:
        cfg = from_overrides([f"model={size}", f"seq_len={seq}", f"batch_tokens={batch * seq}",
                              f"tokens={total * batch * seq}", "eval_count=1", "save_final=false",
                              f"data.val_tokens={batch * seq}",  # the one evaluation is untimed: keep it short
                              "progress=none", f"device={device}", f"precision={precision}", f"out={d}"])
        with isolated(cfg):
            t = Timed(cfg, Path(d), D.World(), prefetch=prefetch, read_every_step=read_every_step)
            s = t.run()
    if s["status"] != "completed":
        raise RuntimeError(f"the trainer ended {s['status']}: {s.get('error')}")
    per_step = (t.t_last - t.t_first) / steps
    wait = t.wait / steps
    return {"params": s["params"], "tokens_per_s": batch * seq / per_step, "wait_s": wait,
            "compute_s": per_step - wait}


def _busy_warning() -> Optional[str]:
    """A warning when other processes keep the CPUs busy: CPU timings then mean little."""
    import os

    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return None
    cpus = os.cpu_count() or 1
    if load > 0.5 * cpus:
        return (f"# warning: load average {load:.1f} on {cpus} CPUs before starting; "
                "other work shares the cores and the timings below will be low and noisy")
    return None


def _split(s: str) -> list:
    return [x.strip() for x in s.split(",") if x.strip()]


def _one_line(e: Exception) -> str:
    return f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"


def _args(size: str, vocab: int, seq: int):
    from scaling.config import PRESETS, ModelArgs, swiglu_hidden

    p = PRESETS[size]
    return ModelArgs(p.d_model, p.n_layers, p.n_heads, p.n_heads, swiglu_hidden(p.d_model), vocab, seq, preset=size)


def _measure(a, kernels: str, reference: bool, device, precision: str, batch: int, steps: int, warmup: int):
    """(tokens/s, peak GPU memory in GB or None) of full training steps."""
    import contextlib

    import torch

    torch.manual_seed(0)
    if reference:
        from scaling.bench.nanogpt_ref import RefGPT

        model = RefGPT(a.d_model, a.n_layers, a.n_heads, a.ffn_hidden, a.vocab_size, a.seq_len).to(device)
    else:
        from scaling.model import Transformer

        model = Transformer(a, kernels=kernels).to(device)
    params = [p for p in model.parameters()]
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.1, **({"fused": True} if device.type == "cuda" else {}))
    fwd = torch.compile(model) if kernels == "compile" else model
    amp = (torch.autocast(device.type, dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext())
    g = torch.Generator(device="cpu").manual_seed(0)
    data = torch.randint(0, a.vocab_size, (4, batch, a.seq_len + 1), generator=g).to(device)

    def step(i):
        x = data[i % 4]
        with amp:
            loss = fwd(x[:, :-1], x[:, 1:])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    for i in range(warmup):
        step(i)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    sync()
    t0 = time.perf_counter()
    for i in range(steps):
        step(i)
    sync()
    dt = time.perf_counter() - t0
    mem = torch.cuda.max_memory_allocated(device) / 1e9 if device.type == "cuda" else None
    del model, opt, fwd, data
    if kernels == "compile":
        torch._dynamo.reset()
    return batch * a.seq_len * steps / dt, mem
