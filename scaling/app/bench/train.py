"""End-to-end training throughput: ``python -m scaling.app.bench train``.

Two tables. **The trainer**: :class:`scaling.train.trainer.Trainer` itself, on the built-in
corpus, for each size in one process: *before* (the batch drawn on the main thread
as the loop once did, the loss read back every step) and *after* (the prefetching
loader, reads only at log steps), with tokens/s, the time each step waited for its
batch and the rest of the step, and the after/before ratio. This is what a sweep gets.

**The synthetic loop**, an upper bound: for each model size and each kernel choice
(eager, torch.compile, triton), full optimizer steps (forward, backward, clipping,
AdamW) of ``scaling.model`` on random tokens already on the device, and the same for a
nanoGPT-style plain-PyTorch model of the same shape (:mod:`scaling.app.bench.nanogpt_ref`)
measured in the same process, with tokens/s, MFU (PaLM's model FLOPs, Chowdhery et al.
2022 App. B, against the device's dense bf16 peak when it is known) and the ratio to
the reference. No data is loaded and nothing is logged, so no trainer runs faster.

Both tables interleave what they compare (:mod:`analysis.common.rounds`): ``--rounds`` rounds,
each timing every candidate once in an order rotated by one each round, so a busy
moment of a shared machine hits one round of every candidate rather than all of one.
Each ratio is taken within a round and shown as its median (min-max) over the rounds,
with the spread (max - min) / median; a spread above 10% is flagged in the table and
in one warning line.

Defaults follow the device: on CUDA the ~124M (``85m`` with a 50,304 vocabulary) and
~350M (``300m``) models at sequence 1024 in bf16; on a CPU small presets at sequence
256 in fp32, which finish in a few minutes (torch.compile alone takes ~20 s per model
there). On a GPU every candidate of a size stays in memory while the rounds run; "mem
GB" is a candidate's own weights, optimizer state and data plus the most one of its
turns allocated on top.
"""
# Deferred imports: the torch-loading modules (scaling.train.trainer, scaling.train.run, scaling.model,
# scaling.distributed, scaling.app.bench.nanogpt_ref) are imported where a measurement starts, so
# importing this module loads no torch, but no command starts faster for it (_main imports torch
# before it parses its options); scaling.config, scaling.flops, scaling.app.bench._docs,
# analysis.common.rounds (imported at the top as well) and analysis.common are light, deferred for no
# gain.
from __future__ import annotations

import argparse
import datetime as _dt
import platform
import sys
import time
from typing import Optional

from analysis.common.rounds import DEFAULT_ROUNDS

EXAMPLE = "python -m scaling.app.bench train --sizes nano,mini --kernels eager,compile --steps 8"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m scaling.app.bench train",
        description="Training tokens/s and MFU of scaling.model per size and kernel choice, "
                    "against a nanoGPT-style plain-PyTorch model of the same shape.",
        epilog=f"example:\n  {EXAMPLE}\n  python -m scaling.app.bench train   # on a GPU: 85m and 300m, seq 1024, bf16",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", help="comma-separated presets (default: 85m,300m on CUDA, nano,mini on CPU)")
    p.add_argument("--kernels", help="comma-separated subset of eager,compile,triton "
                                     "(default: all three on CUDA, eager,compile on CPU)")
    p.add_argument("--seq-len", type=int, help="sequence length (default 1024 on CUDA, 256 on CPU)")
    p.add_argument("--batch", type=int, help="sequences per step (default 16 on CUDA, 16 on CPU)")
    p.add_argument("--vocab", type=int, help="vocabulary (default 50304 on CUDA, 256 on CPU)")
    p.add_argument("--steps", type=int, help="timed steps (default 20 on CUDA, 8 on CPU)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first (compilation happens here)")
    p.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS,
                   help=f"interleaved rounds: each round times every candidate once, in an order rotated each "
                        f"round; ratios are taken within a round and reported as median (min-max) "
                        f"(default {DEFAULT_ROUNDS})")
    p.add_argument("--threads", type=int, help="torch CPU threads for the whole run (default: torch's)")
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                   help="the synthetic loop's clock: wall time, or (CPU only) this process's CPU time, which "
                        "other jobs on the machine do not inflate by descheduling it; with --threads 1 it is "
                        "the time the model ran (default wall; the trainer table always uses wall time)")
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
    p.add_argument("--write-docs", metavar="PATH", action="append",
                   help="replace this run's tables in PATH (docs/benchmarks.md) between their bench markers; "
                        "on a GPU the synthetic table (block train), on a CPU the trainer's table (block "
                        "train-cpu) and the synthetic one (block train-cpu-synthetic), each into the pages "
                        "given that have its markers; may be given more than once (README.md)")
    return p


