"""From a composed sweep job config to a training config and a run directory name.

A run's directory is a pure function of its training configuration: the readable part
names the model and the budget as written (``model=micro,tokens=20M``), and a short hash
of the whole resolved training config (:func:`scaling.config.config_hash`) follows it,
so two configs that differ anywhere get different directories and resubmitting the same
sweep finds the same directories again. Launch time, job number, launcher, device and
other execution details never enter the name.

Everything here is torch-free: it runs in the launching process, inside Hydra's
interpolation of ``hydra.sweep.subdir``, and in every job.
"""
# Deferred imports: scaling.data.corpus (numpy) is imported inside vocab_size and only for a BPE run
# without an explicit vocabulary, so naming other runs loads no numpy; the deferred scaling.flops
# imports gain nothing (scaling.config, imported at the top, loads it) and may move up.
from __future__ import annotations

import math
from typing import Any, Tuple

from analysis.common.errors import ConfigError
from analysis.common.text import si

from scaling import config as C

#: Length of the config hash in a run directory's name.
HASH_CHARS = 8

#: OLMo model-ladder defaults (OLMo-core ``model_ladder``): reference size, LR and batch.
_OLMO_REF_PARAMS = 108e6
_OLMO_REF_LR = 0.0047
_OLMO_REF_BATCH_SEQS = 160


def split_job_config(cfg: Any) -> Tuple[C.TrainConfig, dict]:
    """Split a composed job config (DictConfig or dict) into (TrainConfig, sweep options).

    Sweep-level conveniences are resolved here, before the hash is taken, so the run's
    identity is what it trains: IsoFLOP sizing, per-size rules and WSD branches given
    per parameter or as fractions all become plain training-config values.
    """
    from omegaconf import DictConfig, OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        if isinstance(cfg, DictConfig):
            # Leave out Hydra's own node: its run directory interpolates this very function.
            data = OmegaConf.to_container(OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"]),
                                          resolve=True)
        else:
            data = dict(cfg)
    except OmegaConfBaseException as e:
        if "tokens_by_model" in str(e):
            model = cfg.get("model") if hasattr(cfg, "get") else None
            raise ConfigError(f"no token budget for model {model!r}", field="sweep.tokens_by_model",
                              fix=f"add one with ++sweep.tokens_by_model.{model}=TOKENS, or give every size "
                                  "one budget with tokens=TOKENS") from None
        raise ConfigError(str(e).split("\n")[0], field=str(getattr(e, "full_key", "") or "config"),
                          fix="check the key's spelling and value") from None
    data.pop("hydra", None)
    sweep = dict(data.pop("sweep", None) or {})
    tc = C.to_train_config(data)

    ratio = sweep.get("isoflop_ratio")
    if ratio is not None:
        tc = _apply_isoflop(tc, float(ratio), float(sweep.get("isoflop_tpp") or 20.0))
    rules = sweep.get("size_rules") or "none"
    if rules == "olmo":
        tc = apply_size_rules(tc)
    elif rules == "inverse_width":
        tc = apply_inverse_width_lr(tc, int(sweep.get("base_width") or 128))
    elif rules != "none":
        raise ConfigError(f"unknown size rules {rules!r}", field="sweep.size_rules",
                          fix="use none, olmo or inverse_width")
    wtpp = sweep.get("warmup_tokens_per_param")
    if wtpp is not None:
        from scaling import flops as F

        tc.schedule.warmup_tokens = float(f"{float(wtpp) * F.count_params(model_args(tc)):.6g}")
    branches = _resolve_branches(tc, sweep.get("branch_tokens_per_param") or [], sweep.get("branch_fracs") or [])
    if branches:
        tc.schedule.branches = branches
    return tc, sweep


def vocab_size(tc: C.TrainConfig) -> int:
    """The vocabulary the trainer will use, without reading the corpus.

    Needed to count parameters (and so tokens per parameter) before training: an explicit
    ``arch.vocab_size``, else ``data.vocab_size`` (the BPE vocabulary to train, or the
    shards' vocabulary), else the trainer's BPE default, else 256 bytes.
    """
    if tc.arch.vocab_size:
        return int(tc.arch.vocab_size)
    if tc.data.vocab_size:
        return int(tc.data.vocab_size)
    if tc.data.tokenizer == C.Tokenizer.bpe:
        from scaling.data.corpus import DEFAULT_BPE_VOCAB

        return DEFAULT_BPE_VOCAB
    return C.BYTE_VOCAB


def model_args(tc: C.TrainConfig) -> C.ModelArgs:
    """The concrete architecture of a training config (exact shapes, no torch)."""
    return C.model_args(tc, vocab_size(tc))


