"""Typed configuration of one training run, and its resolution into concrete numbers.

The dataclasses here are OmegaConf/Hydra structured configs: every field is typed
(str, int, float, bool, Optional, List, Enum or a nested dataclass), so a typo in an
override fails with OmegaConf's "Key ... is not in struct" message. A run's
configuration becomes a :class:`TrainConfig` once, at the entry point
(:func:`to_train_config`), and :func:`resolve` checks the whole of it in one place and
turns it into a :class:`Plan` (model shape, steps, batch split, schedule points) or
raises :class:`~analysis.errors.ConfigError` naming the field and the fix.

Model sizes live in ONE table, :data:`PRESETS`. Their names give the approximate
non-embedding parameter count (Kaplan et al. 2020's N), which does not depend on the
vocabulary; ``docs/trainer.md`` lists the exact counts.

This module imports neither torch nor numpy, so sweeps can build and validate configs
cheaply.
"""
from __future__ import annotations

import copy
import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any, List, Optional

from analysis.errors import ConfigError

# --------------------------------------------------------------------------- presets


@dataclass(frozen=True)
class Preset:
    """One rung of the ladder: width, depth, heads (head size = d_model / n_heads)."""

    d_model: int
    n_layers: int
    n_heads: int


#: The model ladder. Depth grows more slowly than width: the aspect ratio d_model /
#: n_layers goes from 32 on the CPU-scale rungs to 64 in the middle and about 100 at 1B,
#: the range of the Chinchilla (Hoffmann et al. 2022, Table A9) and OLMo ladders. The
#: 85m and 300m rungs reuse GPT-2 small's and medium's shapes so that benchmarks compare
#: with nanoGPT directly. Head size is 32 on the small rungs, 64-128 above. The names are
#: the approximate non-embedding parameter counts.
PRESETS: dict[str, Preset] = {
    "nano": Preset(64, 2, 2),          # ~0.1M
    "micro": Preset(96, 3, 3),         # ~0.33M
    "tiny": Preset(128, 4, 4),         # ~0.85M
    "mini": Preset(192, 5, 6),         # ~2.2M
    "small": Preset(256, 6, 8),        # ~4.8M
    "10m": Preset(384, 6, 6),          # ~10.6M
    "25m": Preset(512, 8, 8),          # ~25.7M
    "50m": Preset(640, 10, 10),        # ~49.6M
    "85m": Preset(768, 12, 12),        # ~85M: GPT-2 small's shape (124M with a 50k vocabulary)
    "300m": Preset(1024, 24, 16),      # ~304M: GPT-2 medium's shape (355M with a 50k vocabulary)
    "680m": Preset(1536, 24, 16),      # ~680M
    "1b": Preset(2048, 20, 16),        # ~1.01B: OLMo-1B's width and heads
}

#: Vocabulary of the default byte-level tokenizer.
BYTE_VOCAB = 256


# --------------------------------------------------------------------------- enums


class ScheduleKind(str, Enum):
    cosine = "cosine"      # linear warmup, cosine decay to final_lr_frac at the budget
    constant = "constant"  # linear warmup, then constant
    wsd = "wsd"            # warmup-stable-decay (Hägele et al. 2024)


class CooldownShape(str, Enum):
    linear = "linear"
    sqrt = "sqrt"          # 1 - sqrt: reported to match or beat cosine (Hägele et al. 2024)
    cosine = "cosine"


class Tokenizer(str, Enum):
    byte = "byte"
    bpe = "bpe"


#: FLOP counts a ``flops`` budget can be given in: 6 x non-embedding parameters per token
#: (Kaplan et al. 2020), or the detailed count of Hoffmann et al. 2022, Appendix F. A
#: plain string, not an Enum, because OmegaConf matches Enum members by name and "6n"
#: cannot be one.
FLOP_COUNTS = ("6n", "detailed")


class OnNonFinite(str, Enum):
    stop = "stop"
    skip = "skip"