def main(argv: Optional[list] = None) -> int:
    from analysis.common.errors import ToolkitError

    try:
        return _main(argv)
    except ToolkitError as e:
        print(f"scaling.app.bench train: error: {e}", file=sys.stderr)
        return 2


def _main(argv) -> int:
    import torch

    from analysis.common.errors import InputError
    from analysis.common.text import format_table, markdown_table, si
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
    if args.rounds < 1:
        raise InputError(f"--rounds={args.rounds} is not positive", field="--rounds", fix="e.g. --rounds 7")
    if args.threads is not None and args.threads < 1:
        raise InputError(f"--threads={args.threads} is not positive", field="--threads", fix="e.g. --threads 1")
    if args.clock == "cpu" and gpu:
        raise InputError("CPU time does not measure GPU work", field="--clock", fix="use --clock wall on a GPU")

    trainer_sizes = [] if args.trainer_sizes == "none" else _split(
        args.trainer_sizes or ("85m,300m" if gpu else "nano,mini,small"))
    for s in trainer_sizes:
        if s not in PRESETS:
            raise InputError(f"unknown preset {s!r}", field="--trainer-sizes",
                             fix="use names from `scaling train --help`, or none")
    # --write-docs: on a GPU the synthetic table goes into block "train"; on a CPU the
    # trainer's table into "train-cpu" and the synthetic one into "train-cpu-synthetic"
    # (never into the GPU's block), each into every given page that has its markers
    pages = _plan_pages(args.write_docs or [], gpu, trainer_sizes, args.no_synthetic, device.type)

    if args.threads:
        torch.set_num_threads(args.threads)
    from scaling import flops as F

    peak = args.peak_flops
    threads = torch.get_num_threads()
    name = (torch.cuda.get_device_name(device) if gpu
            else f"CPU {platform.machine()} ({threads} thread{'s' if threads != 1 else ''})")
    if peak is None and gpu:
        peak = F.peak_flops_for(name, precision)
    when = _dt.date.today().isoformat()
    setup = (f"seq {seq}, {batch} sequences/step, vocab {vocab}, {steps} timed steps after {args.warmup}, "
             f"{args.rounds} interleaved round{'s' if args.rounds != 1 else ''}")
    synth_setup = setup + (", timed in process CPU time" if args.clock == "cpu" else "")
    print(f"# scaling.app.bench train on {name}, {precision}, torch {torch.__version__}, {when}: {setup}", flush=True)
    load = _load_text()
    busy = _busy_warning()
    if busy and not gpu:
        print(busy, flush=True)
    def head(what: str) -> str:
        return (f"Device: {name} · Date: {when} · torch {torch.__version__} · {precision} · {what}"
                + (f" · {load} at the start" if not gpu and load else ""))

    written: dict[str, str] = {}

    if trainer_sizes:
        note, trows, tcomp = _trainer_rows(trainer_sizes, device, precision, seq, batch, steps, args)
        print("# " + note + "\n" + _trainer_table(trows, args.markdown), flush=True)
        _print_warning(tcomp)
        written["train-cpu"] = head(setup) + "\n\n" + note + ".\n\n" + _trainer_table(trows, True) + _warning_md(tcomp)
    if args.no_synthetic:
        _write(pages, written)
        return 0
    print("# synthetic loop (random tokens already on the device, nothing logged): an upper bound "
          "for the trainer" + ("; timed in process CPU time" if args.clock == "cpu" else ""), flush=True)

    rows, comparisons = _synthetic_rows(sizes, kernels, args, device, precision, batch, steps, vocab, seq, peak)

    cols = ["size", "params", "impl", "tokens_per_s", "x_eager", "mfu", "vs_reference", "spread"] + (
        ["peak_mem_gb"] if gpu else [])
    fmts = {"params": si, "tokens_per_s": si, "mfu": lambda x: "-" if x is None else f"{100 * x:.1f}%",
            "x_eager": _ratio_text, "vs_reference": _ratio_text, "spread": lambda x: x or "-",
            "peak_mem_gb": lambda x: "-" if x is None else f"{x:.1f}"}
    headers = {"tokens_per_s": "tok/s", "x_eager": "x eager", "vs_reference": "vs ref", "peak_mem_gb": "mem GB"}
    table = markdown_table if args.markdown else format_table
    print(table(rows, cols, fmts, headers))
    for r in rows:
        if "error" in r:
            print(f"{r['size']} {r['impl']}: {r['error']}")
    legend = ("tok/s: median over the rounds" + (" (tokens per CPU-second of this process)" if args.clock == "cpu"
                                                 else "") + "; x eager: tokens/s over our eager model's at the same size; "
              "vs ref: tokens/s over the nanoGPT-style model of the same shape "
              "(compile against its compiled run, eager and triton against its eager run); each ratio is "
              "taken within a round and shown as median (min-max) over the rounds; spread: the row's widest "
              "(max - min) / median; MFU uses 6N + 12LHQT per token" + ("" if peak else " and needs --peak-flops on "
                                                                         "this device"))
    print(legend)
    _print_warning(comparisons)
    if args.json:
        from analysis.common.records import atomic_write_json
        from analysis.common.rounds import plain

        atomic_write_json(args.json, {"device": name, "precision": precision, "seq_len": seq, "batch": batch,
                                      "vocab": vocab, "steps": steps, "rounds": args.rounds, "threads": threads,
                                      "peak_flops": peak, "torch": torch.__version__,
                                      "rows": [plain(r) for r in rows]})
    errors = "".join(f"\n\n{r['size']} {r['impl']}: {r['error']}" for r in rows if "error" in r)
    body = markdown_table(rows, cols, fmts, headers) + errors + _warning_md(comparisons)
    if gpu:
        written["train"] = (f"{head(synth_setup)} · MFU against {si(peak) if peak else 'an unknown'} FLOP/s\n\n" + body)
    else:
        written["train-cpu-synthetic"] = head(synth_setup) + "\n\n" + body
    _write(pages, written)
    return 0