def _apply_isoflop(tc: C.TrainConfig, ratio: float, tpp: float) -> C.TrainConfig:
    # Hoffmann et al. 2022, Approach 2: several sizes around each budget's optimum.
    # With C = 6 N D and D = tpp * N at the optimum, N_opt = sqrt(C / (6 tpp)).
    if tc.flops is None:
        raise ConfigError("an IsoFLOP size ratio needs a FLOP budget", field="sweep.isoflop_ratio",
                          fix="set flops=... (and tokens=null tokens_per_param=null), or drop sweep.isoflop_ratio")
    if ratio <= 0 or tpp <= 0:
        raise ConfigError(f"must be positive, got ratio={ratio}, tpp={tpp}", field="sweep.isoflop_ratio",
                          fix="e.g. sweep.isoflop_ratio=0.5")
    from scaling import flops as F

    target = ratio * math.sqrt(float(tc.flops) / (6.0 * tpp))
    shape = C.shape_for_params(target, tc.arch.ffn_multiple_of)
    tc.model = "auto"
    # Record the size the ladder shape actually has, not the target: small targets
    # round to the same shape, and equal shapes must share one run (and one hash).
    tc.model_params = target
    tc.model_params = float(F.nonembedding_params(model_args(tc)))
    assert C.shape_for_params(tc.model_params, tc.arch.ffn_multiple_of) == shape
    return tc


def apply_size_rules(tc: C.TrainConfig) -> C.TrainConfig:
    """Set the peak LR and the global batch from the model size (OLMo ladder defaults).

    LR = 0.0047 (N / 108M)^(-1/3) and batch = 160 (N / 108M)^(2/3) sequences, with N the
    non-embedding parameters (OLMo-core ``model_ladder``). The batch is rounded to a
    power-of-two number of sequences so it splits evenly over 1, 2, 4 or 8 devices.
    """
    from scaling import flops as F

    n = F.nonembedding_params(model_args(tc))
    r = n / _OLMO_REF_PARAMS
    tc.optim.lr = float(f"{_OLMO_REF_LR * r ** (-1.0 / 3.0):.3g}")
    seqs = _OLMO_REF_BATCH_SEQS * r ** (2.0 / 3.0)
    seqs = 2 ** max(0, round(math.log2(max(1.0, seqs))))
    tc.batch_tokens = int(seqs * tc.seq_len)
    if isinstance(tc.micro_batch, int) and seqs % tc.micro_batch:
        tc.micro_batch = None
    return tc


def apply_inverse_width_lr(tc: C.TrainConfig, base_width: int = 128) -> C.TrainConfig:
    """Scale the peak LR as 1 / d_model: ``optim.lr`` is the LR at ``base_width``.

    Adam's hidden-layer learning rate scales as 1 / width under the maximal-update
    parametrisation (Yang et al. 2022, "Tensor Programs V", Table 3); applied here to
    every parameter, a simple rule that keeps one LR sensible across a small ladder.
    """
    d = model_args(tc).d_model
    tc.optim.lr = float(f"{tc.optim.lr * base_width / d:.3g}")
    return tc


def _resolve_branches(tc: C.TrainConfig, per_param: list, fracs: list) -> list:
    """WSD branch budgets in absolute tokens, from tokens-per-parameter or budget fractions."""
    if not per_param and not fracs:
        return []
    if tc.schedule.branches:
        raise ConfigError("branches are given twice", field="schedule.branches",
                          fix="give schedule.branches (tokens) or sweep.branch_tokens_per_param / "
                              "sweep.branch_fracs, not both")
    from scaling import flops as F

    out = []
    if per_param:
        # Tokens per parameter count all parameters, as the trainer's tokens_per_param does.
        n = F.count_params(model_args(tc))
        out += [float(x) * n for x in per_param]
    if fracs:
        plan = C.resolve(tc, vocab_size(tc))
        for x in fracs:
            if not 0 < float(x) < 1:
                raise ConfigError(f"branch fraction {x} is not in (0, 1)", field="sweep.branch_fracs",
                                  fix="list fractions of the run's budget, e.g. [0.25, 0.5]")
        out += [float(x) * plan.tokens for x in fracs]
    return sorted(set(float(f"{x:.6g}") for x in out))


def budget_label(tc: C.TrainConfig) -> str:
    """The budget as written: ``tokens=20M``, ``tpp=20`` or ``flops=1e+15``."""
    if tc.tokens is not None:
        return f"tokens={si(float(tc.tokens))}"
    if tc.tokens_per_param is not None:
        return f"tpp={float(tc.tokens_per_param):g}"
    if tc.flops is not None:
        return f"flops={float(tc.flops):.3g}"
    return "budget=unset"


def model_label(tc: C.TrainConfig) -> str:
    if tc.model == "auto" and tc.model_params is not None:
        return f"model=auto{si(float(tc.model_params))}"
    return f"model={tc.model}"


def readable_name(tc: C.TrainConfig) -> str:
    """The human part of a run's name, e.g. ``model=micro,tokens=20M``."""
    return f"{model_label(tc)},{budget_label(tc)}"


def run_name(tc: C.TrainConfig) -> str:
    """A run's directory name: readable part, then the config hash (``...-1a2b3c4d``)."""
    return f"{readable_name(tc)}-{C.config_hash(tc)[:HASH_CHARS]}"


