"""Leave one source out: the law choice of ``--law auto`` and its intervals, judged on
questions at distance from public ladders, with every knob chosen without the source it
is reported on.

Sources and their questions (each fit sees only the runs named; the targets are never fitted):

* **Gadre et al. 2024**, per training set (c4, rpj, rw) and protocol (the paper's five
  runs; every run below 1B): predict the 1B (M = 20 and its long run) and the 7B (M = 20),
  3.5x and 16.7x beyond the largest fitted size.
* **Porian et al. 2024**, each of the 15 configurations: fit the sizes up to an eighth of
  the largest, predict every larger size's points at 5 or more tokens per parameter
  (earlier readouts are warmup-dominated: docs/analysis.md).
* **Muennighoff et al. 2023** (the notebook's 296 runs, unique tokens as a third input):
  fit the sizes below 1B, predict the larger ones at up to 4 epochs.

Intervals are the product's without its bootstrap: the error model's
(analysis.selection.policy.ErrorModel: the fit's robust scatter times sqrt(1 + c z_N^2 +
c_t z_t^2), c measured on the table's own distance backtest and c_t on its splits in tokens
per parameter, analysis.selection.policy.error_growths), extended where a tied law's
prediction reaches beyond it (policy.beside_error_model).

For each held-out source, the tie margin is chosen (from a small grid) to minimise the
mean absolute error of the chosen law's predictions on the *other* sources' questions; the
scale prior (for fits too small to measure their own scatter) is the median scatter of the
other sources' tables, and the c prior (for tables whose backtest scores no split) the
median of the other sources' tables' own c. The table then reports the
held-out source with those values. ``--write-docs docs/analysis.md`` pastes the
table between the ``law-choice`` markers.

    python docs/studies/law_choice.py [--write-docs docs/analysis.md]
"""
from __future__ import annotations

import argparse
import math
import dataclasses
import sys
import time
import warnings

import numpy as np

from analysis.data import datasets as D
from analysis.data.points import set_aside_short
from analysis.selection.backtest import auto_candidates
from analysis.fitting.fit import fit_law
from analysis.selection.policy import (POLICY, ErrorModel, at_bound, beside_error_model, bt_scores, distance_backtest,
                                       pick_law, rejected_constraint, robust_scale, uses_tokens)
from analysis.laws import get_law
import analysis.selection.policy as P

TIES = (0.0, 0.1, 0.25, 0.5, 1.0)
MIN_TPPS = (0.0, 5.0, 10.0, 20.0)
LEVEL = 0.90
#: pseudo-splits the leverage prior counts as beside a table's own (0: the rule; --shrink-c)
SHRINK_C = 0.0
#: measure c on tokens-per-parameter splits too (False: the rule; --c-tpp-splits)
C_TPP_SPLITS = False
GADRE_SETS = ("c4", "rpj", "rw")


def questions():
    """(source, table name, training points, target points) for every question."""
    for s in GADRE_SETS:
        tg = D.load(f"gadre2024:{s}/targets")
        for part in ("paper", "small"):
            yield "gadre2024", f"gadre2024:{s}/{part}", D.load(f"gadre2024:{s}/{part}"), tg
    for name in (n for n in D.list_datasets() if n.startswith("porian2024:")):
        df = D.load(name)
        top = df["params"].max() / 8
        train = df[df["params"] <= top * 1.0001]
        test = df[(df["params"] > top * 1.0001) & (df["tokens"] >= 5 * df["params"])]
        yield "porian2024", name, train.reset_index(drop=True), test.reset_index(drop=True)
    df = D.load("muennighoff2023")
    df = df[df["epochs"] <= 4.0001]
    yield ("muennighoff2023", "muennighoff2023", df[df["params"] < 1e9].reset_index(drop=True),
           df[df["params"] >= 1e9].reset_index(drop=True))


@dataclasses.dataclass
class Case:
    source: str
    name: str
    train: object          # the fitted points (params, tokens, loss)
    test: object           # the targets
    preds: dict            # law -> predictions of the targets (full fit)
    scores: dict           # law -> distance-backtest score
    determinable: tuple
    residuals: dict        # law -> relative residuals of its full fit
    pinned: dict           # law -> its fit to the training points ends on no bound
    rejected: dict         # law -> why the data reject its constraint ("" if they do not)
    splits: dict           # law -> its scored distance-backtest rows (what its growth c in size is measured on)
    tokens_splits: dict    # law -> its scored splits in tokens per parameter (what its c_t is measured on)

    @property
    def observed(self):
        return self.test["loss"].to_numpy(float)


def prepare(train, test, name, source) -> Case:
    # the floored candidates, and the floorless kaplan_nd for comparison
    laws = POLICY.candidates(train) + tuple(n for n in auto_candidates(train) if n == "kaplan_nd")
    bt = distance_backtest(train, laws, allow_repeats=True)
    preds, residuals = {}, {}
    for law in laws:
        try:
            f = fit_law(train, law, progress=False, allow_repeats=True, uncertainty=False)
        except Exception:
            continue
        preds[law] = np.asarray(f.predict_table(test), dtype=float)
        residuals[law] = np.asarray(f.predict_table(train), dtype=float) / train["loss"].to_numpy(float) - 1
    floored = tuple(n for n in POLICY.candidates(train) if n in preds)
    pinned = {n: at_bound(train, n, {"allow_repeats": True}) == [] for n in floored}
    rejected = {n: rejected_constraint(train, n, floored, {"allow_repeats": True}) for n in floored}
    splits = {law: bt.rows_of(law, ok=True) for law in floored}
    # through the module, so that --one-c's rebinding reaches it
    tokens_splits = {law: P.tokens_backtest(train, law, POLICY.max_splits, allow_repeats=True) for law in floored}
    if C_TPP_SPLITS:  # tried, not the rule (docs/analysis.md): both kinds of split measure one c
        splits = {law: list(rows) + tokens_splits[law] for law, rows in splits.items()}
        tokens_splits = {}
    return Case(source, name, train, test, preds, bt_scores(bt, floored), floored, residuals, pinned, rejected, splits,
                tokens_splits)


