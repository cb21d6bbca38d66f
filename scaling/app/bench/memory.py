"""The memory plan of every preset at its ``llama_ladder`` batch: ``python -m scaling.app.bench memory``.

For each preset of :data:`scaling.config.PRESETS`, composed as the ``llama_ladder``
experiment composes it (OLMo's batch rule, sequence 2048, bf16 autocast, triton
kernels; vocabulary 50257), on 8 GPUs or, when the batch has fewer sequences, one per
sequence: :mod:`scaling.memory`'s estimate at each GPU's whole share, with and without
activation checkpointing, and what ``micro_batch=auto`` picks on a GPU of
``--gpu-gb`` GB. Nothing is measured, so the table is the same on any machine;
``--write-docs docs/trainer.md`` puts it between the page's ``bench:memory`` markers.
"""
# Deferred imports: sweeps.launch (Hydra) is imported inside rows, which composes the
# llama_ladder experiment, so that --help and bad options answer without Hydra; scaling.config,
# scaling.flops, scaling.memory, sweeps.naming, scaling.app.bench._docs and analysis.common are
# light, deferred beside it for no gain.
from __future__ import annotations

import argparse
import sys
from typing import Optional

EXAMPLE = "python -m scaling.app.bench memory --markdown --write-docs docs/trainer.md"
VOCAB = 50257
MAX_GPUS = 8


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m scaling.app.bench memory",
                                description="Estimated peak memory per GPU of every preset at its llama_ladder batch.",
                                epilog=f"example:\n  {EXAMPLE}", formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--gpu-gb", type=float, default=80.0, help="GPU memory in GB (1e9 bytes) for micro_batch=auto "
                                                               "(default 80)")
    p.add_argument("--markdown", action="store_true", help="print a Markdown table")
    p.add_argument("--write-docs", metavar="PATH", help="replace the memory table in PATH (docs/trainer.md)")
    return p


def rows(gpu_bytes: int) -> list[dict]:
    """One row per preset: batch, GPUs, the estimates in bytes and micro_batch=auto's choice."""
    from scaling import config as C
    from scaling import flops as F
    from scaling import memory as MEM
    from sweeps.launch import compose
    from sweeps.naming import split_job_config

    out = []
    for name in C.PRESETS:
        tc, _ = split_job_config(compose("llama_ladder", ["data.source=/data/shards", f"data.vocab_size={VOCAB}",
                                                          f"model={name}"]))
        seqs = tc.batch_tokens // tc.seq_len
        world = min(MAX_GPUS, seqs)
        whole = {ck: MEM.estimate_memory(tc, vocab_size=VOCAB, world_size=world, micro_batch=seqs // world,
                                         checkpointing=ck) for ck in (False, True)}
        plan = C.resolve(tc, VOCAB, world, device_bytes=gpu_bytes)
        auto = MEM.estimate_memory(tc, vocab_size=VOCAB, world_size=world, micro_batch=plan.micro_batch,
                                   checkpointing=plan.activation_checkpointing)
        out.append({"preset": name, "params_nonembedding": F.nonembedding_params(plan.model), "seqs": seqs,
                    "gpus": world, "share": seqs // world, "static": whole[False].static,
                    "saved": whole[False].saved, "transient": whole[False].transient, "peak": whole[False].peak,
                    "peak_ckpt": whole[True].peak, "fits": whole[False].peak <= _usable(gpu_bytes),
                    "auto": f"{plan.micro_batch} x{plan.grad_accum}" + (", ckpt" if plan.activation_checkpointing
                                                                         else ""),
                    "auto_peak": auto.peak})
    return out


def _usable(gpu_bytes: int) -> float:
    from scaling import memory as MEM

    return (gpu_bytes - MEM.DEVICE_RESERVE_BYTES) * 0.9


def render(gpu_gb: float, markdown: bool = True) -> str:
    from analysis.common.text import format_table, markdown_table, si
    from scaling import memory as MEM

    gpu_bytes = int(gpu_gb * 1e9)
    got = rows(gpu_bytes)
    gib = lambda x: f"{x / 2**30:.1f}"  # noqa: E731
    cols = ["preset", "params_nonembedding", "seqs", "gpus", "share", "static", "saved", "transient", "peak",
            "peak_ckpt", "fits", "auto", "auto_peak"]
    fmts = {"params_nonembedding": si, "static": gib, "saved": gib, "transient": gib, "peak": gib, "peak_ckpt": gib,
            "fits": lambda x: "yes" if x else "no", "auto_peak": gib}
    headers = {"params_nonembedding": "N", "seqs": "batch (seqs)", "gpus": "GPUs", "share": "micro-batch (whole share)",
               "peak_ckpt": "peak with checkpointing", "fits": f"fits {gpu_gb:g} GB",
               "auto": f"micro_batch=auto on {gpu_gb:g} GB (x accumulation)", "auto_peak": "its peak"}
    head = (f"`{EXAMPLE}` (an estimate, no measurement): every preset composed as `llama_ladder` composes it "
            f"(OLMo batch rule, sequence 2048, vocabulary {VOCAB}, bf16 autocast, triton kernels) on "
            f"{MAX_GPUS} GPUs, fewer when the batch has fewer sequences; GiB per GPU; \"fits\" is against "
            f"{gpu_gb:g}e9 bytes less the {MEM.DEVICE_RESERVE_BYTES / 2**30:g}-GiB reserve and a 10% margin ({_usable(gpu_bytes) / 2**30:.1f} GiB "
            "usable).")
    return head + "\n\n" + (markdown_table if markdown else format_table)(got, cols, fmts, headers)


def main(argv: Optional[list] = None) -> int:
    from analysis.common.errors import ToolkitError

    from scaling import memory as MEM

    args = _parser().parse_args(argv)
    try:
        if not args.gpu_gb * 1e9 > MEM.DEVICE_RESERVE_BYTES:
            from analysis.common.errors import InputError

            raise InputError(f"must exceed the {MEM.DEVICE_RESERVE_BYTES / 1e9:.2f} GB reserve, got {args.gpu_gb}",
                             field="--gpu-gb", fix="e.g. --gpu-gb 80")
        text = render(args.gpu_gb, args.markdown or bool(args.write_docs))
        print(text)
        if args.write_docs:
            from scaling.app.bench._docs import write_blocks

            write_blocks(args.write_docs, {"memory": text})
    except ToolkitError as e:
        print(f"scaling.app.bench memory: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
