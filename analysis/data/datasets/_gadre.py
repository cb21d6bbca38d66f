"""Gadre et al. 2024 (arXiv:2403.08540): the over-training runs as a toolkit points table.

Names are ``gadre2024:SET`` (every run trained on SET) and ``gadre2024:SET/PART``, where
SET is ``c4``, ``rpj`` or ``rw`` and PART one of the paper's fitting protocols: ``paper``
the five runs its law is fitted on, ``small`` every run below 1B parameters, ``targets``
the 1B and 7B runs both protocols predict (Gadre et al. 2024, Sec. 3 and their
``scaling/shared.py::fit_ds``).
"""
from __future__ import annotations

import pandas as pd

GADRE_FILES = ("gadre2024_runs",)
#: short name -> the training set as the runs table spells it
GADRE_SETS = {"c4": "c4_original", "rpj": "rpj", "rw": "rw_original"}
GADRE_PARTS = {"": "every run", "paper": "the paper's five fitting runs",
               "small": "every run below 1B parameters", "targets": "the 1B and 7B runs the protocols predict"}
GADRE_CITATION = """@article{gadre2024language,
  title={Language models scale reliably with over-training and on downstream tasks},
  author={Gadre, Samir Yitzhak and Smyrnis, Georgios and Shankar, Vaishaal and Gururangan, Suchin and Wortsman, Mitchell and Shao, Rulin and Mercat, Jean and Fang, Alex and Li, Jeffrey and Keh, Sedrick and others},
  journal={arXiv:2403.08540}, year={2024}}"""
#: The runs at or above this size are the protocols' targets, never fitted.
TARGET_SIZE = 1e9
#: The paper's fitting set: the four small sizes at M = 20, plus the smallest at M = 320.
PAPER_SMALLEST_M = 320.0

_KEEP = ["dataset", "model", "params_no_embed", "multiplier", "loss_tokens_lower_95", "loss_tokens_upper_95",
         "eval_tokens", "lr", "warmup_steps", "cooldown_end_lr", "weight_decay", "global_batch_seqs"]


def gadre_points(runs: pd.DataFrame, key: str) -> pd.DataFrame:
    """One row per run of one training set (and protocol part). ``flops`` is 6ND with N
    every parameter (the paper's count)."""
    set_name, _, part = key.partition("/")
    g = runs[runs["dataset"] == GADRE_SETS[set_name]]
    small = g["params"] < TARGET_SIZE
    if part == "small":
        g = g[small]
    elif part == "targets":
        g = g[~small]
    elif part == "paper":
        smallest = g["params"] == g["params"].min()
        g = g[small & ((g["multiplier"] == 20.0) | (smallest & (g["multiplier"] == PAPER_SMALLEST_M)))]
    n, d = g["params"].astype(float).to_numpy(), g["tokens"].astype(float).to_numpy()
    out = pd.DataFrame({"params": n, "tokens": d, "loss": g["loss"].astype(float).to_numpy(),
                        "flops": 6.0 * n * d, "run": g["run"].astype(str).to_numpy()})
    for col in _KEEP:
        out[col] = g[col].to_numpy()
    return out.reset_index(drop=True)


def gadre_caveats() -> list[str]:
    return [
        "every loss is on one C4 validation shard, whatever the training set: the rpj and rw losses are "
        "out-of-distribution evaluations",
        "each run is its own cosine schedule to its budget (one run per (N, M)); the learning rate and batch "
        "differ by size (columns lr, global_batch_seqs)",
        "c4 lacks the 1024-wide model at M = 640; the 1B's long run is M = 80 (c4), 320 (rw) or 640 (rpj)",
        "the paper fits L = E + a N^-eta + b 6^(-eta/2) (MN)^-eta by least squares on the loss from a "
        "128-point grid; gadre2024 here is the same family (one exponent for N and D) fitted as every law is",
    ]