def _plan_pages(paths: list, gpu: bool, trainer_sizes: list, no_synthetic: bool, device_type: str) -> dict:
    """page -> the blocks this run writes into it; fails before any timing when a page takes
    none of them, when a table would reach no page, or (GPU table) on a CPU."""
    from analysis.common.errors import InputError
    from scaling.app.bench import _docs

    if not paths:
        return {}
    if gpu:
        if no_synthetic:
            raise InputError("--no-synthetic leaves nothing to write", field="--write-docs",
                             fix="drop --no-synthetic, or leave --write-docs out")
        for path in paths:
            _docs.check_target(path, ["train"], device_type)
        return {path: ["train"] for path in paths}
    planned = (["train-cpu"] if trainer_sizes else []) + ([] if no_synthetic else ["train-cpu-synthetic"])
    if not planned:
        raise InputError("no table to write", field="--write-docs", fix="leave --write-docs out")
    pages = {}
    for path in paths:
        pages[path] = _docs.blocks_in(path, planned)
        if not pages[path]:
            raise InputError(f"{path} has no block for this run's CPU tables ({', '.join(planned)}); "
                             "its other tables are GPU measurements, which a CPU run does not write",
                             field="--write-docs", fix="pass docs/benchmarks.md, or run on a CUDA machine")
    for block in planned:
        if not any(block in got for got in pages.values()):
            what = "--trainer-sizes none" if block == "train-cpu" else "--no-synthetic"
            raise InputError(f"no page given has the block {block}", field="--write-docs",
                             fix=f"add docs/benchmarks.md, or pass {what}")
    return pages


def _write(pages: dict, written: dict) -> None:
    from scaling.app.bench._docs import write_blocks

    for path, names in pages.items():
        write_blocks(path, {n: written[n] for n in names})


