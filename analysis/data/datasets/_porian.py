"""Porian et al. 2024 (arXiv:2406.19146): the IsoFLOP points as a toolkit points table,
and what each configuration's loss column means (from the source repository's
``analysis.fetch_flop`` / ``interp_flop`` and its configuration tables)."""
from __future__ import annotations

import pandas as pd

PORIAN_FIELDS = ("DATASET", "HPARAMS", "WARMUP", "DECAY", "COUNT", "LOSS")
PORIAN_FILES = ("porian2024_isoflop", "porian2024_optimal", "porian2024_fits", "porian2024_models")
PORIAN_CITATION = """@article{porian2024resolving,
  title={Resolving Discrepancies in Compute-Optimal Scaling of Language Models},
  author={Porian, Tomer and Wortsman, Mitchell and Jitsev, Jenia and Schmidt, Ludwig and Carmon, Yair},
  journal={arXiv:2406.19146}, year={2024}}"""

#: Loss noise (sd, nats) the authors add in their bootstrap of the IsoFLOP argmin: the
#: low-noise value of their per-dataset seed-noise settings, which applies at every loss
#: below e^3 nats, i.e. everywhere in these tables.
LOSS_NOISE_SD = {"rw": 0.002, "owt2": 0.01}

_DATASET = {"rw": "RefinedWeb", "owt2": "OpenWebText2"}
_DECAY = {"kaplan": "cosine decay over a long fixed horizon", "chinchilla": "cosine decay to the budget",
          "const": "constant learning rate after warmup"}
_COUNT = {
    "kaplan": "N = non-embedding parameters without the output head (Kaplan et al. 2020)",
    "standard": "N = non-embedding parameters plus the output head (the paper's 'counting last layer FLOPs')",
    "attention": "N = parameters with the head plus 2048 * width * depth, folding attention FLOPs into N",
}


def porian_points(iso: pd.DataFrame, config: str) -> pd.DataFrame:
    """One configuration's IsoFLOP points. ``flops`` is the budget in the configuration's
    own count (6 * params * tokens exactly); ``budget`` labels the IsoFLOP profile."""
    g = iso[iso["config_id"] == config]
    decay = g["decay"].iloc[0]
    model = g["model_id"].map(lambda m: f"m{int(m):02d}")
    if decay == "chinchilla":
        # A cosine schedule that ends at the budget is one run per (N, C).
        run = model + "@" + g["flops"].map(lambda c: f"{c:.4g}")
    else:
        # Constant-lr and long-cosine points are readouts along each model's own training curve.
        run = model
    out = pd.DataFrame({
        "params": g["n_params"].astype(float).to_numpy(),
        "tokens": g["tokens"].astype(float).to_numpy(),
        "loss": g["loss"].astype(float).to_numpy(),
        "flops": g["flops"].astype(float).to_numpy(),
        "run": run.to_numpy(),
        "params_nonembedding": g["n_params_nonembed"].astype(float).to_numpy(),
        "budget": g["flops"].astype(float).to_numpy(),
        "model_id": g["model_id"].astype(int).to_numpy(),
        "width": g["width"].astype(int).to_numpy(),
        "depth": g["depth"].astype(int).to_numpy(),
        "params_standard": g["n_params_standard"].astype(float).to_numpy(),
        "flops_6nd_standard": g["flops_6ND_standard"].astype(float).to_numpy(),
        "tokens_per_param": g["tokens_per_param"].astype(float).to_numpy(),
        "n_convention": g["n_convention"].to_numpy(),
        "config": config,
    })
    out.attrs["loss_noise_sd"] = LOSS_NOISE_SD[config.split("/")[0]]
    return out


