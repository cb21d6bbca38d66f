"""Seeded synthetic ladders from a known law, for tests, figures and the studies in
docs/studies/: the truth is known, so a fit's error is measured, not estimated."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..laws import chinchilla

__all__ = ["LADDER_LAW", "BEND_BELOW", "bent_ladder"]

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