class Progress(str, Enum):
    auto = "auto"  # a bar on a terminal, log lines otherwise
    bar = "bar"
    log = "log"
    none = "none"


# --------------------------------------------------------------------------- schemas


@dataclass
class ModelConfig:
    """Overrides of the preset's architecture; ``None`` keeps the preset's value."""

    d_model: Optional[int] = None
    n_layers: Optional[int] = None
    n_heads: Optional[int] = None
    n_kv_heads: Optional[int] = None       # fewer than n_heads: grouped-query attention
    ffn_hidden: Optional[int] = None       # default: 8/3 d_model rounded up to ffn_multiple_of
    ffn_multiple_of: int = 64
    vocab_size: Optional[int] = None       # default: the tokenizer's vocabulary
    tie_embeddings: bool = True
    rope_theta: float = 10000.0
    norm_eps: float = 1e-5
    init_std: float = 0.02


@dataclass
class DataConfig:
    """Where tokens come from. ``source=stdlib`` is the running interpreter's standard library."""

    source: str = "stdlib"                 # "stdlib", a text file or directory, or .bin shards
    tokenizer: Tokenizer = Tokenizer.byte
    vocab_size: Optional[int] = None       # BPE: vocabulary to train (default 4096); shards: required
    val_frac: float = 0.05                 # share of documents (files) held out, chosen by path hash
    val_tokens: int = 65536                # size of the fixed validation set (predicted tokens)
    include_tests: bool = False            # stdlib: also use the test/ packages (~31 MB instead of ~12 MB)
    max_files: Optional[int] = None        # use only this many documents (a deterministic subset)
    max_bytes: Optional[int] = None        # ... or stop adding documents after this many bytes
    cache_dir: Optional[str] = None        # default: $SCALING_CACHE or ~/.cache/scaling-toolkit
    extensions: List[str] = field(default_factory=lambda: [".py", ".txt", ".md", ".rst"])


@dataclass
class OptimConfig:
    """AdamW (Loshchilov & Hutter 2019) with decay on matrices only, and gradient clipping."""

    lr: float = 3e-3
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-8
    grad_clip: float = 1.0                 # 0 disables clipping
    fused: Optional[bool] = None           # default: fused AdamW where torch supports it


@dataclass
class ScheduleConfig:
    """Learning-rate schedule. Fractions are of the run's total steps."""

    kind: ScheduleKind = ScheduleKind.cosine
    warmup_frac: float = 0.05
    warmup_tokens: Optional[float] = None  # overrides warmup_frac
    final_lr_frac: float = 0.1             # lr at the end, as a fraction of the peak
    cooldown_frac: float = 0.2             # wsd: share of the budget spent decaying
    cooldown_shape: CooldownShape = CooldownShape.sqrt
    branches: List[float] = field(default_factory=list)  # wsd: extra token budgets, one cooldown branch each


@dataclass
class TrainConfig:
    """Everything one training run needs. Set exactly one of tokens, tokens_per_param, flops."""

    model: str = "nano"                    # a PRESETS name, or "auto" with model_params
    model_params: Optional[float] = None   # model=auto: target non-embedding parameter count
    arch: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)

    # Budget: exactly one.
    tokens: Optional[float] = None
    tokens_per_param: Optional[float] = None  # x total parameters (Hoffmann et al. 2022 count N this way)
    flops: Optional[float] = None              # training FLOPs, by flop_count
    flop_count: str = "6n"                     # 6n | detailed, for a flops budget

    seq_len: int = 256
    batch_tokens: int = 8192               # global batch, all ranks and micro-batches together
    micro_batch: Optional[int] = None      # sequences per forward per rank; default: the whole share

    eval_count: int = 8                    # log-spaced validation points (plus the end)
    log_every: int = 10                    # steps between metric rows (eval steps and the last step always)
    ckpt_every_tokens: Optional[float] = None  # checkpoint period; default: only at the end
    keep_checkpoints: int = 2
    save_final: bool = True                # write a checkpoint at the end
    resume: str = "auto"                   # auto | never | path to a checkpoint file

    device: str = "auto"                   # auto | cpu | cuda | cuda:N
    precision: str = "auto"                # auto (bf16 autocast on CUDA, fp32 on CPU) | fp32 | bf16
    kernels: str = "auto"                  # eager | compile | triton | auto
    compile: bool = False                  # wrap the model in torch.compile
    threads: Optional[int] = None          # torch CPU threads for this run
    peak_flops: Optional[float] = None     # per-device peak FLOP/s for MFU; default: looked up for known GPUs
    seed: int = 0
    on_nonfinite: OnNonFinite = OnNonFinite.stop
    progress: Progress = Progress.auto

    out: Optional[str] = None              # run directory; default runs/<run_name>
    run_name: Optional[str] = None         # default: built from the model and budget