def choose(case: Case, tie: float) -> tuple[str, list[str]]:
    """What analysis.selection.policy.LawPolicy.choose picks for this case with tie margin ``tie``."""
    if not case.scores:
        return min(case.determinable, key=lambda n: len(get_law(n).params)), []
    return pick_law(case.scores, case.pinned, tie, case.rejected)


def own_scale(case: Case, law: str) -> float | None:
    """The fit's own robust scatter, or None where too few degrees of freedom measure it."""
    r, p = case.residuals[law], len(get_law(law).params)
    return robust_scale(r, p) if len(r) - p >= POLICY.min_dof else None


def error_model(case: Case, law: str, prior: float, leverage: float) -> tuple[ErrorModel, bool]:
    """What analysis.selection.policy.LawPolicy.error_model builds for this case's fit of
    ``law``, and whether its c is the table's own (False: the ``leverage`` prior)."""
    em = ErrorModel.from_residuals(case.residuals[law], len(get_law(law).params), case.train["params"],
                                   case.train["tokens"], prior=prior, leverage=leverage,
                                   spread_floor=POLICY.spread_floor, min_dof=POLICY.min_dof,
                                   splits=case.splits.get(law, []), tokens_splits=case.tokens_splits.get(law, []))
    n = em.leverage_splits
    if n:
        # --shrink-c K (tried, not used): the prior counts as K more splits
        em.leverage = (n * em.leverage + SHRINK_C * leverage) / (n + SHRINK_C)
    return em, n > 0


def answer(case: Case, tie: float, prior: float, leverage: float) -> dict:
    law, tied = choose(case, tie)
    pred = case.preds[law]
    em, own = error_model(case, law, prior, leverage)
    w = em.half_width(case.test["params"].to_numpy(float), case.test["tokens"].to_numpy(float), LEVEL)
    # the product's interval without the bootstrap (which can only widen it): the error model's,
    # reaching further where a tied law does
    preds = [pred, *(case.preds[t] for t in tied)]
    lo, hi = beside_error_model(pred, w, np.minimum.reduce(preds), np.maximum.reduce(preds))
    err = pred / case.observed - 1
    return {"law": law, "err": err, "inside": (case.observed >= lo) & (case.observed <= hi),
            "half": (hi - lo) / 2 / pred, "c": em.leverage, "own_c": own, "c_t": em.leverage_tokens,
            "score": interval_score(lo, hi, case.observed, 1 - LEVEL)}


def interval_score(lo, hi, y, alpha: float) -> np.ndarray:
    """Gneiting and Raftery 2007 (eq. 43), relative to the observed loss: the interval's width
    plus 2 / alpha times the distance by which it misses. Width and coverage in one number:
    an interval that covers by being wide scores no better than one that misses."""
    lo, hi, y = (np.asarray(v, dtype=float) for v in (lo, hi, y))
    return ((hi - lo) + (2 / alpha) * (np.maximum(lo - y, 0) + np.maximum(y - hi, 0))) / y


def knobs_from(cases: list[Case]) -> tuple[float, float, float]:
    """(tie, scale prior, leverage prior) chosen on ``cases``: the tie by mean absolute error,
    the scale prior as the median measured scatter, the leverage prior (for a table no backtest
    split measures) as the median of the tables' own error growth c."""
    scales = [own_scale(c, choose(c, 0.0)[0]) for c in cases]
    prior = float(np.median([v for v in scales if v is not None]))
    tie = min(TIES, key=lambda t: np.mean([np.mean(np.abs(answer(c, t, prior, 1.0)["err"])) for c in cases]))
    own = [a["c"] for a in (answer(c, tie, prior, 1.0) for c in cases) if a["own_c"]]
    lev = float(np.median(own)) if own else 1.0
    return tie, prior, lev


def use_spread_floor(floor: float) -> None:
    """--spread-floor (a comparison): the policy with another least spread of ln N and ln D/N,
    wherever z is measured (the distance backtest) and used (the error model)."""
    import analysis.selection.checked as C

    global POLICY
    POLICY = P.POLICY = C.POLICY = dataclasses.replace(P.POLICY, spread_floor=floor)


def use_growth(kind: str) -> None:
    """--growth (tried, not the rule: docs/analysis.md): replace the policy's squared distances,
    everywhere they are measured and used, by their squares (an error growing with the square
    of the distance; with --one-c, z^4 of the whole distance) or by z^2 counted only beyond
    the fitted range (largest size, and the range of tokens per parameter). A comparison
    only: it rebinds the policy's functions in this process; call :func:`use_one_c` first."""

    parts = P.design_z2_parts
    if kind == "z4":
        def z4_parts(centre, spread, N, D=None):
            z2_n, z2_t = parts(centre, spread, N, D)
            # with one c (--one-c, as docs/analysis.md measured it): c z^4; with c and c_t, each direction squared
            return ((z2_n + z2_t) ** 2, 0 * z2_t) if P.tokens_backtest is no_tokens_splits else (z2_n ** 2, z2_t ** 2)
        P.design_z2_parts = z4_parts
        return

    spread_of = P.design

    def design(params, tokens, spread_floor):
        # the policy's spreads; in place of its centre, the fitted range's edges
        _, spread = spread_of(params, tokens, spread_floor)
        ln_n = np.log(np.asarray(params, dtype=float))
        edge = [float(ln_n.max())]
        if tokens is not None:
            ln_t = np.log(np.asarray(tokens, dtype=float)) - ln_n
            edge += [float(ln_t.min()), float(ln_t.max())]
        return tuple(edge), spread

    def edge_parts(edge, spread, N, D=None):
        ln_n = np.log(np.asarray(N, dtype=float))
        z2_n = (np.maximum(ln_n - edge[0], 0.0) / spread[0]) ** 2
        if D is None or len(edge) < 2:
            return z2_n, np.zeros_like(z2_n)
        ln_t = np.log(np.asarray(D, dtype=float)) - ln_n
        return z2_n, ((np.maximum(edge[1] - ln_t, 0.0) + np.maximum(ln_t - edge[2], 0.0)) / spread[1]) ** 2

    P.design, P.design_z2_parts = design, edge_parts


