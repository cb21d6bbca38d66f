"""``scaling train key=value ...``: one run, configured by OmegaConf dotlist overrides."""
# Deferred imports: scaling.train.run and scaling.train.preflight (torch), sweeps.estimate (Hydra) and
# scaling.data.corpus (numpy) are imported inside the functions that need them because `scaling --help`
# imports every subcommand's module to build its parser; the deferred scaling.config,
# scaling.flops, scaling.memory and analysis.common.text imports gain nothing (_epilog imports
# scaling.config, which loads the others, whenever the parser is built) and may move up.
from __future__ import annotations

import argparse

from scaling.app.cli._common import add_command, print_json

EXAMPLE = "scaling train model=micro tokens=2e6 out=runs/micro"

#: Exit status of a run stopped by SIGTERM after checkpointing (128 + SIGTERM, as a shell
#: reports a terminated job), so a requeue loop can tell it from success.
EXIT_RESUMABLE = 143

MAIN_KEYS = (
    ("model", "preset name (below), or auto with model_params=N"),
    ("tokens | tokens_per_param | flops", "the budget: exactly one (flops uses flop_count=6n|detailed)"),
    ("seq_len, batch_tokens, micro_batch", "context length; global batch in tokens; sequences per forward"),
    ("optim.lr, optim.weight_decay, optim.grad_clip", "AdamW settings"),
    ("schedule.kind", "cosine | constant | wsd"),
    ("schedule.branches=[1e6,2e6]", "wsd: extra token budgets, one cooldown branch each"),
    ("data.source", "stdlib (default), a text file or directory, or .bin shards"),
    ("data.tokenizer", "byte (default) | bpe (with data.vocab_size)"),
    ("device, precision, kernels, compile", "auto | cpu | cuda; auto | fp32 | bf16; eager | compile | triton | auto"),
    ("ckpt_every_tokens, resume", "checkpoint period; auto | never | path.pt"),
    ("out", "run directory (default runs/<model>,<tokens>)"),
)


def _epilog() -> str:
    from analysis.common.text import si
    from scaling import flops as F
    from scaling.config import BYTE_VOCAB, PRESETS, ModelArgs, swiglu_hidden

    keys = "\n".join(f"  {k:<46} {v}" for k, v in MAIN_KEYS)
    rows = []
    for name, p in PRESETS.items():
        a = ModelArgs(p.d_model, p.n_layers, p.n_heads, p.n_heads, swiglu_hidden(p.d_model), BYTE_VOCAB, 256)
        rows.append(f"  {name:<6} d_model={p.d_model:<5} n_layers={p.n_layers:<3} n_heads={p.n_heads:<3}"
                    f" N={si(F.nonembedding_params(a))}")
    return ("main keys (all keys: --show-config):\n" + keys + "\n\npresets (N = non-embedding parameters):\n"
            + "\n".join(rows) + "\n\nThe run directory gets config.yaml, metrics.jsonl, summary.json and "
            "checkpoints/; rerunning the same command resumes an unfinished run.\n"
            f"\nexample:\n  {EXAMPLE}\n  scaling train model=tiny tokens_per_param=20 schedule.kind=wsd "
            "schedule.branches=[2e6,5e6]")


def add_parser(sub) -> argparse.ArgumentParser:
    p = add_command(sub, "train", help="Train one model for exactly a token budget and write its run record.",
                    example=EXAMPLE, func=run)
    p.epilog = _epilog()
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides, e.g. model=micro tokens=2e6")
    p.add_argument("--show-config", action="store_true",
                   help="print the merged configuration (every key) and the resolved plan, then exit")
    p.add_argument("--json", action="store_true",
                   help="print a JSON object (the run directory, the files of its record, the run's summary) "
                        "instead of the closing lines")
    return p


#: A run on a CPU expected to train longer than this many seconds is announced with a
#: warning before it starts (the README's example model=tiny tokens_per_param=20 takes 15-30 min).
LONG_CPU_RUN_SECONDS = 600
#: Above this many FLOPs per optimizer step no probe is timed (one step would take seconds
#: on a CPU); the estimate is then a lower bound at :data:`CPU_FLOPS_BOUND`.
PROBE_MAX_STEP_FLOPS = 5e11
CPU_FLOPS_BOUND = 1e11
#: A run whose training FLOPs take less than LONG_CPU_RUN_SECONDS even at this slow a rate
#: is short for certain: no probe is run for it (it would only slow every small run down).
CPU_FLOPS_SLOW = 1e9


def estimate(cfg, plan, device):
    """(seconds of training steps, tokens/s, how it was measured) for ``cfg``'s resolved
    ``plan`` on ``device``: a short timed probe of the run's model
    (:func:`sweeps.estimate.probe_tokens_per_s`) with the run's threads, or, for a shape too
    large to probe quickly on a CPU, its FLOPs at :data:`CPU_FLOPS_BOUND` (a lower bound).
    Validation, checkpoints and WSD branches add to it. The probe leaves torch's random
    state as it found it."""
    import torch

    from sweeps.estimate import probe_tokens_per_s

    if device.type == "cpu" and plan.flops_per_token * plan.batch_tokens > PROBE_MAX_STEP_FLOPS:
        return (plan.tokens * plan.flops_per_token / CPU_FLOPS_BOUND, CPU_FLOPS_BOUND / plan.flops_per_token,
                f"at least: its FLOPs at {CPU_FLOPS_BOUND:.0e} FLOP/s")
    default, rng = torch.get_num_threads(), torch.random.get_rng_state()
    try:
        torch.set_num_threads(cfg.threads or default)
        tps = probe_tokens_per_s(cfg, plan, device)
    finally:
        torch.set_num_threads(default)
        torch.random.set_rng_state(rng)
    return plan.tokens / tps, tps, "a short timed probe"