def _ratio_text(r) -> str:
    return "-" if r is None else r.text()


def _spread(ratios) -> Optional[str]:
    from analysis.common.rounds import spread_text

    got = [r for r in ratios if r is not None]
    return spread_text(max(got, key=lambda r: r.spread)) if got else None


def _print_warning(comparisons: dict) -> None:
    from analysis.common.rounds import spread_warning

    w = spread_warning(comparisons)
    if w:
        print(w, flush=True)


def _warning_md(comparisons: dict) -> str:
    from analysis.common.rounds import spread_warning

    w = spread_warning(comparisons)
    return "" if not w else "\n\n**" + w.lstrip("# ").replace("warning:", "Warning:", 1) + "**"


class _Loop:
    """The two loops the trainer table compares, as Trainer's arguments."""

    BEFORE = {"prefetch": False, "read_every_step": True}
    AFTER = {"prefetch": True, "read_every_step": False}


def _trainer_rows(sizes, device, precision, seq, batch, steps, args) -> tuple[str, list, dict]:
    """The real trainer's tokens/s before and after, per size, the two loops interleaved in
    rounds: (what was measured, rows, {label: after/before Ratio})."""
    from analysis.common.rounds import interleave, median, ratio
    from analysis.common.text import si

    rows, comparisons = [], {}
    for size in sizes:
        def one(label, loop, size=size):
            return lambda: _measure_trainer(size, device, precision, seq, batch, steps, args.warmup,
                                            threads=args.threads, **loop)

        got = interleave({"before": one("before", _Loop.BEFORE), "after": one("after", _Loop.AFTER)}, args.rounds,
                         on_call=lambda r, label, res, size=size: print(
                             f"  trainer {size} {label} round {r + 1}: {si(res['tokens_per_s'])} tok/s",
                             file=sys.stderr, flush=True))
        tps = {k: [r["tokens_per_s"] for r in v] for k, v in got.items()}
        x = {"before": ratio(tps["before"], tps["before"]), "after": ratio(tps["after"], tps["before"])}
        comparisons[f"trainer {size} after vs before"] = x["after"]
        for label in ("before", "after"):
            res = got[label]
            rows.append({"size": size, "params": res[0]["params"], "loop": label,
                         "tokens_per_s": median(tps[label]),
                         "wait_ms": 1e3 * median([r["wait_s"] for r in res]),
                         "compute_ms": 1e3 * median([r["compute_s"] for r in res]),
                         "x_before": x[label], "spread": _spread([x["after"]]) if label == "after" else None})
    note = (f"the trainer (scaling.train.trainer.Trainer, built-in corpus, seq {seq}, {batch} sequences/step, "
            f"{steps} timed steps after {args.warmup}, kernels=auto, log_every=10, {args.rounds} rounds of "
            "before and after, the order rotated each round): before = batch drawn on the main thread and the "
            "loss read back every step; after = prefetching loader, reads at log steps. tok/s, data wait (time "
            "the loop waited for its batch) and rest (everything else in a step): medians over the rounds; "
            "x before: after's tokens/s over before's within each round, median (min-max); spread: "
            "(max - min) / median of that ratio")
    return note, rows, comparisons


def _trainer_table(rows: list, markdown: bool) -> str:
    from analysis.common.text import format_table, markdown_table, si

    cols = ["loop", "size", "params", "tokens_per_s", "wait_ms", "compute_ms", "x_before", "spread"]
    fmts = {"params": si, "tokens_per_s": si, "wait_ms": lambda x: f"{x:.2f}", "compute_ms": lambda x: f"{x:.1f}",
            "x_before": _ratio_text, "spread": lambda x: x or "-"}
    headers = {"tokens_per_s": "tok/s", "wait_ms": "data wait ms/step", "compute_ms": "rest ms/step",
               "x_before": "x before"}
    return (markdown_table if markdown else format_table)(rows, cols, fmts, headers)