def no_tokens_splits(*args, **kwargs) -> list:
    """--one-c: no splits in tokens per parameter, so one c serves both directions (the rule
    before c_t was measured apart; docs/analysis.md's earlier comparisons used it)."""
    return []


def use_one_c() -> None:
    """Rebind the policy's splits in tokens per parameter to none, in this process: the
    product's error model (and this study's) then measures one c on the splits in size."""
    P.tokens_backtest = no_tokens_splits


def scale_rest(rel_residuals, n_params: int) -> float:
    """--scale rest (tried, not the rule: docs/analysis.md): 1.4826 x the median of the n - p
    largest absolute residuals, since a Huber fit at delta 1e-3 nearly passes through as many
    points as it has parameters."""
    r = np.sort(np.abs(np.asarray(rel_residuals, dtype=float)))
    return float(P.NORMAL_SD_PER_MAD * np.median(r[n_params:] if len(r) > n_params else r))


def use_scale_rest() -> None:
    """Rebind the policy's scatter (and this study's) to :func:`scale_rest`, in this process."""

    global robust_scale
    P.robust_scale = robust_scale = scale_rest


def scale_recovery(seeds: int = 30, noise: float = 0.005) -> str:
    """How much of a known noise each scatter estimator reads: tables drawn from Besiroglu et
    al. 2024's law with log-normal noise, fitted as every table is; the median over seeds of
    estimate / noise."""
    import pandas as pd

    from analysis.data.published import besiroglu2024
    from analysis.fitting.fit import fit_law
    from analysis.laws import chinchilla

    truth = besiroglu2024().params
    designs = {"3 sizes x 4 budgets": ((1e8, 3e8, 1e9), (10, 20, 40, 80)),
               "5 sizes x 2 budgets": (tuple(np.geomspace(1e7, 4e8, 5)), (20, 40)),
               "4 sizes x 4 budgets": ((1.9e8, 3.7e8, 7.6e8, 1.3e9), (20, 50, 100, 200)),
               "6 sizes x 5 budgets": (tuple(np.geomspace(2e7, 1.2e9, 6)), (5, 10, 20, 40, 80)),
               "10 sizes x 10 budgets": (tuple(np.geomspace(1e7, 3e9, 10)), tuple(np.geomspace(2, 200, 10)))}
    lines = ["| design | points | law | the rule (median of all n, x sqrt(n / (n - p))) | median of the n - p largest |",
             "|---|---|---|---|---|"]
    for name, (sizes, tpp) in designs.items():
        N, Dt = np.array([(n, m * n) for n in sizes for m in tpp]).T
        for law in ("gadre2024", "chinchilla"):
            rule, rest = [], []
            for seed in range(seeds):
                loss = chinchilla(N, Dt, **truth) * np.exp(np.random.default_rng(seed).normal(0, noise, len(N)))
                fit = fit_law(pd.DataFrame({"params": N, "tokens": Dt, "loss": loss}), law, progress=False,
                              uncertainty=False)
                r = np.asarray(fit.predict(N=N, D=Dt), dtype=float) / loss - 1
                rule.append(robust_scale(r, len(fit.params)) / noise)
                rest.append(scale_rest(r, len(fit.params)) / noise)
            lines.append(f"| {name} | {len(N)} | {law} | {np.median(rule):.2f} | {np.median(rest):.2f} |")
    return "\n".join(lines)


#: distance buckets of the by-distance table: x largest fitted N, and the question's tokens per parameter
N_EDGES = (1.0, 2.0, 4.0, 8.0, 16.0, np.inf)
TPP_EDGES = (0.0, 10.0, 20.0, 40.0, 100.0, np.inf)
#: buckets of the measured tokens-to-match answer, in tokens per parameter (the fit sees up to 40)
TOKENS_EDGES = (0.0, 40.0, 80.0, 160.0, 320.0, np.inf)


def _bucket(lo: float, hi: float, unit: str) -> str:
    if not np.isfinite(hi):
        return f"over {lo:g}{unit}"
    return f"up to {hi:g}{unit}" if (lo <= 1.0 and unit == "x") or lo == 0 else f"{lo:g}{unit} to {hi:g}{unit}"


def _span_text(ratio: float) -> str:
    return f"{ratio:.3g}x" if np.isfinite(ratio) else "unbounded"