def _loss_text(config: str) -> str:
    dataset, hparams, warmup, decay, count, split = config.split("/")
    what = ("validation loss (val/loss)" if split == "val" else
            "training loss smoothed by a centred moving average (half-width 5% of the log step index)")
    if decay == "const":
        when = "of a constant-learning-rate run after `tokens` tokens: a run stopped at the budget, no cooldown"
    elif decay == "kaplan":
        when = ("read mid-schedule from a run with a long, fixed cosine horizon: not the loss of a run "
                "trained to the budget")
    elif count == "attention":
        when = ("read at about 83-90% of a cosine run that ends at the budget in standard FLOPs (or earlier in a "
                "longer run): late-schedule, not end-of-schedule")
    else:
        when = ("at the end of a run whose cosine schedule ends at the budget (within 10%; inferred from which "
                "(N, C) pairs exist, not confirmed from raw logs)")
    return (f"{what}, nats/token, {when}; interpolated log-log in FLOPs to exactly C, and the minimum over "
            f"runs of the same N")


def porian_short(config: str) -> str:
    """A few words on what the loss column holds, for one-line listings."""
    dataset, hparams, warmup, decay, count, split = config.split("/")
    what = "val loss" if split == "val" else "smoothed train loss"
    if decay == "const":
        when = "constant lr, no cooldown"
    elif decay == "kaplan":
        when = "read mid-schedule"
    elif count == "attention":
        when = "read late in the schedule"
    else:
        when = "at the end of a cosine run to the budget"
    return f"{_DATASET[dataset]}, {what} {when}, {count} N"


def porian_description(config: str, label: str) -> tuple[str, str, str]:
    """(title, one-paragraph description, meaning of the loss column) of a configuration."""
    dataset, hparams, warmup, decay, count, split = config.split("/")
    title = f"Porian et al. 2024, {label}" if label else "Porian et al. 2024"
    parts = [_DATASET[dataset],
             "hyperparameters tuned per size" if hparams == "tuned" else "one set of hyperparameters for all sizes",
             "long (Kaplan-style, ~1.6e9-token) warmup" if warmup == "long" else "short warmup (about N tokens)",
             _DECAY[decay], _COUNT[count] + "; FLOPs = 6 N D in that count"]
    desc = "; ".join(parts)
    return title, desc, _loss_text(config)


def porian_caveats(config: str | None) -> list[str]:
    """What to keep in mind when fitting a configuration (None: the whole family)."""
    out = [
        "no per-run learning rate, batch size, warmup, seeds or raw curves: the raw results file is not public",
        "where several runs have the same N at a budget the table keeps the lowest loss, which can mix runs",
        "flops and params use the configuration's own count, so one checkpoint has different flops in different "
        "configurations; flops_6nd_standard = 6 * params_standard * tokens puts all on one scale",
        "at low tokens per parameter (D < 2N) the larger model is lower at fixed D in only 47-64% of "
        "comparisons: use such points with care (the authors' fit uses every point)",
        "the MIT licence file's copyright line ('Scott Chacon and others') looks carried over from a template; "
        "the repository states no other licence",
    ]
    if config is None:
        return out
    dataset, hparams, warmup, decay, count, split = config.split("/")
    if decay == "kaplan":
        out.insert(0, "mid-schedule readouts of long cosine schedules: the losses are not those of runs trained "
                      "to each budget, so a law fitted here describes this schedule, not compute-optimal training")
    if decay == "const":
        out.insert(0, "constant learning rate with no cooldown: losses sit above what a decayed run reaches")
    if decay == "chinchilla" and count == "attention":
        out.insert(0, "late-schedule readouts (83-90% of the run), not end-of-schedule losses")
    if warmup == "short":
        out.append("warmup of about N tokens: the lowest-budget points of large models are still close to warmup")
    if hparams == "tuned":
        out.append("learning rate and batch size depend on N, so the loss at fixed D need not fall with N at low "
                   "tokens per parameter")
    if config == "rw/tuned/long/const/kaplan/train":
        out.append("15 model sizes: the smallest model is missing from this configuration")
    if dataset == "owt2":
        out.append("whether the largest-token OpenWebText2 points (up to 2.9e10 tokens) repeat data was not checked")
    return out
