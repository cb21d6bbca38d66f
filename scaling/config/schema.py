"""Typed configuration of one training run: the schema and its conversions.

The dataclasses here are OmegaConf/Hydra structured configs: every field is typed
(str, int, float, bool, Optional, List, Enum or a nested dataclass), so a typo in an
override fails with OmegaConf's "Key ... is not in struct" message. A run's
configuration becomes a :class:`TrainConfig` once, at the entry point
(:func:`to_train_config`); :func:`scaling.config.plan.resolve` then checks it.

Imports neither torch nor numpy.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any, List, Optional, Union

from analysis.common.errors import ConfigError
from analysis.common.schedules import CooldownShape, ScheduleKind

# --------------------------------------------------------------------------- enums

# ScheduleKind and CooldownShape are defined with the schedule itself (analysis.common.schedules),
# which the curve laws read too.


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


class Logger(str, Enum):
    none = "none"
    tensorboard = "tensorboard"  # event files in <run_dir>/tensorboard (scaling.loggers)
    wandb = "wandb"              # Weights & Biases, offline unless WANDB_MODE says otherwise


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
    # Data-constrained runs (Muennighoff et al. 2023): train on only the first U tokens of the
    # training split, repeated for as many epochs as the budget needs. One of the two, or neither.
    unique_tokens: Optional[float] = None
    unique_fraction: Optional[float] = None  # U as a share of the training split
    # U per model parameter: Chinchilla-optimal data is about 20 tokens per parameter (Hoffmann
    # et al. 2022), so a fraction f of each size's optimal tokens is unique_tokens_per_param=20*f
    unique_tokens_per_param: Optional[float] = None


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
    # PaLM's auxiliary loss on the softmax normaliser, z_loss * mean(log Z^2) (Chowdhery et al.
    # 2022, Sec. 5): keeps log Z near 0 in long bf16 runs; 0 (off) by default, as in PaLM's 1e-4 only when asked
    z_loss: float = 0.0


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
    # sequences per forward per rank; default: the whole share. "auto": the largest that fits
    # the GPU's memory by scaling.memory's estimate (the whole share where no GPU is known)
    micro_batch: Optional[Union[int, str]] = None

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
    # recompute each block's activations in the backward pass instead of keeping them
    # (scaling.memory); micro_batch=auto turns it on where nothing fits without it
    activation_checkpointing: bool = False
    threads: Optional[int] = None          # torch CPU threads for this run
    peak_flops: Optional[float] = None     # per-device peak FLOP/s for MFU; default: looked up for known GPUs
    seed: int = 0
    on_nonfinite: OnNonFinite = OnNonFinite.stop
    progress: Progress = Progress.auto
    logger: Logger = Logger.none           # live curves: the rows of metrics.jsonl, also sent to TensorBoard or W&B

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