# --------------------------------------------------------------------------- conversion


def from_overrides(overrides: List[str], base: Any = None) -> TrainConfig:
    """Merge ``key=value`` overrides onto ``base`` (default: the defaults) into a TrainConfig.

    A misspelt key or a value of the wrong type raises ConfigError with OmegaConf's
    message ("Key 'tokenz' is not in struct ...") on one line.
    """
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    bad = [o for o in overrides if "=" not in o]
    if bad:
        raise ConfigError(f"override {bad[0]!r} has no '='", field=bad[0].split(".")[0],
                          fix="write overrides as key=value, e.g. tokens=2e6")
    try:
        cfg = OmegaConf.structured(TrainConfig) if base is None else _as_omegaconf(base)
        cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(list(overrides)))
        return OmegaConf.to_object(cfg)
    except OmegaConfBaseException as e:
        raise _omegaconf_error(e) from None


def to_train_config(cfg: Any) -> TrainConfig:
    """Accept a TrainConfig, an OmegaConf DictConfig (e.g. from Hydra) or a plain dict."""
    if isinstance(cfg, TrainConfig):
        return cfg
    from omegaconf.errors import OmegaConfBaseException
    from omegaconf import OmegaConf

    try:
        return OmegaConf.to_object(_as_omegaconf(cfg))
    except OmegaConfBaseException as e:
        raise _omegaconf_error(e) from None


def _as_omegaconf(cfg: Any):
    from omegaconf import DictConfig, OmegaConf

    base = OmegaConf.structured(TrainConfig)
    if isinstance(cfg, TrainConfig):
        return OmegaConf.structured(cfg)
    if isinstance(cfg, (dict, DictConfig)):
        return OmegaConf.merge(base, cfg)
    raise ConfigError(f"expected a TrainConfig, dict or DictConfig, got {type(cfg).__name__}",
                      field="cfg", fix="build one with scaling.config.from_overrides([...])")


def _omegaconf_error(e: Exception) -> ConfigError:
    key = getattr(e, "full_key", None) or "config"
    msg = str(e).split("\n")[0]
    return ConfigError(msg, field=str(key), fix="check the key's spelling and type with `scaling train --help`")


def to_dict(cfg: TrainConfig) -> dict:
    """Plain JSON-able dict of a config (Enums as their values)."""

    def conv(v):
        if isinstance(v, Enum):
            return v.value
        if isinstance(v, dict):
            return {k: conv(x) for k, x in v.items()}
        if isinstance(v, list):
            return [conv(x) for x in v]
        return v

    return conv(asdict(cfg))


def to_yaml(cfg: TrainConfig) -> str:
    from omegaconf import OmegaConf

    return OmegaConf.to_yaml(OmegaConf.create(to_dict(cfg)))


#: Fields that say where and how a run executes, not what it computes: they are left
#: out of the config hash, so a run resumed on another device, or with another
#: micro-batch or kernel choice, still matches.
_HASH_EXCLUDED = ("out", "run_name", "progress", "device", "threads", "resume", "log_every",
                  "ckpt_every_tokens", "keep_checkpoints", "save_final", "peak_flops", "micro_batch",
                  "kernels", "compile")