def _measure_trainer(size, device, precision, seq, batch, steps, warmup, *, prefetch, read_every_step,
                     threads=None) -> dict:
    """Tokens/s of ``Trainer`` steps warmup+1 .. warmup+steps, and the seconds a step spent
    waiting for its batch; the first ``warmup`` steps are untimed."""
    import tempfile
    from pathlib import Path

    import torch

    from scaling import distributed as D
    from scaling.config import from_overrides
    from scaling.train.run import isolated, resolve_run
    from scaling.train.trainer import Trainer

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
                if self.first <= step <= total and not self.branches.active:
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
                              "progress=none", f"device={device}", f"precision={precision}", f"out={d}"]
                             + ([f"threads={threads}"] if threads else []))
        with isolated(cfg):
            world = D.World()
            t = Timed(cfg, resolve_run(cfg, world, Path(d)), world, prefetch=prefetch,
                      read_every_step=read_every_step)
            s = t.run()
    if s["status"] != "completed":
        raise RuntimeError(f"the trainer ended {s['status']}: {s.get('error')}")
    per_step = (t.t_last - t.t_first) / steps
    wait = t.wait / steps
    return {"params": s["params"], "tokens_per_s": batch * seq / per_step, "wait_s": wait,
            "compute_s": per_step - wait}


def _synthetic_rows(sizes, kernels, args, device, precision, batch, steps, vocab, seq, peak) -> tuple[list, dict]:
    """The synthetic loop's rows, and {label: Ratio} of every comparison they show.

    Per size, every candidate (our model per kernel choice, the reference eager and
    compiled) is built and warmed up first; then ``args.rounds`` rounds each time
    ``steps`` steps of every candidate, in an order rotated by one each round."""
    import torch

    from analysis.common.rounds import interleave, median, ratio, timed
    from scaling import flops as F

    rows, comparisons = [], {}
    sync = torch.cuda.synchronize if device.type == "cuda" else None
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    for size in sizes:
        a = _args(size, vocab, seq)
        per_tok = F.palm_flops_per_token(a)
        n_params = F.count_params(a)
        impls = [(k, False) for k in kernels]
        if not args.no_reference:
            impls += [(k, True) for k in ("eager", "compile") if k in kernels or k == "eager"]
        built, failed = {}, {}
        for kern, is_ref in impls:
            label = f"nanoGPT-style {kern}" if is_ref else kern
            print(f"  {size} {label}: building, {args.warmup} warm-up steps ...", file=sys.stderr, flush=True)
            try:
                built[label] = _Candidate(a, kern, is_ref, device, precision, batch, args.warmup)
            except Exception as e:  # one failing choice (e.g. triton without a GPU) must not end the table
                failed[label] = _one_line(e)

        def guarded(label, cand):
            run = timed(lambda: cand.steps(steps), clock=clock, sync=sync)

            def call():
                if label in failed:
                    return None
                try:
                    return cand.turn(run)
                except Exception as e:  # noqa: BLE001 - e.g. out of memory: reported in the table
                    failed[label] = _one_line(e)
                    return None
            return call

        secs = interleave({label: guarded(label, c) for label, c in built.items()}, args.rounds,
                          on_call=lambda r, label, s, size=size: print(
                              f"  {size} {label} round {r + 1}: " + ("failed" if s is None else
                                                                    f"{batch * seq * steps / s:,.0f} tok/s"),
                              file=sys.stderr, flush=True))
        mem = {label: c.peak_gb() for label, c in built.items()}
        for c in built.values():
            c.close()
        if any(k == "compile" for k, _ in impls):
            torch._dynamo.reset()
        built.clear()
        eager = secs.get("eager")
        for kern, is_ref in impls:
            label = f"nanoGPT-style {kern}" if is_ref else kern
            if label in failed:
                rows.append({"size": size, "impl": label, "params": n_params, "error": failed[label]})
                continue
            t = secs[label]
            tps = batch * seq * steps / median(t)
            row = {"size": size, "impl": label, "params": n_params, "tokens_per_s": tps,
                   "mfu": per_tok * tps / peak if peak else None, "peak_mem_gb": mem[label],
                   # The end-to-end target is stated against our own eager model.
                   "x_eager": ratio(eager, t) if eager and "eager" not in failed else None}
            if not is_ref:
                base = "nanoGPT-style " + ("compile" if kern == "compile" else "eager")
                row["vs_reference"] = ratio(secs[base], t) if base in secs and base not in failed else None
                comparisons[f"{size} {label} vs {base}"] = row["vs_reference"]
            if label != "eager":
                comparisons[f"{size} {label} vs eager"] = row["x_eager"]
            row["spread"] = _spread([row.get("x_eager") if label != "eager" else None, row.get("vs_reference")])
            rows.append(row)
    return rows, comparisons


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
                "other work shares the cores: tokens/s will be low, and the ratios, taken within each "
                "round, noisier")
    return None


