"""What a planned sweep's runs warn about, before any of them trains.

:func:`plan_warnings` condenses the runs' data warnings (:func:`scaling.data.data_warnings`:
a preset much larger than its name, a budget of more than one epoch) into one line each.
"""
from __future__ import annotations

from typing import List, Sequence


def plan_warnings(jobs: Sequence) -> List[str]:
    """The runs' data warnings, one line each: a size warning once per preset, and the
    epochs over all runs that plan more tokens than the corpus holds."""
    from analysis.text import si

    out: List[str] = []
    over = [j for j in jobs if j.epochs is not None and j.epochs > 1]
    for j in jobs:
        for w in j.warnings:
            if "epochs of data.source" not in w and w not in out:
                out.append(w)
    if over:
        lo, hi = min(j.epochs for j in over), max(j.epochs for j in over)
        exact = all(j.epochs_exact for j in over)
        span = f"{lo:.3g}" if lo == hi else f"{lo:.3g}-{hi:.3g}"
        t_lo, t_hi = si(min(j.tokens for j in over)), si(max(j.tokens for j in over))
        sizes = {j.train_tokens for j in over}
        corpus = (f"the corpus's {'' if exact else '<= '}{si(over[0].train_tokens)} training tokens" if len(sizes) == 1
                  else "their corpora's training tokens")
        out.append(f"{len(over)} of {len(jobs)} runs plan more tokens ({t_lo if t_lo == t_hi else f'{t_lo}-{t_hi}'}) "
                   f"than {corpus}: {'' if exact else 'at least '}{span} epochs; "
                   f"repeated tokens are worth less than fresh ones (Muennighoff et al. 2023) (fix: a larger "
                   f"corpus, fewer tokens, or data.unique_tokens to study repetition on purpose)")
    return out
