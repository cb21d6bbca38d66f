"""Muennighoff et al. 2023 (arXiv:2305.16264): the data-constrained runs as a toolkit
points table (the subsets are the authors' own filters, read from their notebook)."""
from __future__ import annotations

import pandas as pd

MUENNIGHOFF_FILES = ("muennighoff2023_runs", "muennighoff2023_constants")
#: subset key ("" is the default) -> the flag column that selects it (None: every run)
MUENNIGHOFF_SUBSETS = {"": "the notebook's filter", "curated": "the law's fitting set", "all": "every run"}
_FLAG = {"": "kept_by_notebook_filter", "curated": "in_curated_fit_set", "all": None}
MUENNIGHOFF_CITATION = """@article{muennighoff2023scaling,
  title={Scaling Data-Constrained Language Models},
  author={Muennighoff, Niklas and Rush, Alexander M and Barak, Boaz and Scao, Teven Le and Piktus, Aleksandra and Tazi, Nouamane and Pyysalo, Sampo and Wolf, Thomas and Raffel, Colin},
  journal={arXiv preprint arXiv:2305.16264}, year={2023}}"""

_KEEP = ["unique_tokens", "epochs", "seed", "name_markers", "comment_in_notebook", "is_dedup_run",
         "zero_loss_unfinished", "kept_by_notebook_filter", "in_curated_fit_set", "parse_suspect", "note",
         "loss_pred_datablations_law"]


def muennighoff_points(runs: pd.DataFrame, subset: str) -> pd.DataFrame:
    """One row per run. ``flops`` is 6ND (the paper's count, D including repeats);
    unfinished runs (``subset="all"`` only) have a missing loss."""
    flag = _FLAG[subset]
    g = runs if flag is None else runs[runs[flag].astype(bool)]
    out = pd.DataFrame({
        "params": g["params"].astype(float).to_numpy(),
        "tokens": g["tokens"].astype(float).to_numpy(),
        "loss": g["loss"].astype(float).to_numpy(),
        "flops": 6.0 * g["params"].astype(float).to_numpy() * g["tokens"].astype(float).to_numpy(),
        "run": g["run_name"].astype(str).to_numpy(),
    })
    for col in _KEEP:
        out[col] = g[col].to_numpy()
    return out


def muennighoff_caveats(subset: str) -> list[str]:
    out = [
        "the loss depends on unique_tokens as well as on N and D: a law of (N, D) alone misreads the many-epoch "
        "runs (at 8+ epochs more tokens give a higher loss in many pairs, and larger models overfit)",
        "seed runs (seed 1-4) repeat an (N, D, U) of an original run: 17 such groups, median std 0.006 nats; "
        "each run has its own run name",
        "row 4b284b12bc4opt2 keeps the notebook's own mis-parse (84.1e9 tokens, 2.2e9 unique; probably 84e9 / "
        "12e9) and is flagged parse_suspect",
        "PARAMS_MAP maps the label 25m to 35.5e6 parameters and both 220m and 221m to 2.205e8, as the notebook does",
        "the losses are the authors' transcriptions of final TensorBoard values and could not be re-read",
        "the published law under-predicts the curated runs by a median 0.21 nats: use it for trends, not levels",
    ]
    if subset == "all":
        out.insert(0, "9 runs are unfinished (loss missing) and 12 trained on deduplicated data; "
                      "load_points refuses the missing losses unless told to omit them")
    return out