def distance_table(answered: dict) -> str:
    """Per held-out source, the chosen law's held-out error, coverage and half-width by how far
    the question lies from the fitted design: in N (x largest fitted size) and in tokens per
    parameter. ``answered``: held-out source -> [(case, its answer)], the knobs chosen without
    that source, as in the leave-one-source-out table."""
    rows = ["| held-out source | by | bucket | questions | median abs error | inside 90% | median half-width |",
            "|---|---|---|---|---|---|---|"]
    for held, pairs in answered.items():
        parts = []
        for c, o in pairs:
            n = c.test["params"].to_numpy(float)
            parts.append((n / c.train["params"].max(), c.test["tokens"].to_numpy(float) / n,
                          np.abs(o["err"]), o["inside"], o["half"]))
        ratio, tpp, err, inside, half = (np.concatenate(v) for v in zip(*parts))
        for by, values, edges, unit in (("x largest N", ratio, N_EDGES, "x"), ("tokens per parameter", tpp, TPP_EDGES, "")):
            for lo, hi in zip(edges[:-1], edges[1:]):
                k = (values > lo * (1 + 1e-9)) & (values <= hi * (1 + 1e-9))
                if not k.any():
                    continue
                rows.append(f"| {held} | {by} | {_bucket(lo, hi, unit)} | {k.sum()} | {100 * np.median(err[k]):.2g}% | "
                            f"{inside[k].sum()} of {k.sum()} | {100 * np.median(half[k]):.2g}% |")
    return "\n".join(rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--write-docs", metavar="MD")
    ap.add_argument("--shrink-c", type=float, default=0.0, metavar="K",
                    help="count the leverage prior as K more splits beside a table's own (tried, not the rule: "
                         "docs/analysis.md); only with no --write-docs")
    ap.add_argument("--one-c", action="store_true",
                    help="one growth c for both directions, measured on the splits in size (the rule before c_t; "
                         "docs/analysis.md's earlier comparisons ran with it); only with no --write-docs")
    ap.add_argument("--c-tpp-splits", action="store_true",
                    help="measure one c on the splits in tokens per parameter and in size together (tried, not "
                         "the rule: docs/analysis.md); only with no --write-docs")
    ap.add_argument("--growth", choices=("z2", "z4", "edge"), default="z2",
                    help="how error grows with distance: z2, the rule (sd = s sqrt(1 + c z_N^2 + c_t z_t^2)); z4 "
                         "(each z^2 squared; with --one-c, sd = s sqrt(1 + c z^4) as docs/analysis.md measured it); "
                         "edge (z counted only beyond the fitted range); tried, not the rule: docs/analysis.md; "
                         "only with no --write-docs")
    ap.add_argument("--spread-floor", type=float, default=None, metavar="F",
                    help="the least standard deviation of ln N and ln D/N in z (the rule: the policy's 0.5); "
                         "a comparison, only with no --write-docs")
    ap.add_argument("--tokens-laws", metavar="LAW[,LAW]",
                    help="print only the two tokens-to-match tables, with auto choosing among these laws (tried, "
                         "not the rule: docs/analysis.md); only with no --write-docs")
    ap.add_argument("--scale", choices=("rule", "rest"), default="rule",
                    help="the fit's scatter: rule, 1.4826 x the median |residual| x sqrt(n / (n - p)); rest, 1.4826 "
                         "x the median of the n - p largest (tried, not the rule: docs/analysis.md; prints how much "
                         "of a known noise each reads first); only with no --write-docs")
    args = ap.parse_args(argv)
    if args.spread_floor is not None and not args.spread_floor > 0:
        ap.error(f"--spread-floor {args.spread_floor:g}: give a positive spread in e-folds, such as 0.25 or 1")
    compare = (args.one_c or args.shrink_c or args.c_tpp_splits or args.tokens_laws or args.growth != "z2"
               or args.spread_floor is not None or args.scale != "rule")
    if compare and args.write_docs:
        ap.error("--one-c, --shrink-c, --c-tpp-splits, --growth, --spread-floor, --scale and --tokens-laws are comparisons: "
                 "run them without --write-docs")
    if args.one_c and args.c_tpp_splits:
        ap.error("--c-tpp-splits pools the splits in tokens per parameter into one c already: run it without --one-c")
    if args.one_c:
        use_one_c()
    if args.scale == "rest":
        warnings.filterwarnings("ignore")
        print("Known noise read by each scatter estimator (median over seeds of estimate / noise):\n\n"
              + scale_recovery() + "\n", flush=True)
        use_scale_rest()
    if args.growth != "z2":
        use_growth(args.growth)
    if args.spread_floor is not None:
        use_spread_floor(args.spread_floor)
    if args.tokens_laws:
        warnings.filterwarnings("ignore")
        laws = tuple(args.tokens_laws.split(","))
        print(tokens_match_table(candidates=laws) + "\n\n" + tokens_match_other_sources(candidates=laws))
        return 0
    global SHRINK_C, C_TPP_SPLITS
    SHRINK_C, C_TPP_SPLITS = args.shrink_c, args.c_tpp_splits
    warnings.filterwarnings("ignore")
    t0 = time.time()
    by_tpp = {x: [] for x in MIN_TPPS}
    for source, name, train, test in questions():
        done = {}
        for x in MIN_TPPS:
            kept, _ = set_aside_short(train, x)
            key = len(kept)  # thresholds that keep the same rows share one preparation
            if key not in done:
                done[key] = prepare(kept, test, name, source)
            by_tpp[x].append(done[key])
        print(f"  {name}: {time.time() - t0:.0f}s", file=sys.stderr, flush=True)
    sources = sorted({c.source for c in by_tpp[0.0]})

    def min_tpp_from(held):
        """The threshold that minimises the mean, over the other sources, of each source's
        mean absolute error of the chosen law (each source counts once)."""
        def score(x):
            return np.mean([np.mean(np.concatenate([np.abs(c.preds[choose(c, 0.0)[0]] / c.observed - 1)
                                                    for c in by_tpp[x] if c.source == src]))
                            for src in sources if src != held])
        return min(MIN_TPPS, key=score)

    tpp_lines = ["| held-out source | " + " | ".join(f"min {x:g} tokens/param" for x in MIN_TPPS) + " | chosen |",
                 "|---|" + "---|" * (len(MIN_TPPS) + 1)]
    for held in sources:
        errs = [np.mean(np.concatenate([np.abs(c.preds[choose(c, 0.0)[0]] / c.observed - 1)
                                        for c in by_tpp[x] if c.source == held])) for x in MIN_TPPS]
        tpp_lines.append(f"| {held} | " + " | ".join(f"{100 * e:.2f}%" for e in errs) + f" | {min_tpp_from(held):g} |")
    lines = ["| held-out source | min tokens/param | tie | scale prior | c prior | c measured (tables) | law chosen | "
             "mean abs error | best single law (mean abs error) | max abs error | inside 90% | "
             "median half-width / median abs error | 90th-percentile / median abs error | mean interval score |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    answered, loso = {}, {}
    for held in sources:
        x = min_tpp_from(held)
        cases = by_tpp[x]
        tie, prior, lev = knobs_from([c for c in cases if c.source != held])
        mine = [c for c in cases if c.source == held]
        outs = [answer(c, tie, prior, lev) for c in mine]
        answered[held] = list(zip(mine, outs))
        err = np.concatenate([o["err"] for o in outs])
        inside = np.concatenate([o["inside"] for o in outs])
        half = np.concatenate([o["half"] for o in outs])
        score = np.concatenate([o["score"] for o in outs])
        per_law = {law: np.mean(np.concatenate([np.abs(c.preds[law] / c.observed - 1) for c in mine]))
                   for law in set.intersection(*(set(c.preds) for c in mine))}
        best = min(per_law, key=per_law.get)
        chosen = sorted({o["law"] for o in outs})
        loso[held] = {"inside": int(inside.sum()), "n": len(inside),
                      "width": float(np.median(half) / np.median(np.abs(err)))}
        own = [o["c"] for o in outs if o["own_c"]]
        measured = f"{np.median(own):.2g} median ({len(own)} of {len(mine)})" if own else f"none (0 of {len(mine)})"
        own_t = [o["c_t"] for o in outs if o["c_t"] is not None]
        if own_t:
            measured += f"; c_t {np.median(own_t):.2g} median ({len(own_t)})"
        lines.append(f"| {held} | {x:g} | {tie:g} | {100 * prior:.2g}% | {lev:.2g} | {measured} | {', '.join(chosen)} | "
                     f"{100 * np.mean(np.abs(err)):.2f}% | {best} ({100 * per_law[best]:.2f}%) | "
                     f"{100 * np.max(np.abs(err)):.2f}% | {inside.sum()} of {len(inside)} | "
                     f"{np.median(half) / np.median(np.abs(err)):.1f}x | "
                     f"{np.quantile(np.abs(err), 0.9) / np.median(np.abs(err)):.1f}x | {100 * np.mean(score):.2f}% |")
    lines += ["", "Held-out error and coverage against distance, each source with the knobs chosen without it "
                  "(distance: the question's N over the largest N fitted; tokens per parameter: the question's D/N):",
              "", distance_table(answered)]
    # the values the package ships: the same choice made on every source
    x_all = min_tpp_from(None)
    cases = by_tpp[x_all]
    tie_all, prior_all, lev_all = knobs_from(cases)
    n_scaled = sum(own_scale(c, choose(c, 0.0)[0]) is not None for c in cases)
    n_own = sum(answer(c, tie_all, prior_all, lev_all)["own_c"] for c in cases)
    lines += ["", f"Chosen on every source (the values analysis.selection.policy ships): runs under {x_all:g} tokens "
                  f"per parameter set aside, tie {tie_all:g}, scale prior "
                  f"{100 * prior_all:.2g}% (median of {n_scaled} tables' own scatter), leverage prior c = {lev_all:.2g} "
                  f"(the median of {n_own} tables' own error growth; a table whose backtest scores no split takes it)."]
    # the Gadre tables one by one (the issue's six), with the knobs chosen without them
    lines += ["", "| Gadre table | law chosen | 1B (M=20) | 1B (long) | 7B | inside 90% | c, c_t | half-width at 1B / 7B | "
                  "max error: chosen / best single law / median single law |",
              "|---|---|---|---|---|---|---|---|---|"]
    cases = by_tpp[min_tpp_from("gadre2024")]
    tie, prior, lev = knobs_from([c for c in cases if c.source != "gadre2024"])
    gaps, worse, answered_tables, gadre_tables = [], 0, 0, 0
    for c in (c for c in cases if c.source == "gadre2024"):
        o = answer(c, tie, prior, lev)
        e = o["err"]
        maxes = {law: float(np.max(np.abs(c.preds[law] / c.observed - 1))) for law in c.preds}
        mine_max = float(np.max(np.abs(e)))
        best, med = min(maxes.values()), float(np.median(list(maxes.values())))
        gaps.append(mine_max - best)
        worse += mine_max > med
        gadre_tables += 1
        answered_tables += bool(np.all(np.isfinite(e)))
        lines.append(f"| {c.name} | {o['law']} | {100 * e[0]:+.2f}% | {100 * e[1]:+.2f}% | {100 * e[2]:+.2f}% | "
                     f"{o['inside'].sum()} of 3 | {o['c']:.2g} ({'own' if o['own_c'] else 'prior'})"
                     + (f", c_t {o['c_t']:.2g}" if o["c_t"] is not None else "") + " | "
                     f"{100 * o['half'][0]:.1f}% / {100 * o['half'][2]:.1f}% | "
                     f"{100 * mine_max:.2f}% / {100 * best:.2f}% / {100 * med:.2f}% |")
    lines += ["", f"Averaged over the six Gadre tables, the chosen law's max error is {100 * np.mean(gaps):.2f} "
                  "percentage points above the per-table best single law's."]
    syn = synthetic_coverage()
    lines += ["", f"Seeded ladders from a known Chinchilla law (six sizes 20M-1.2B, 5-80 tokens per parameter, 0.4% "
                  f"noise), predicting 12B at 20 tokens per parameter (10x beyond the largest size): the truth lies "
                  f"inside auto's 90% interval in {syn['inside']} of {syn['seeds']} seeds; median half-width "
                  f"{100 * syn['median_half_width']:.2g}% against a median error of "
                  f"{100 * syn['median_abs_error']:.2g}% and a 90th-percentile error of {100 * syn['error_q90']:.2g}%: "
                  f"the intervals are {syn['wider_than_needed']:.1f}x as wide as the 90% error needs."]
    four = four_size_coverage()
    lines += ["", f"A ladder of four sizes (190M-1.3B, 0.5x to 10x Chinchilla's 20 tokens per parameter, 0.5% noise) "
                  f"from a law outside the shared-exponent family (alpha {TRUTH['alpha']}, beta {TRUTH['beta']}), "
                  f"predicting 3B (60B and 300B tokens), 7B at 4T and 13B at 5T (2.3x to 10x beyond the largest "
                  f"size), {four['seeds']} seeds: with c measured on each ladder's own backtest (median "
                  f"{four['own']['median_c']:.2g}), {four['own']['inside']} of {four['n']} inside at a median "
                  f"half-width of {100 * four['own']['median_half_width']:.2g}%; with one c = 4 for every table, "
                  f"{four['c4']['inside']} of {four['n']} at {100 * four['c4']['median_half_width']:.2g}% (median "
                  f"error {100 * four['median_abs_error']:.2g}%, 90th percentile {100 * four['error_q90']:.2g}%)."]
    br = branch_ladder_coverage()
    lines += ["", f"A ladder of one run per size read at its cooldown branches, as many WSD ladders are (five sizes "
                  f"48M-543M, each at 5 to 108 tokens per parameter, no run column; the same law), whose runs are off "
                  f"the law by {100 * br['run_noise']:g}% each (seed, shape or learning rate: shared by a run's "
                  f"branches) and whose points add {100 * br['point_noise']:g}%, predicting four runs of 1.0B to 1.9B "
                  f"at the same budgets, each with its own offset (1.8x to 3.5x beyond the largest size), "
                  f"{br['seeds']} seeds: auto's interval without its bootstrap holds {br['inside']} of {br['n']} at a median "
                  f"half-width of "
                  f"{100 * br['median_half_width']:.2g}% (median error {100 * br['median_abs_error']:.2g}%; "
                  f"{br['seeds_all_inside']} of {br['seeds']} seeds hold every question). The errors of one "
                  f"ladder move together, and a backtest of three to five sizes sees few of them: such a ladder's "
                  f"intervals hold less than 90%."]
    text = "\n".join(tpp_lines + [""] + lines)
    print(text)
    tokens = {}
    tm = tokens_match_table(stats=tokens)
    tm += ("\n\nThe same backtest on the development sources with over-trained runs (`scaling validate TABLE "
           "--allow-repeats`, no bootstrap, so each interval is the error model's and the tied laws' alone):\n\n"
           + tokens_match_other_sources(stats=tokens))
    print(tm)
    card = scorecard_table(scorecard_rows(loso, gadre={"tables": gadre_tables, "answered": answered_tables,
                                                       "mean_gap": float(np.mean(gaps)), "worse_than_median": worse},
                                          tokens=tokens, seeded=syn, four=four, branch=br))
    print(card)
    print(f"({time.time() - t0:.0f} s)", file=sys.stderr)
    if args.write_docs:
        with open(args.write_docs, encoding="utf-8") as f:
            doc = f.read()
        start, end = "<!-- law-choice:start -->", "<!-- law-choice:end -->"
        head, _, rest = doc.partition(start)
        _, _, tail = rest.partition(end)
        doc = f"{head}{start}\n{text}\n{end}{tail}"
        start, end = "<!-- tokens-match:start -->", "<!-- tokens-match:end -->"
        head, _, rest = doc.partition(start)
        _, _, tail = rest.partition(end)
        doc = f"{head}{start}\n{tm}\n{end}{tail}"
        start, end = "<!-- scorecard:start -->", "<!-- scorecard:end -->"
        head, _, rest = doc.partition(start)
        _, _, tail = rest.partition(end)
        with open(args.write_docs, "w", encoding="utf-8") as f:
            f.write(f"{head}{start}\n{card}\n{end}{tail}")
    return 0



# --- the scorecard: issue 24's must-show checks, failed ones first ---------------------------

SOURCE_NAMES = {"gadre2024": "Gadre et al.", "porian2024": "Porian et al.", "muennighoff2023": "Muennighoff et al."}


def _share(k: int, n: int) -> str:
    return f"{k} of {n} ({100 * k / n:.0f}%)" if n else "none"


def scorecard_rows(loso: dict, gadre: dict, tokens: dict, seeded: dict, four: dict, branch: dict) -> list[dict]:
    """Each check the leave-one-source-out study can make, as {check, target, measured, met}:
    ``loso`` per held-out source (inside, n, width: median half-width / median abs error),
    ``gadre`` the six Gadre tables (tables, answered, mean_gap in fractions, worse_than_median),
    ``tokens`` the tokens-to-match backtests per source (pairs, inside, median_ratio), and the
    three seeded-ladder studies' dicts."""
    rows = []

    def add(check, target, measured, met):
        rows.append({"check": check, "target": target, "measured": measured, "met": bool(met)})

    g = loso["gadre2024"]
    add("Gadre et al.: every table gets an answer", "all", f"{gadre['answered']} of {gadre['tables']}",
        gadre["answered"] == gadre["tables"])
    add("Gadre et al.: the default's max error on the 1B and 7B above the per-table best single law's, "
        "averaged over the tables", "at most 0.3 points", f"{100 * gadre['mean_gap']:.2f} points",
        100 * gadre["mean_gap"] <= 0.3)
    add("Gadre et al.: tables on which the default's max error is worse than the median single law's", "none",
        str(gadre["worse_than_median"]), gadre["worse_than_median"] == 0)
    add("Gadre et al.: the 1B and 7B inside their 90% intervals, pooled", "at least 80%",
        _share(g["inside"], g["n"]), g["inside"] >= 0.8 * g["n"])
    t = tokens["gadre2024"]
    add("Gadre et al.: measured tokens to match inside the 90% interval", "at least 80%",
        _share(t["inside"], t["pairs"]), t["inside"] >= 0.8 * t["pairs"])
    add("Gadre et al.: median predicted / measured tokens to match", "0.8x to 1.25x", f"{t['median_ratio']:.2f}x",
        0.8 <= t["median_ratio"] <= 1.25)
    for src in ("gadre2024", "porian2024", "muennighoff2023"):
        add(f"{SOURCE_NAMES[src]}: median half-width / median absolute error", "at most 3x",
            f"{loso[src]['width']:.1f}x", loso[src]["width"] <= 3)
    for src in ("porian2024", "muennighoff2023"):
        add(f"{SOURCE_NAMES[src]}: held-out losses inside their 90% intervals", "at least 80%",
            _share(loso[src]["inside"], loso[src]["n"]), loso[src]["inside"] >= 0.8 * loso[src]["n"])
        t = tokens[src]
        add(f"{SOURCE_NAMES[src]}: measured tokens to match inside the 90% interval", "at least 80%",
            _share(t["inside"], t["pairs"]), t["inside"] >= 0.8 * t["pairs"])
    add("Seeded ladders from a known law, 10x beyond the largest size: truth inside the 90% interval",
        f"at least 85% (here {seeded['wider_than_needed']:.1f}x as wide as the 90% error needs)",
        _share(seeded["inside"], seeded["seeds"]), seeded["inside"] >= 0.85 * seeded["seeds"])
    add("Seeded four-size ladders from outside the law family, 2.3x to 10x out", "90% (nominal; no target set)",
        _share(four["own"]["inside"], four["n"]), four["own"]["inside"] >= 0.9 * four["n"])
    add("Seeded ladders of one run per size read at its branches, 1.8x to 3.5x out", "90% (nominal; no target set)",
        _share(branch["inside"], branch["n"]), branch["inside"] >= 0.9 * branch["n"])
    return rows


def scorecard_table(rows: list[dict]) -> str:
    """The checks as a markdown table, those not met first (each group in its given order)."""
    ordered = [r for r in rows if not r["met"]] + [r for r in rows if r["met"]]
    lines = ["| check | target | measured | met |", "|---|---|---|---|"]
    lines += [f"| {r['check']} | {r['target']} | {r['measured']} | {'yes' if r['met'] else '**NO**'} |" for r in ordered]
    missed = len(rows) - sum(r["met"] for r in rows)
    return "\n".join(lines + ["", f"{missed} of {len(rows)} checks not met (listed first); every number from the "
                                   "run that writes the tables below, each source with the knobs chosen without it."])


# --- the headline answer backtested on Gadre et al. 2024's over-trained runs ------------------

def tokens_match_table(bootstrap: int = 200, candidates=None, stats: dict | None = None) -> str:
    """``scaling validate gadre2024:SET --allow-repeats --bootstrap 200`` for the three sets:
    the pairs with a measured answer, and their pooled summary (also into ``stats["gadre2024"]``
    when a dict is given)."""
    from analysis.extrapolation.validate import backtest_tokens_to_match
    from analysis.common.text import si

    rows, ratios, inside = [], [], []
    for s in GADRE_SETS:
        bt = backtest_tokens_to_match(D.load(f"gadre2024:{s}"), bootstrap=bootstrap, allow_repeats=True,
                                      candidates=candidates)
        for p in bt.pairs:
            if p.ratio is None:
                continue
            ratios.append(p.ratio)
            inside.append(bool(p.inside))
            iv = f"[{si(p.low)}, {si(p.high) if p.high is not None else 'never'}]" if p.low is not None else "-"
            rows.append(f"| {s} | {si(p.small)} -> {si(p.large)} | {si(p.measured_tokens)} | {si(p.predicted_tokens)} | "
                        f"{iv} | {p.ratio:.2f}x | {'yes' if p.inside else 'NO'} |")
    if stats is not None:
        stats["gadre2024"] = {"pairs": len(ratios), "inside": int(sum(inside)), "median_ratio": float(np.median(ratios))}
    head = ["| set | small -> large | measured | predicted | 90% interval | predicted / measured | inside |",
            "|---|---|---|---|---|---|---|"]
    return "\n".join(head + rows + ["", f"Pooled: {len(ratios)} measured pairs, median predicted/measured "
                                         f"{np.median(ratios):.2f}x ({min(ratios):.2f}x to {max(ratios):.2f}x); "
                                         f"{sum(inside)} of {len(inside)} inside their 90% intervals."])


def tokens_match_other_sources(candidates=None, stats: dict | None = None) -> str:
    """The same backtest of the headline answer on the development sources that have
    over-trained runs (Porian et al. 2024's 15 configurations; Muennighoff et al. 2023's
    single-epoch runs), without the bootstrap (so each interval is the error model's and the
    tied laws' alone: a lower bound on the product's coverage)."""
    from analysis.extrapolation.validate import backtest_tokens_to_match

    groups = {"porian2024": [n for n in D.list_datasets() if n.startswith("porian2024:")],
              "muennighoff2023": ["muennighoff2023"]}
    lines = ["| source | tables | measured pairs | median predicted / measured | middle half | inside 90% |",
             "|---|---|---|---|---|---|"]
    far = ["| source | measured answer, tokens per parameter | pairs | median predicted / measured | inside 90% | "
           "median interval (high / low) |", "|---|---|---|---|---|---|"]
    for source, names in groups.items():
        ratios, inside, tpp, span = [], [], [], []
        for name in names:
            df = D.load(name)
            if "epochs" in df.columns:
                df = df[df["epochs"] <= 1.0001]  # tokens to match means fresh tokens here
            bt = backtest_tokens_to_match(df, bootstrap=0, allow_repeats=True, candidates=candidates)
            for p in bt.pairs:
                if p.ratio is not None:
                    ratios.append(p.ratio)
                    inside.append(bool(p.inside))
                    tpp.append(p.measured_tokens / p.small)
                    span.append(np.inf if p.high is None or p.low is None else p.high / p.low)
        q1, q3 = np.quantile(ratios, [0.25, 0.75])
        if stats is not None:
            stats[source] = {"pairs": len(ratios), "inside": int(sum(inside)), "median_ratio": float(np.median(ratios))}
        lines.append(f"| {source} | {len(names)} | {len(ratios)} | {np.median(ratios):.2f}x | {q1:.2f}x to {q3:.2f}x | "
                     f"{sum(inside)} of {len(inside)} |")
        ratios, inside, tpp, span = (np.asarray(v) for v in (ratios, inside, tpp, span))
        for lo, hi in zip(TOKENS_EDGES[:-1], TOKENS_EDGES[1:]):
            k = (tpp > lo) & (tpp <= hi)
            if k.any():
                far.append(f"| {source} | {_bucket(lo, hi, '')} | {k.sum()} | {np.median(ratios[k]):.2f}x | "
                           f"{inside[k].sum()} of {k.sum()} | {_span_text(np.median(span[k]))} |")
    return "\n".join(lines) + ("\n\nThe same pairs by how far the measured answer lies in tokens per parameter (the "
                               "fit saw runs up to 40):\n\n" + "\n".join(far))


# --- seeded ladders from a known law: coverage 10x beyond the largest size -------------------

#: Chinchilla-form truth with exponents apart (Hoffmann et al. 2022's fit, eq. 10).
TRUTH = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}


def synthetic_coverage(seeds: int = 60, noise: float = 0.004) -> dict:
    """Six sizes 20M-1.2B at 5-80 tokens per parameter with log-normal noise; auto's 90%
    interval (bootstrap 100, tied laws, error model) for 12B at 20 tokens per parameter."""
    import pandas as pd

    from analysis.selection.checked import fit_checked
    from analysis.laws import chinchilla

    inside, half, err = [], [], []
    N_far, D_far = 1.2e10, 2.4e11
    truth = float(chinchilla(N_far, D_far, **TRUTH))
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        N, Dt = np.array([(n, t * n) for n in np.geomspace(2e7, 1.2e9, 6) for t in (5, 10, 20, 40, 80)]).T
        loss = chinchilla(N, Dt, **TRUTH) * np.exp(rng.normal(0, noise, len(N)))
        checked = fit_checked(pd.DataFrame({"params": N, "tokens": Dt, "loss": loss}), bootstrap=100, seed=seed,
                              progress=False)
        lo, hi = (float(np.asarray(v)) for v in checked.predict_interval(N=N_far, D=D_far, backtest_error=True))
        pred = float(checked.fit.predict(N=N_far, D=D_far))
        inside.append(lo <= truth <= hi)
        half.append((hi - lo) / 2 / pred)
        err.append(abs(pred / truth - 1))
    need = float(np.quantile(err, 0.9))
    return {"seeds": seeds, "inside": int(sum(inside)), "median_half_width": float(np.median(half)),
            "median_abs_error": float(np.median(err)), "error_q90": need,
            "wider_than_needed": float(np.median(half) / need) if need > 0 else float("inf")}


def four_size_coverage(seeds: int = 16, noise: float = 0.005) -> dict:
    """Four sizes at five budgets from :data:`TRUTH` (whose exponents differ, so the
    shared-exponent law auto usually picks is the wrong family), four questions 2.3x to 10x
    beyond the largest size: coverage and width of auto's interval (without its bootstrap)
    with the table's own c, and with c = 4 for comparison."""
    import pandas as pd

    from analysis.laws import chinchilla
    from analysis.selection.checked import fit_checked

    sizes, mults = (1.9e8, 3.7e8, 7.6e8, 1.3e9), (0.5, 1.0, 2.0, 5.0, 10.0)
    asked = ((3e9, 6e10), (3e9, 3e11), (7e9, 4e12), (1.3e10, 5e12))
    out = {"own": [], "c4": []}
    errs, cs = [], []
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        N, Dt = np.array([(n, m * 20 * n) for n in sizes for m in mults]).T
        loss = chinchilla(N, Dt, **TRUTH) * np.exp(rng.normal(0, noise, len(N)))
        checked = fit_checked(pd.DataFrame({"params": N, "tokens": Dt, "loss": loss}), progress=False, min_tpp=0)
        em = checked.error_model
        cs.append(em.leverage)
        for n, d in asked:
            truth, pred = float(chinchilla(n, d, **TRUTH)), float(checked.fit.predict(N=n, D=d))
            preds = [pred, *(float(f.predict(N=n, D=d)) for f in checked.tied.values())]
            errs.append(abs(pred / truth - 1))
            for key, c in (("own", em.leverage), ("c4", 4.0)):
                w = float(dataclasses.replace(em, leverage=c).half_width(n, d, LEVEL))
                lo, hi = beside_error_model(pred, w, min(preds), max(preds))
                out[key].append((lo <= truth <= hi, (hi - lo) / 2 / pred))
    summary = {k: {"inside": int(sum(i for i, _ in v)), "median_half_width": float(np.median([h for _, h in v]))}
               for k, v in out.items()}
    summary["own"]["median_c"] = float(np.median(cs))
    return {"seeds": seeds, "n": len(errs), **summary, "median_abs_error": float(np.median(errs)),
            "error_q90": float(np.quantile(errs, 0.9))}


def branch_ladder_coverage(seeds: int = 12, run_noise: float = 0.005, point_noise: float = 0.0015) -> dict:
    """Five sizes, one run each read at six cooldown branches (no run column), from
    :data:`TRUTH` with a log-normal offset per run shared by its branches and a smaller one
    per point; four target runs of 1.0B-1.9B at the same budgets, each with its own offset.
    Coverage and width of auto's interval without its bootstrap (``checked.predict_interval``
    with the error model), as the product gives it."""
    import pandas as pd

    from analysis.laws import chinchilla
    from analysis.selection.checked import fit_checked

    sizes, tpps = np.geomspace(4.8e7, 5.43e8, 5), (5, 10, 20, 40, 80, 108)
    targets = (1.0e9, 1.3e9, 1.6e9, 1.9e9)
    inside, half, err, whole = [], [], [], 0
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        N, Dt = np.array([(n, t * n) for n in sizes for t in tpps]).T
        offset = np.repeat(rng.normal(0, run_noise, len(sizes)), len(tpps))
        loss = chinchilla(N, Dt, **TRUTH) * np.exp(offset + rng.normal(0, point_noise, len(N)))
        checked = fit_checked(pd.DataFrame({"params": N, "tokens": Dt, "loss": loss}), progress=False)
        target_offset = rng.normal(0, run_noise, len(targets))
        held = []
        for k, n in enumerate(targets):
            for t in tpps:
                truth = float(chinchilla(n, t * n, **TRUTH)) * math.exp(target_offset[k] + rng.normal(0, point_noise))
                pred = float(checked.fit.predict(N=n, D=t * n))
                lo, hi = (float(np.asarray(v)) for v in checked.predict_interval(N=n, D=t * n, backtest_error=True))
                held.append(lo <= truth <= hi)
                half.append((hi - lo) / 2 / pred)
                err.append(abs(pred / truth - 1))
        inside += held
        whole += all(held)
    return {"seeds": seeds, "n": len(inside), "inside": int(sum(inside)), "run_noise": run_noise,
            "point_noise": point_noise, "median_half_width": float(np.median(half)),
            "median_abs_error": float(np.median(err)), "seeds_all_inside": whole}


if __name__ == "__main__":
    raise SystemExit(main())