def _load_text() -> Optional[str]:
    """``load average 1.3 on 2 CPUs``, or None where the system does not say."""
    import os

    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return None
    return f"load average {load:.1f} on {os.cpu_count() or 1} CPUs"


def _split(s: str) -> list:
    return [x.strip() for x in s.split(",") if x.strip()]


def _one_line(e: Exception) -> str:
    return f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"


def _args(size: str, vocab: int, seq: int):
    from scaling.config import PRESETS, ModelArgs, swiglu_hidden

    p = PRESETS[size]
    return ModelArgs(p.d_model, p.n_layers, p.n_heads, p.n_heads, swiglu_hidden(p.d_model), vocab, seq, preset=size)


class _Candidate:
    """One model of the synthetic loop, built, with its optimizer and data, and warmed up;
    :meth:`steps` runs full training steps (no timing of its own)."""

    def __init__(self, a, kernels: str, reference: bool, device, precision: str, batch: int, warmup: int):
        import contextlib

        import torch

        self.device, self.compiled = device, kernels == "compile"
        cuda = device.type == "cuda"
        before = torch.cuda.memory_allocated(device) if cuda else 0
        torch.manual_seed(0)
        if reference:
            from scaling.app.bench.nanogpt_ref import RefGPT

            model = RefGPT(a.d_model, a.n_layers, a.n_heads, a.ffn_hidden, a.vocab_size, a.seq_len).to(device)
        else:
            from scaling.model import Transformer

            model = Transformer(a, kernels=kernels).to(device)
        self.model = model
        self.params = [p for p in model.parameters()]
        self.opt = torch.optim.AdamW(self.params, lr=1e-4, weight_decay=0.1, **({"fused": True} if cuda else {}))
        self.fwd = torch.compile(model) if self.compiled else model
        self.amp = (torch.autocast(device.type, dtype=torch.bfloat16) if precision == "bf16"
                    else contextlib.nullcontext())
        g = torch.Generator(device="cpu").manual_seed(0)
        self.data = torch.randint(0, a.vocab_size, (4, batch, a.seq_len + 1), generator=g).to(device)
        self.i = 0
        self.steps(warmup)
        if cuda:
            torch.cuda.synchronize(device)
        # What this candidate keeps between its turns (weights, optimizer state, data); the
        # peak of a turn adds what one step allocates on top.
        self.resident = (torch.cuda.memory_allocated(device) - before) if cuda else None
        self.step_peak = 0

    def steps(self, n: int) -> None:
        import torch

        for _ in range(n):
            x = self.data[self.i % 4]
            self.i += 1
            with self.amp:
                loss = self.fwd(x[:, :-1], x[:, 1:])
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.params, 1.0)
            self.opt.step()
            self.opt.zero_grad(set_to_none=True)

    def turn(self, run):
        """``run()``'s result, noting on a GPU the memory the turn allocates above what was
        allocated before it."""
        import torch

        if self.device.type != "cuda":
            return run()
        torch.cuda.synchronize(self.device)
        torch.cuda.reset_peak_memory_stats(self.device)
        base = torch.cuda.memory_allocated(self.device)
        out = run()
        self.step_peak = max(self.step_peak, torch.cuda.max_memory_allocated(self.device) - base)
        return out

    def peak_gb(self) -> Optional[float]:
        """Peak GPU memory of this candidate alone (resident plus its largest turn), or None on a CPU."""
        return None if self.resident is None else (self.resident + self.step_peak) / 1e9

    def close(self) -> None:
        del self.model, self.opt, self.fwd, self.data, self.params