def announce_long_run(cfg):
    """``before_training`` for :func:`scaling.train.run.train`: warn when a CPU run is expected
    to train longer than :data:`LONG_CPU_RUN_SECONDS` (every check has passed by then)."""
    import warnings

    from analysis.common.text import si
    from sweeps.estimate import duration

    def hook(plan, device) -> None:
        if device.type != "cpu" or plan.tokens * plan.flops_per_token < LONG_CPU_RUN_SECONDS * CPU_FLOPS_SLOW:
            return
        seconds, tps, how = estimate(cfg, plan, device)
        if seconds > LONG_CPU_RUN_SECONDS:
            warnings.warn(f"this run will train for about {duration(seconds)} on this CPU ({si(tps)} tokens/s, "
                          f"{how}); fewer tokens, a smaller model or a GPU make it shorter (Ctrl-C stops it, and "
                          "rerunning resumes)")

    return hook


def run(args) -> int:
    import os

    from scaling.config import from_overrides

    cfg = from_overrides(args.overrides)
    if args.show_config:
        return _show(cfg)
    from scaling.train.run import train

    summary = train(cfg, before_training=announce_long_run(cfg))
    if int(os.environ.get("RANK", "0")) != 0:
        return 0
    run_dir = summary.run_dir  # named from the same Plan as summary["run_name"]
    status = summary["status"]
    if getattr(args, "json", False):
        files = sorted(str(p) for p in run_dir.rglob("*") if p.is_file())
        print_json({"run_dir": str(run_dir), "status": status, "written": files, "summary": summary})
        return EXIT_RESUMABLE if status == "resumable" else 0
    if status == "resumable":
        print(f"stopped early and checkpointed; rerun the same command to resume. run record: {run_dir}")
        return EXIT_RESUMABLE
    loss = summary.get("final_val_loss")
    loss_txt = f", final val loss {loss:.4f}" if loss is not None else ""
    if loss is not None and summary.get("final_val_bpb") is not None:
        loss_txt += f" ({summary['final_val_bpb']:.4f} bits per byte)"
    elif loss is not None and "val_bytes_per_token" in summary:  # kept, and unknown
        shards = (summary.get("data") or {}).get("tokenizer") == "pre-tokenized"
        loss_txt += (" (bits per byte unavailable: "
                     + ("pre-tokenized shards record no text bytes)" if shards else "the text's bytes are unknown)"))
    print(f"{status}: {summary['run_name']}{loss_txt}")
    print(f"run record: {run_dir}")
    return 0


def _show(cfg) -> int:
    import dataclasses

    from scaling.train import preflight
    from scaling.config import resolve, to_yaml
    from scaling.data.corpus import expected_vocab
    from scaling.memory import estimate_memory, format_estimate

    vocab = expected_vocab(cfg.data) or cfg.arch.vocab_size or 256
    try:  # the device the run would use; one it cannot use stops only the time estimate below
        dev, dev_error = preflight.resolve_device(cfg.device), None
    except Exception as e:
        dev, dev_error = None, e
    # micro_batch=auto is sized to that device's memory, as the trainer sizes it
    gpu = preflight.device_memory(dev) if dev is not None else None
    plan = resolve(cfg, vocab, device_bytes=gpu)
    print(to_yaml(cfg), end="")
    d = dataclasses.asdict(plan)
    print("# plan (vocabulary assumed %d until the data is read):" % vocab)
    print_json(d)
    est = estimate_memory(cfg, vocab_size=vocab, micro_batch=plan.micro_batch,
                          checkpointing=plan.activation_checkpointing)
    print(f"# memory per GPU (scaling.memory's estimate, docs/kernels.md): {format_estimate(est)}")
    from analysis.common.text import si
    from scaling.flops import count_params, nonembedding_params
    from sweeps.estimate import duration

    print(f"# parameters: {count_params(plan.model):,} ({nonembedding_params(plan.model):,} non-embedding)")
    try:  # the plan above, on the device the run would use
        if dev_error is not None:
            raise dev_error
        seconds, tps, how = estimate(cfg, plan, dev)
    except Exception as e:  # advisory: a device the probe cannot use does not stop --show-config
        print(f"# training time on this machine: not estimated ({type(e).__name__}: {str(e).splitlines()[0]})")
    else:
        print(f"# training time on this machine ({dev.type}): about {duration(seconds)} for {si(plan.tokens)} tokens "
              f"at {si(tps)} tokens/s ({how}; validation, checkpoints and branches add to it)")
    if plan.activation_checkpointing and not cfg.activation_checkpointing:
        print(f"# micro_batch=auto turned on activation checkpointing: without it not even one sequence "
              f"fits this GPU's {gpu / 2**30:.1f} GiB")
    return 0
