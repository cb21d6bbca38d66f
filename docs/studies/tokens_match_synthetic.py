"""Tokens to match on seeded ladders from a known law: do the 90% intervals hold the true answer?

`scaling validate` checks the headline answer against measured runs, where the law family's
own error and the runs' noise mix. Here the truth is known: ladders drawn from Hoffmann et
al.'s law (alpha 0.34, beta 0.28: exponents that differ, so gadre2024, which auto often takes,
is the wrong family) with log-normal noise, each size trained at 10 to 320 tokens per
parameter. The backtest of `scaling validate` fits the runs up to 40 tokens per parameter and
asks, for each larger size's run at 20, how many tokens each smaller size needs to reach
that run's measured loss; the true answer is where the known law of the smaller size reaches
it. The intervals are the product's without its bootstrap (the error model's and the tied
laws'), each end with the loss error at its own tokens (the rule), and, for comparison, with
the loss error taken at the point answer for both ends (the earlier rule).

    python docs/studies/tokens_match_synthetic.py [--seeds 20] [--write-docs docs/analysis.md]

About four minutes on two cores; deterministic. With --write-docs the paragraph replaces the
block between <!-- tokens-synthetic:start --> and <!-- tokens-synthetic:end -->.
"""
from __future__ import annotations

import argparse
import functools
import math
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.extrapolation import study as study_module
from analysis.extrapolation.validate import backtest_tokens_to_match
from analysis.laws import chinchilla
# the known law of the other seeded ladders on docs/analysis.md: Hoffmann et al. 2022, eq. (2)
# with their fitted constants (Sec. 3.3)
from law_choice import TRUTH
SIZES = (5e7, 1e8, 2e8, 4e8, 8e8)
TOKENS_PER_PARAM = (10, 20, 40, 80, 160, 320)
NOISE = 0.004
START, END = "<!-- tokens-synthetic:start -->", "<!-- tokens-synthetic:end -->"


def true_tokens(N: float, loss: float) -> float:
    """Tokens at which the known law of size N reaches ``loss`` (inf at or below its floor)."""
    t = TRUTH
    rest = loss - t["E"] - t["A"] / N ** t["alpha"]
    return (t["B"] / rest) ** (1 / t["beta"]) if rest > 0 else math.inf