#: Fields added to TrainConfig after sweeps already existed, each with the value that
#: computes what runs did before the field existed. A field at that value is left out of
#: the hash, so adding a field does not rename (and so retrain) every finished run of a
#: resubmitted sweep. Register every new field here: {"optim.new_knob": old_behaviour}.
HASH_ADDED_FIELDS: dict[str, Any] = {}


def _hashed(d: dict) -> dict:
    """The part of a config dict the hash covers (a copy; ``d`` is left as it is)."""
    d = copy.deepcopy({k: v for k, v in d.items() if k not in _HASH_EXCLUDED})
    if isinstance(d.get("data"), dict):
        d["data"].pop("cache_dir", None)
    for key, old in HASH_ADDED_FIELDS.items():
        *parents, leaf = key.split(".")
        node = d
        for p in parents:
            node = node.get(p) if isinstance(node, dict) else None
        if isinstance(node, dict) and leaf in node and node[leaf] == old:
            del node[leaf]
    return d


def config_hash(cfg: TrainConfig) -> str:
    """Short stable hash of what the run computes; identical configs share it."""
    return hashlib.sha256(json.dumps(_hashed(to_dict(cfg)), sort_keys=True).encode()).hexdigest()[:16]


def config_diff(saved: dict, cfg: TrainConfig) -> List[tuple]:
    """``(dotted key, saved value, cfg's value)`` for each hashed key where a saved config
    dict (e.g. a checkpoint's) and ``cfg`` differ, so a mismatch can name its field."""

    def flat(d: dict, prefix: str = "") -> dict:
        out = {}
        for k, v in d.items():
            if isinstance(v, dict):
                out.update(flat(v, f"{prefix}{k}."))
            else:
                out[f"{prefix}{k}"] = v
        return out

    a, b = flat(_hashed(saved)), flat(_hashed(to_dict(cfg)))
    return [(k, a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


# --------------------------------------------------------------------------- resolution


@dataclass(frozen=True)
class ModelArgs:
    """A concrete architecture: every number the model and the FLOP count need."""

    d_model: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    ffn_hidden: int
    vocab_size: int
    seq_len: int
    tie_embeddings: bool = True
    rope_theta: float = 10000.0
    norm_eps: float = 1e-5
    init_std: float = 0.02
    preset: str = "custom"

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads


def swiglu_hidden(d_model: int, multiple_of: int = 64) -> int:
    """LLaMA's SwiGLU width: 2/3 of a 4d MLP, so the three matrices cost what two 4d ones
    would (Shazeer 2020; Touvron et al. 2023), rounded up to a multiple for fast matmuls."""
    h = math.ceil(8 * d_model / 3)
    return multiple_of * math.ceil(h / multiple_of)


def shape_for_params(target: float, multiple_of: int = 64) -> Preset:
    """The ladder-like shape whose non-embedding parameter count is nearest ``target``.

    Widths are tried in steps of 16; each takes the head size and, give or take one
    layer, the depth that the ladder's aspect ratio gives at that width (interpolated in
    log width between neighbouring presets), so a requested size lands on a shape
    consistent with the named rungs.
    """
    from scaling import flops as F

    if not target or target <= 0:
        raise ConfigError(f"needs a positive parameter count, got {target!r}", field="model_params",
                          fix="e.g. model=auto model_params=3e6")
    rungs = sorted(PRESETS.values(), key=lambda p: p.d_model)
    best, best_err = None, math.inf
    for d in range(32, 8192 + 1, 16):
        aspect, head = _interp_rung(rungs, d)
        n_heads = max(1, round(d / head))
        while d % n_heads or (d // n_heads) % 2:
            n_heads -= 1
        depth = max(1, round(d / aspect))
        for n_layers in range(max(1, depth - 1), depth + 2):
            shape = ModelArgs(d, n_layers, n_heads, n_heads, swiglu_hidden(d, multiple_of), BYTE_VOCAB, 1)
            # nearest in log N; off-ratio depths pay a little so ties go to the ladder's shape
            err = abs(math.log(F.nonembedding_params(shape) / target)) + 0.01 * abs(n_layers - depth)
            if err < best_err:
                best, best_err = Preset(d, n_layers, n_heads), err
    return best


def _interp_rung(rungs: List[Preset], d: int) -> tuple[float, float]:
    """(aspect ratio, head size) at width d, log-linearly between the ladder's rungs."""
    pts = [(math.log(p.d_model), p.d_model / p.n_layers, p.d_model / p.n_heads) for p in rungs]
    x = math.log(d)
    if x <= pts[0][0]:
        return pts[0][1], pts[0][2]
    if x >= pts[-1][0]:
        return pts[-1][1], pts[-1][2]
    for (x0, a0, h0), (x1, a1, h1) in zip(pts, pts[1:]):
        if x0 <= x <= x1:
            t = (x - x0) / (x1 - x0) if x1 > x0 else 0.0
            return a0 + t * (a1 - a0), h0 + t * (h1 - h0)
    raise AssertionError("unreachable")


def model_args(cfg: TrainConfig, vocab_size: int) -> ModelArgs:
    """The concrete architecture of a config, given the data's vocabulary size."""
    a = cfg.arch
    if cfg.model == "auto":
        if cfg.model_params is None:
            raise ConfigError("model=auto needs a target size", field="model_params",
                              fix="set model_params, e.g. model=auto model_params=3e6, or name a preset")
        base = shape_for_params(cfg.model_params, a.ffn_multiple_of)
        name = f"auto({base.d_model}x{base.n_layers})"
    else:
        if cfg.model_params is not None:
            raise ConfigError("model_params is only read with model=auto", field="model_params",
                              fix=f"drop model_params, or set model=auto instead of model={cfg.model}")
        if cfg.model not in PRESETS:
            raise ConfigError(f"unknown preset {cfg.model!r}", field="model",
                              fix="use one of " + ", ".join(PRESETS) + ", or model=auto model_params=N")
        base, name = PRESETS[cfg.model], cfg.model
    d = a.d_model or base.d_model
    n_layers = a.n_layers or base.n_layers
    n_heads = a.n_heads or (base.n_heads if d == base.d_model else max(1, d // (base.d_model // base.n_heads)))
    n_kv = a.n_kv_heads or n_heads
    vocab = a.vocab_size or vocab_size
    if a.d_model or a.n_layers or a.n_heads or a.n_kv_heads or a.ffn_hidden:
        name = "custom"
    for fname, v in (("arch.d_model", d), ("arch.n_layers", n_layers), ("arch.n_heads", n_heads),
                     ("arch.n_kv_heads", n_kv), ("arch.ffn_multiple_of", a.ffn_multiple_of)):
        if v < 1:
            raise ConfigError(f"must be a positive integer, got {v}", field=fname, fix="use a value >= 1")
    if d % n_heads:
        raise ConfigError(f"d_model={d} is not divisible by n_heads={n_heads}", field="arch.n_heads",
                          fix="pick n_heads dividing d_model")
    if (d // n_heads) % 2:
        raise ConfigError(f"head size {d // n_heads} is odd; rotary embeddings rotate pairs",
                          field="arch.n_heads", fix="pick n_heads so that d_model / n_heads is even")
    if n_heads % n_kv:
        raise ConfigError(f"n_heads={n_heads} is not a multiple of n_kv_heads={n_kv}",
                          field="arch.n_kv_heads", fix="pick n_kv_heads dividing n_heads")
    if vocab < vocab_size:
        raise ConfigError(f"vocab_size={vocab} is smaller than the data's vocabulary ({vocab_size})",
                          field="arch.vocab_size", fix=f"set arch.vocab_size >= {vocab_size} or leave it unset")
    return ModelArgs(
        d_model=d, n_layers=n_layers, n_heads=n_heads, n_kv_heads=n_kv,
        ffn_hidden=a.ffn_hidden or swiglu_hidden(d, a.ffn_multiple_of), vocab_size=vocab,
        seq_len=cfg.seq_len, tie_embeddings=a.tie_embeddings, rope_theta=a.rope_theta,
        norm_eps=a.norm_eps, init_std=a.init_std, preset=name,
    )


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


def resolve(cfg: TrainConfig, vocab_size: int, world_size: int = 1) -> Plan:
    """Check the whole config and derive the plan; the one place configs are validated."""
    from scaling import flops as F  # torch-free; imported here to keep this module standalone

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
    micro = cfg.micro_batch or per_rank
    if micro > per_rank or per_rank % micro:
        raise ConfigError(f"micro_batch={micro} does not divide the {per_rank} sequences each process gets",
                          field="micro_batch", fix=f"use a divisor of {per_rank}")

    budget = [k for k in ("tokens", "tokens_per_param", "flops") if getattr(cfg, k) is not None]
    if len(budget) != 1:
        raise ConfigError("set exactly one budget" + (f" (got {', '.join(budget)})" if budget else ""),
                          field="tokens", fix="give one of tokens=2e6, tokens_per_param=20, flops=1e15")
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
    if s.warmup_tokens is not None:
        warmup = round(s.warmup_tokens / cfg.batch_tokens)
    else:
        warmup = round(s.warmup_frac * steps)
    if not 0 <= s.warmup_frac < 1 or warmup >= steps and steps > 1:
        raise ConfigError(f"warmup ({warmup} steps) must be shorter than the run ({steps} steps)",
                          field="schedule.warmup_frac", fix="lower the warmup or raise the budget")
    if not 0 <= s.final_lr_frac <= 1:
        raise ConfigError(f"must lie in [0, 1], got {s.final_lr_frac}", field="schedule.final_lr_frac",
                          fix="e.g. schedule.final_lr_frac=0.1")
    if not 0 < s.cooldown_frac <= 1:
        raise ConfigError(f"must lie in (0, 1], got {s.cooldown_frac}", field="schedule.cooldown_frac",
                          fix="e.g. schedule.cooldown_frac=0.2")
    if s.kind == ScheduleKind.wsd:
        decay_start = max(warmup, steps - max(1, round(s.cooldown_frac * steps)))
    else:
        decay_start = warmup

    branches = []
    if s.branches:
        if s.kind != ScheduleKind.wsd:
            raise ConfigError("cooldown branches need the warmup-stable-decay schedule",
                              field="schedule.branches", fix="set schedule.kind=wsd or drop the branches")
        for b in sorted(set(float(x) for x in s.branches)):
            end = round(b / cfg.batch_tokens)
            fork = end - max(1, round(s.cooldown_frac * end))
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
        flops_6n_per_token=per_tok_6n,
    )


def _check_positive(cfg: TrainConfig) -> None:
    for name in ("seq_len", "batch_tokens", "eval_count", "log_every", "keep_checkpoints"):
        if getattr(cfg, name) < 1:
            raise ConfigError(f"must be >= 1, got {getattr(cfg, name)}", field=name, fix="use a positive integer")
    if cfg.micro_batch is not None and cfg.micro_batch < 1:
        raise ConfigError(f"must be >= 1, got {cfg.micro_batch}", field="micro_batch", fix="use a positive integer")
    if cfg.optim.lr <= 0:
        raise ConfigError(f"must be positive, got {cfg.optim.lr}", field="optim.lr", fix="e.g. optim.lr=3e-3")
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


def default_run_name(cfg: TrainConfig, plan: Plan) -> str:
    from analysis.text import si

    return f"model={plan.model.preset},tokens={si(plan.tokens)}"
