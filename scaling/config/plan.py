"""A config resolved into the numbers the trainer executes: :func:`resolve` and its :class:`Plan`.

:func:`resolve` checks the whole config in one place and turns it into a :class:`Plan`
(model shape, steps, batch split, schedule points) or raises
:class:`~analysis.common.errors.ConfigError` naming the field and the fix.

Imports neither torch nor numpy, so sweeps can build and validate configs cheaply.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Optional

from analysis.common import schedules
from analysis.common.errors import ConfigError

from scaling import flops as F
from scaling import memory
from scaling.shapes import ModelArgs

from .ladder import model_args
from .schema import FLOP_COUNTS, OptimConfig, ScheduleKind, TrainConfig


@dataclass(frozen=True)
class Plan:
    """A validated run: the numbers the trainer executes, all derived from the config."""

    model: ModelArgs
    total_steps: int
    tokens: int                     # exactly total_steps * batch_tokens
    batch_tokens: int
    batch_seqs: int                 # sequences per step, all ranks
    micro_batch: int                # sequences per forward per rank
    grad_accum: int                 # micro-batches per step per rank
    world_size: int
    warmup_steps: int
    decay_start: int                # first step of the decay (cosine: warmup end; wsd: cooldown start)
    eval_steps: tuple               # steps after which validation loss is measured
    branches: tuple                 # ((fork_step, end_step), ...) for WSD cooldown branches
    ckpt_every: int                 # steps between checkpoints; 0 = only at the end
    flops_per_token: float          # detailed (App. F) training FLOPs per token
    flops_6n_per_token: float       # 6 * N_nonembedding
    # activation checkpointing: asked for, or micro_batch=auto's choice where nothing fits without it
    activation_checkpointing: bool = False


def resolve(cfg: TrainConfig, vocab_size: int, world_size: int = 1, device_bytes: Optional[int] = None) -> Plan:
    """Check the whole config and derive the plan; the one place configs are validated.

    ``device_bytes`` is the memory of the CUDA device the run trains on, where one is
    known: ``micro_batch=auto`` then takes :func:`scaling.memory.pick_micro_batch`'s
    choice (with activation checkpointing where only that fits), and each process's
    whole share elsewhere."""
    args = model_args(cfg, vocab_size)
    _check_positive(cfg)

    if cfg.batch_tokens % cfg.seq_len:
        raise ConfigError(f"batch_tokens={cfg.batch_tokens} is not a multiple of seq_len={cfg.seq_len}",
                          field="batch_tokens", fix=f"use a multiple of {cfg.seq_len}, e.g. "
                          f"{max(1, round(cfg.batch_tokens / cfg.seq_len)) * cfg.seq_len}")
    batch_seqs = cfg.batch_tokens // cfg.seq_len
    if batch_seqs % world_size:
        raise ConfigError(f"{batch_seqs} sequences per batch do not split over {world_size} processes",
                          field="batch_tokens", fix=f"use a multiple of {world_size * cfg.seq_len} tokens")
    per_rank = batch_seqs // world_size
    micro, recompute = cfg.micro_batch or per_rank, cfg.activation_checkpointing
    if micro == "auto":
        micro = per_rank
        if device_bytes is not None:
            micro, recompute = _fitting_micro_batch(cfg, vocab_size, world_size, device_bytes)
    if micro > per_rank or per_rank % micro:
        raise ConfigError(f"micro_batch={micro} does not divide the {per_rank} sequences each process gets",
                          field="micro_batch", fix=f"use a divisor of {per_rank}")

    budget = [k for k in ("tokens", "tokens_per_param", "flops") if getattr(cfg, k) is not None]
    if not budget:
        raise ConfigError("set exactly one budget (got none)", field="tokens",
                          fix="give one of tokens=2e6, tokens_per_param=20, flops=1e15")
    if len(budget) > 1:
        # Usually one comes from a preset or experiment (e.g. the demo's own tokens) and one
        # from the command line (budget=flops, tokens_per_param=...): name both, and the null.
        got = " and ".join(f"{k}={getattr(cfg, k):g}" for k in budget)
        keep = next((k for k in budget if k != "tokens"), budget[-1])
        drop = [k for k in budget if k != keep]
        raise ConfigError(f"set exactly one budget, got {got} (a preset or experiment may set one of them "
                          "itself)", field=drop[0],
                          fix=f"to keep {keep}, add {' '.join(f'{k}=null' for k in drop)}; or keep "
                              f"{drop[0]} and add {keep}=null")
    per_tok_6n = F.flops_6n_per_token(args)
    per_tok = F.training_flops_per_token(args)
    if cfg.tokens is not None:
        want, fld = float(cfg.tokens), "tokens"
    elif cfg.tokens_per_param is not None:
        want, fld = float(cfg.tokens_per_param) * F.count_params(args), "tokens_per_param"
    else:
        if cfg.flop_count not in FLOP_COUNTS:
            raise ConfigError(f"unknown FLOP count {cfg.flop_count!r}", field="flop_count",
                              fix="use flop_count=6n or flop_count=detailed")
        per = per_tok_6n if cfg.flop_count == "6n" else per_tok
        want, fld = float(cfg.flops) / per, "flops"
    if not math.isfinite(want) or want <= 0:
        raise ConfigError(f"budget must be positive and finite, got {getattr(cfg, fld)!r}", field=fld,
                          fix="give a positive number, e.g. tokens=2e6")
    steps = round(want / cfg.batch_tokens)
    # Steps round to the nearest whole batch, but a budget below one batch is refused:
    # rounding it up would train on more tokens than asked, by up to the whole batch.
    if want < cfg.batch_tokens:
        raise ConfigError(f"the budget ({want:.4g} tokens) is smaller than one global batch "
                          f"({cfg.batch_tokens} tokens)", field=fld,
                          fix=f"raise {fld} to cover at least {cfg.batch_tokens} tokens, or lower batch_tokens")

    s = cfg.schedule
    warmup = schedules.warmup_steps(steps, cfg.batch_tokens, s.warmup_frac, s.warmup_tokens)
    if not 0 <= s.warmup_frac < 1 or warmup >= steps and steps > 1:
        raise ConfigError(f"warmup ({warmup} steps) must be shorter than the run ({steps} steps)",
                          field="schedule.warmup_frac", fix="lower the warmup or raise the budget")
    if not 0 <= s.final_lr_frac <= 1:
        raise ConfigError(f"must lie in [0, 1], got {s.final_lr_frac}", field="schedule.final_lr_frac",
                          fix="e.g. schedule.final_lr_frac=0.1")
    if not 0 < s.cooldown_frac <= 1:
        raise ConfigError(f"must lie in (0, 1], got {s.cooldown_frac}", field="schedule.cooldown_frac",
                          fix="e.g. schedule.cooldown_frac=0.2")
    decay_start = schedules.decay_start(s.kind, steps, warmup, s.cooldown_frac)

    branches = []
    if s.branches:
        if s.kind != ScheduleKind.wsd:
            raise ConfigError("cooldown branches need the warmup-stable-decay schedule",
                              field="schedule.branches", fix="set schedule.kind=wsd or drop the branches")
        for b in sorted(set(float(x) for x in s.branches)):
            end = round(b / cfg.batch_tokens)
            fork = schedules.cooldown_start(end, s.cooldown_frac)
            if end >= steps:
                raise ConfigError(f"branch budget {b:.4g} is not below the run's own budget "
                                  f"({steps * cfg.batch_tokens} tokens)", field="schedule.branches",
                                  fix="the run's end is already a point; list smaller budgets only")
            if fork < warmup or fork < 1:
                raise ConfigError(f"branch budget {b:.4g} would fork before warmup ends (step {warmup})",
                                  field="schedule.branches", fix="list larger budgets or shorten the warmup")
            if fork > decay_start:
                raise ConfigError(f"branch budget {b:.4g} would fork after the main cooldown starts",
                                  field="schedule.branches", fix="list smaller budgets")
            branches.append((fork, end))

    evals = set(_log_spaced_steps(steps, cfg.eval_count))
    evals.add(steps)

    ckpt_every = 0
    if cfg.ckpt_every_tokens is not None:
        ckpt_every = max(1, round(cfg.ckpt_every_tokens / cfg.batch_tokens))
    if cfg.resume not in ("auto", "never") and not cfg.resume.endswith(".pt"):
        raise ConfigError(f"unknown resume mode {cfg.resume!r}", field="resume",
                          fix="use resume=auto, resume=never or a path to a .pt checkpoint")
    if cfg.precision not in ("auto", "fp32", "bf16"):
        raise ConfigError(f"unknown precision {cfg.precision!r}", field="precision", fix="use auto, fp32 or bf16")

    return Plan(
        model=args, total_steps=steps, tokens=steps * cfg.batch_tokens, batch_tokens=cfg.batch_tokens,
        batch_seqs=batch_seqs, micro_batch=micro, grad_accum=per_rank // micro, world_size=world_size,
        warmup_steps=warmup, decay_start=decay_start, eval_steps=tuple(sorted(evals)),
        branches=tuple(branches), ckpt_every=ckpt_every, flops_per_token=per_tok,
        flops_6n_per_token=per_tok_6n, activation_checkpointing=recompute,
    )


def _fitting_micro_batch(cfg: TrainConfig, vocab_size: int, world_size: int,
                         device_bytes: int) -> tuple[int, bool]:
    """(micro-batch, activation checkpointing) of micro_batch=auto on a device."""
    choice = memory.pick_micro_batch(cfg, device_bytes, vocab_size=vocab_size, world_size=world_size,
                                     checkpointing=True if cfg.activation_checkpointing else None)
    return choice.micro_batch, choice.checkpointing


#: The largest vocabulary accepted: in-use LLM vocabularies reach about 256k tokens (Gemma),
#: so anything past 2^20 is a typo, and its embedding alone would not fit in memory.
MAX_VOCAB = 1 << 20


def check_settings(cfg: TrainConfig) -> None:
    """The checks that need neither the data nor the model: counts, the optimizer's numbers,
    ``threads``. :func:`resolve` runs them too; :func:`scaling.train.run.train` runs them first,
    before it applies ``threads`` or reads any data."""
    _check_positive(cfg)


def _check_positive(cfg: TrainConfig) -> None:
    for name in ("seq_len", "batch_tokens", "eval_count", "log_every", "keep_checkpoints"):
        if getattr(cfg, name) < 1:
            raise ConfigError(f"must be >= 1, got {getattr(cfg, name)}", field=name, fix="use a positive integer")
    if cfg.seq_len > cfg.batch_tokens:  # else the batch check below suggests a batch of seq_len tokens
        raise ConfigError(f"seq_len={cfg.seq_len} is longer than a whole batch (batch_tokens={cfg.batch_tokens})",
                          field="seq_len", fix="use a context of a few hundred to a few thousand tokens, e.g. "
                          "seq_len=256, or raise batch_tokens to a multiple of seq_len")
    mb = cfg.micro_batch
    if isinstance(mb, str) and mb != "auto" or isinstance(mb, int) and mb < 1:
        raise ConfigError(f"must be a positive integer or auto, got {mb!r}", field="micro_batch",
                          fix="use a positive integer, auto, or leave it unset for each process's whole share")
    for name, value in (("data.vocab_size", cfg.data.vocab_size), ("arch.vocab_size", cfg.arch.vocab_size)):
        if value is not None and not (2 <= value <= MAX_VOCAB):
            # checked before any tokenising: a typo such as 1e8 would train a tokenizer, then
            # try to allocate an embedding of vocab x width floats (25.6 GB at 1e8 x 64)
            raise ConfigError(f"a vocabulary of {value:,} tokens", field=name,
                              fix=f"use 2 to {MAX_VOCAB:,} tokens (language models use about 32k-256k), "
                                  "or leave it unset for the tokenizer's own")
    o = cfg.optim
    for name in ("lr", "weight_decay", "beta1", "beta2", "eps", "grad_clip", "z_loss"):
        if not math.isfinite(getattr(o, name)):  # NaN passes every comparison below
            raise ConfigError(f"must be a finite number, got {getattr(o, name)}", field=f"optim.{name}",
                              fix=f"give a number, e.g. optim.{name}={getattr(OptimConfig, name)}")
    if cfg.optim.lr <= 0:
        raise ConfigError(f"must be positive, got {cfg.optim.lr}", field="optim.lr", fix="e.g. optim.lr=3e-3")
    if not cfg.optim.z_loss >= 0:
        raise ConfigError(f"must be >= 0, got {cfg.optim.z_loss}", field="optim.z_loss",
                          fix="e.g. optim.z_loss=1e-4 (PaLM's value), or 0 to turn it off")
    if cfg.optim.grad_clip < 0:
        raise ConfigError(f"must be >= 0, got {cfg.optim.grad_clip}", field="optim.grad_clip",
                          fix="use 0 to disable clipping")
    if cfg.threads is not None and cfg.threads < 1:
        raise ConfigError(f"must be >= 1, got {cfg.threads}", field="threads", fix="leave unset for torch's default")


def _log_spaced_steps(total: int, count: int) -> List[int]:
    """``count`` steps spread evenly in log(step) from 1% of the run to its end; earlier
    points would mostly measure the warmup."""
    first = max(1, total // 100)
    if count <= 1 or total <= first:
        return [total]
    lo, hi = math.log(first), math.log(total)
    return sorted({round(math.exp(lo + (hi - lo) * i / (count - 1))) for i in range(count)})