def ladder(seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    N, D = np.array([(n, m * n) for n in SIZES for m in TOKENS_PER_PARAM]).T
    loss = chinchilla(N, D, **TRUTH) * np.exp(rng.normal(0, NOISE, len(N)))
    return pd.DataFrame({"params": N, "tokens": D, "loss": loss})


def pairs(seeds: int) -> pd.DataFrame:
    """One row per (seed, small, large) pair whose true answer lies within the longest runs."""
    rows = []
    for seed in range(seeds):
        bt = backtest_tokens_to_match(ladder(seed))
        for p in bt.pairs:
            truth = true_tokens(p.small, p.target_loss)
            # the pairs a measured answer could check: the true answer within the runs trained
            if p.predicted_tokens is None or p.low is None or not truth <= TOKENS_PER_PARAM[-1] * p.small:
                continue
            high = p.high if p.high is not None else math.inf
            rows.append({"seed": seed, "law": bt.law, "small": p.small, "large": p.large, "truth": truth,
                         "tpp": truth / p.small, "pred": p.predicted_tokens, "low": p.low, "high": high,
                         "inside": p.low <= truth <= high})
    return pd.DataFrame(rows)


def summary(df: pd.DataFrame) -> dict:
    ln_err = np.abs(np.log(df["pred"] / df["truth"]))
    span = df["high"] / df["low"]
    half = np.log(span) / 2  # half-width in ln tokens (inf when unbounded)
    return {"pairs": len(df), "inside": int(df["inside"].sum()), "median_ratio": float(np.median(df["pred"] / df["truth"])),
            "median_span": float(np.median(span)), "unbounded": int(np.isinf(span).sum()),
            "median_half_ln": float(np.median(half)), "median_err_ln": float(np.median(ln_err)),
            "q90_err_ln": float(np.quantile(ln_err, 0.9))}


def run(seeds: int) -> str:
    rule = pairs(seeds)
    original = study_module.band_ends
    study_module.band_ends = functools.partial(original, max_steps=0)  # w at the point answer for both ends
    try:
        earlier = pairs(seeds)
    finally:
        study_module.band_ends = original
    a, b = summary(rule), summary(earlier)
    laws = ", ".join(f"{k} {v}" for k, v in rule.groupby("seed")["law"].first().value_counts().items())
    far = rule["tpp"] > 80
    fa, fb = summary(rule[far]), summary(earlier[earlier["tpp"] > 80])
    for lo, hi in ((0, 40), (40, 80), (80, 160), (160, 320)):
        for name, d in (("rule", rule), ("earlier", earlier)):
            k = (d["tpp"] > lo) & (d["tpp"] <= hi)
            if k.any():
                s = summary(d[k])
                print(f"  {name:8s} {lo:>3}-{hi:<3} tokens/param: {s['inside']} of {s['pairs']}, median pred/true "
                      f"{s['median_ratio']:.2f}x, median high/low {s['median_span']:.2f}x", file=sys.stderr)

    def span(s):
        return f"{s['median_span']:.2f}x" if math.isfinite(s["median_span"]) else "unbounded"

    return (
        f"Seeded ladders from a known law (Hoffmann et al.'s, alpha {TRUTH['alpha']}, beta {TRUTH['beta']}; "
        f"{len(SIZES)} sizes {SIZES[0] / 1e6:.0f}M-{SIZES[-1] / 1e6:.0f}M at {TOKENS_PER_PARAM[0]} to "
        f"{TOKENS_PER_PARAM[-1]} tokens per parameter, {100 * NOISE:g}% noise; `python "
        f"docs/studies/tokens_match_synthetic.py`), the backtest above without the bootstrap, {seeds} seeds "
        f"(auto took {laws}): the true tokens to match lie inside the 90% interval for {a['inside']} of "
        f"{a['pairs']} pairs (median predicted / true {a['median_ratio']:.2f}x; median high / low {span(a)}, "
        f"{a['unbounded']} unbounded; median half-width {a['median_half_ln']:.2f} in ln tokens against a "
        f"median error of {a['median_err_ln']:.2f} and a 90th-percentile error of {a['q90_err_ln']:.2f}); "
        f"those whose true answer lies beyond 80 tokens per parameter, {fa['inside']} of {fa['pairs']} "
        f"(median high / low {span(fa)}). With the loss error at the point answer for both ends, "
        f"{b['inside']} of {b['pairs']} (median high / low {span(b)}, {b['unbounded']} unbounded), and "
        f"{fb['inside']} of {fb['pairs']} beyond 80 (median high / low {span(fb)})."
    )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=20, help="seeded ladders (default 20)")
    ap.add_argument("--write-docs", metavar="MD", help="replace the tokens-synthetic block of this Markdown file")
    args = ap.parse_args(argv)
    if args.seeds < 1:
        print("error: --seeds must be at least 1 (fix: e.g. --seeds 20)", file=sys.stderr)
        return 2
    t0 = time.time()
    text = run(args.seeds)
    print(text)
    print(f"({time.time() - t0:.0f} s)", file=sys.stderr)
    if args.write_docs:
        path = Path(args.write_docs)
        doc = path.read_text(encoding="utf-8")
        if START not in doc or END not in doc:
            print(f"error: --write-docs: {path} has no {START} ... {END} block (fix: add the two markers)",
                  file=sys.stderr)
            return 2
        head, _, rest = doc.partition(START)
        _, _, tail = rest.partition(END)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(f"{head}{START}\n{text}\n{END}{tail}", encoding="utf-8")
        tmp.replace(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
