"""Seeded synthetic ladders from a known law, for tests, figures and the studies in
docs/studies/: the truth is known, so a fit's error is measured, not estimated."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..laws import chinchilla, chinchilla_optimal, published_sets

__all__ = ["LADDER_LAW", "BEND_BELOW", "bent_ladder", "synthetic_table"]

#: Free-exponent Chinchilla law of the seeded ladders (exponents clearly apart).
LADDER_LAW = {"E": 1.8, "A": 4000.0, "B": 100.0, "alpha": 0.5, "beta": 0.25}
#: Models below this size bend away from it in :func:`bent_ladder`.
BEND_BELOW = 2.2e8


def bent_ladder(seed: int, bend: float = 0.0, n_sizes: int = 10, noise: float = 0.004) -> pd.DataFrame:
    """Every size (20M to 2B) at 5 to 80 tokens per parameter, from :data:`LADDER_LAW` with
    log-normal noise; with ``bend``, models below :data:`BEND_BELOW` lose an extra ``bend``
    per e-fold of size below it (small models on another curve)."""
    rng = np.random.default_rng(seed)
    sizes = np.geomspace(2e7, 2e9, n_sizes)
    N, D = np.array([(n, t * n) for n in sizes for t in (5.0, 10.0, 20.0, 40.0, 80.0)]).T
    L = chinchilla(N, D, **LADDER_LAW) * (1 + bend * np.clip(np.log(BEND_BELOW / N), 0, None))
    loss = L * np.exp(rng.normal(0.0, noise, len(N)))
    return pd.DataFrame({"params": N, "tokens": D, "loss": loss, "flops": 6 * N * D})


def synthetic_table(n_points: int = 250, seed: int = 0, noise: float = 0.015) -> pd.DataFrame:
    """IsoFLOP-style points from the Besiroglu et al. 2024 law: 9 budgets from 6e18 to
    3e21 FLOPs, sizes spread around each budget's optimum, log-normal loss noise."""
    rng = np.random.default_rng(seed)
    p = dict(published_sets()["besiroglu2024"][1].params)
    budgets = np.geomspace(6e18, 3e21, 9)
    per = int(np.ceil(n_points / len(budgets)))
    rows = []
    for C in budgets:

        n_opt, _ = chinchilla_optimal(C, **p)
        for n in n_opt * np.exp(rng.uniform(-2.0, 2.0, per)):
            rows.append((n, C / (6 * n)))
    N, D = np.array(rows[:n_points]).T
    loss = chinchilla(N, D, **p) * np.exp(rng.normal(0, noise, len(N)))
    return pd.DataFrame({"params": N, "tokens": D, "loss": loss})
