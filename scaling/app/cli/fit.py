"""``scaling fit``: fit a scaling law (or a compute-optimal allocation) to observed points."""
# Deferred imports: the analysis modules (pandas) are imported inside run and its helpers because
# `scaling --help` imports every subcommand's module to build its parser; the analysis.common
# ones are light and sit beside them only to keep each command's imports together.
from __future__ import annotations

import argparse
import math

from scaling.app.cli._common import (AUTO_LAW_HELP, add_command, add_min_tpp_option, add_sizes_option, add_table_options,
                                 check_bootstrap, check_jobs,
                                 print_json, sizes_from_args)



def law_choices() -> tuple[str, ...]:
    """What --law takes: auto, kaplan's pick, every law of the registry that fits points
    (laws of SCALING_LAW_MODULES included), and the two allocation approaches."""
    from analysis.laws import fittable

    return ("auto", "kaplan", *fittable(), "approach1", "approach2")

EXAMPLE = ("scaling fit runs/sweep --bootstrap 1000 --predict 7e9:1.4e12\n"
           "  scaling fit runs/sweep --backtest --law chinchilla\n"
           "  scaling fit chinchilla_points.csv --columns 'params=Model Size,flops=Training FLOP' --json\n"
           "  scaling fit runs/isoflop --law approach2 --compute 1e21,1e22")

DESCRIPTION = """\
Fit a law to observed (N, D, loss) points: a sweep or run directory, or a CSV / Parquet
table with params, tokens, loss columns (or the common spellings N, D, Model Size,
Training Tokens, Training FLOP, final_loss; map others with --columns).

Laws: auto (the default: runs under 20 tokens per parameter are set aside, --min-tpp;
each law with a loss floor, chinchilla and gadre2024, is fitted to the smaller sizes and
scored on the larger ones (data_constrained too when the table has unique tokens), and
of those within a factor 2 of the best held-out error the one with the fewest parameters
is used; the choice and its reason are printed first; docs/analysis.md, Law choice at
distance), chinchilla (Hoffmann et al. 2022 Approach 3), gadre2024 (the over-training
law, one exponent), kaplan (Kaplan et al. 2020: the joint L(N, D), or L(N) / L(D) when
only one of them varies, plus L(C_min) on the compute-efficient frontier), approach1 and
approach2 (Hoffmann et al.'s envelope and IsoFLOP allocations). Parametric laws are
fitted with a Huber loss (delta 1e-3) on log loss and L-BFGS from a grid, as Hoffmann et
al. did; --bootstrap N refits N resamples in parallel for honest intervals (whole runs
when the data have enough runs per size, whole sizes when there is no run column and
several points share a size, single points otherwise).

Every fit runs its self-checks (units, FLOPs against 6ND, the law falling with N and D,
parameters at bounds or not identified, the shared exponent of gadre2024 against the
free law); failed and warned checks are printed above the numbers, and --strict turns a
failed check into exit status 1.
"""


def _law_name(value: str) -> str:
    """A law of :func:`law_choices`, or a stacked combination mix(LAW=WEIGHT,...) (checked
    here, so a typo is a usage error before any loading)."""
    import argparse

    from analysis.common.errors import InputError
    from analysis.laws.mix import is_mix, parse_mix

    choices = law_choices()
    if value in choices:
        return value
    if is_mix(value):
        try:
            parse_mix(value)
        except InputError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
        return value
    raise argparse.ArgumentTypeError(f"invalid choice: {value!r} (choose from {', '.join(choices)}, "
                                     "or mix(LAW=WEIGHT,...))")


def add_parser(sub) -> argparse.ArgumentParser:
    p = add_command(sub, "fit", "Fit a scaling law to a sweep or a table of points.", EXAMPLE, run)
    p.description = DESCRIPTION
    p.add_argument("path", help="sweep or run directory, a CSV / Parquet / JSON-lines table of points, or a "
                                "shipped dataset such as porian2024:rw/tuned/short/const/standard/val "
                                "(see `scaling datasets`)")
    p.add_argument("--law", default="auto", type=_law_name, metavar="LAW",
                   help=f"auto (default: {AUTO_LAW_HELP}), chinchilla, gadre2024, kaplan, "
                        "kaplan_nd, kaplan_n, kaplan_d, kaplan_c, approach1, approach2, any law a module in "
                        "SCALING_LAW_MODULES registers, or a combination such as 'mix(chinchilla=0.6,kaplan_nd=0.4)'")
    p.add_argument("--backtest", action="store_true",
                   help="also print the backtest table: each candidate law fitted to the smaller sizes and "
                        "scored on every larger one")
    add_sizes_option(p)
    add_min_tpp_option(p)
    p.add_argument("--strict", action="store_true", help="exit with status 1 when a self-check fails")
    p.add_argument("--resample", choices=("auto", "runs", "points"), default="auto",
                   help="what the bootstrap draws: auto (default), whole runs, or single points")
    p.add_argument("--optimum", choices=("parabola", "akima"), default=None,
                   help="approach2's optimum per budget: parabola (Hoffmann et al., default) or akima "
                        "(Porian et al. 2024: Akima spline, a noise bootstrap of --bootstrap N draws, default 1000, and a "
                        "weighted power law)")
    p.add_argument("--bootstrap", type=int, default=0, metavar="N",
                   help="bootstrap refits for percentile intervals (default 0: asymptotic intervals)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.add_argument("--jobs", type=int, default=None, metavar="N",
                   help="worker processes for the bootstrap (default: all cores)")
    p.add_argument("--predict", metavar="N:D[,N:D...]",
                   help="predict the loss at these (params, tokens) pairs, e.g. 7e9:1.4e12,70e9:1.4e12")
    p.add_argument("--compute", metavar="C[,C...]",
                   help="compute-optimal N, D and tokens per parameter at these FLOP budgets, e.g. 1e21,5.76e23")
    add_table_options(p)
    p.add_argument("-o", "--save", metavar="FIT.json",
                   help="also save the fit as JSON (reload with analysis.fitting.io.load_result)")
    p.add_argument("--json", action="store_true", help="print a JSON object instead of the report")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    return p


def _numbers(text: str, what: str) -> list[float]:
    from analysis.common.errors import InputError

    out = []
    for part in (s.strip() for s in str(text).split(",")):
        if not part:
            continue
        try:
            v = float(part)
        except ValueError:
            raise InputError(f"cannot read {part!r} as a number", field=what, fix="write numbers like 7e9") from None
        if not math.isfinite(v) or v <= 0:
            raise InputError(f"{part!r} is not a positive number", field=what, fix="write numbers like 7e9")
        out.append(v)
    if not out:
        raise InputError("nothing given", field=what, fix="write numbers like 7e9")
    return out


def parse_pairs(text: str) -> list[tuple[float, float]]:
    """``"7e9:1.4e12,70e9:1.4e12"`` -> [(7e9, 1.4e12), (70e9, 1.4e12)]."""
    from analysis.common.errors import InputError

    pairs = []
    for part in (s.strip() for s in str(text).split(",")):
        if not part:
            continue
        if part.count(":") != 1:
            raise InputError(f"cannot read {part!r}", field="--predict", fix="write PARAMS:TOKENS pairs, e.g. 7e9:1.4e12")
        n, d = part.split(":")
        pairs.append((_numbers(n, "--predict")[0], _numbers(d, "--predict")[0]))
    if not pairs:
        raise InputError("no pairs given", field="--predict", fix="write PARAMS:TOKENS pairs, e.g. 7e9:1.4e12")
    return pairs


def run(args) -> int:
    import logging

    from analysis.data.loading import load_points
    from analysis.common.errors import InputError
    from analysis.common.records import check_output

    check_bootstrap(args.bootstrap)
    check_jobs(args.jobs)
    if not 0 < args.level < 1:
        raise InputError("must lie between 0 and 1", field="--level", fix="e.g. --level 0.9")
    if args.save:  # before the fit, which may take minutes, is thrown away
        check_output(args.save, "--save")
    if not args.quiet:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
    progress = False if args.quiet else None
    predict = parse_pairs(args.predict) if args.predict else []
    compute = _numbers(args.compute, "--compute") if args.compute else []

    if args.optimum and args.law != "approach2":
        raise InputError(f"only approach2 has an optimum per IsoFLOP profile, not {args.law}", field="--optimum",
                         fix="add --law approach2, or drop --optimum")
    if args.law in ("approach1", "approach2"):
        if args.sizes is not None:
            raise InputError(f"{args.law} fits every IsoFLOP profile, not a law on the largest sizes",
                             field="--sizes", fix="drop --sizes, or use a law such as --law chinchilla")
        if predict:
            raise InputError(f"{args.law} fits the compute-optimal allocation, not a loss", field="--predict",
                             fix="use --compute C to get N_opt and D_opt, or fit --law chinchilla to predict losses")
        from analysis.fitting import approaches

        if args.law == "approach1":
            from pathlib import Path

            src = args.path if Path(args.path).is_dir() else load_points(args.path, columns=args.columns,
                                                                         policy=args.policy)
            fit = approaches.approach1(src, bootstrap=args.bootstrap, seed=args.seed, level=args.level)
        else:
            points = load_points(args.path, columns=args.columns, policy=args.policy)
            fit = approaches.approach2(points, bootstrap=args.bootstrap, seed=args.seed, level=args.level,
                                       optimum=args.optimum or "parabola")
        return _emit(args, fit, [], compute, extra=None)

    from analysis.selection.checked import fit_checked
    from analysis.fitting.fit import fit_law, pick_kaplan_law

    points = load_points(args.path, columns=args.columns, policy=args.policy)
    law = pick_kaplan_law(points) if args.law == "kaplan" else args.law
    kw = dict(bootstrap=args.bootstrap, seed=args.seed, n_jobs=args.jobs, level=args.level, progress=progress,
              resample=args.resample)
    checked = fit_checked(points, law, run_backtest=args.backtest, allow_repeats=args.allow_repeats,
                          sizes=sizes_from_args(args), min_tpp=args.min_tpp, **kw)
    fit = checked.fit
    kw["allow_repeats"] = args.allow_repeats
    extra = None
    if args.law == "kaplan":
        from analysis.common.errors import ToolkitError
        from analysis.fitting.fit import frontier_points

        if len(frontier_points(points)) >= 3:
            try:
                extra = fit_law(points, "kaplan_c", **kw)
            except ToolkitError as e:  # the frontier is a bonus; the main fit stands on its own
                fit.warnings.append(f"no L(C_min) fit: {e}")
    return _emit(args, fit, predict, compute, extra, checked)


def _predictions(fit, pairs, checked=None) -> list[dict]:
    import numpy as np

    from analysis.selection.checked import prediction_distance

    out = []
    for n, d in pairs:
        row = {"params": n, "tokens": d, "loss": float(fit.predict(N=n, D=d, C=6.0 * n * d))}
        # the calibrated interval where a backtest exists: bootstrap, tied laws and held-out error
        iv = (checked.predict_interval(N=n, D=d, C=6.0 * n * d, backtest_error=True) if checked is not None
              else fit.predict_interval(N=n, D=d, C=6.0 * n * d))
        if iv is not None:
            row["interval"] = [float(np.asarray(iv[0])), float(np.asarray(iv[1]))]
        row["distance"] = prediction_distance(fit, n, d, checked)
        warn = checked.prediction_warnings(n, d) if checked is not None else fit.extrapolation_warnings(N=n, D=d)
        if warn:
            row["warnings"] = warn
        out.append(row)
    return out


def _allocations(fit, budgets) -> list[dict]:
    from analysis.fitting.allocation import compute_optimal

    r = compute_optimal(fit, budgets)
    rows = []
    for i, c in enumerate(r["C"]):
        row = {"flops": float(c), "n_opt": float(r["n_opt"][i]), "d_opt": float(r["d_opt"][i]),
               "tokens_per_param": float(r["tokens_per_param"][i])}
        if "loss" in r:
            row["loss"] = float(r["loss"][i])
        for k in ("n_opt", "d_opt", "tokens_per_param", "loss"):
            if f"{k}_ci" in r:
                lo, hi = r[f"{k}_ci"]
                row[f"{k}_ci"] = [float(lo[i]), float(hi[i])]
        rows.append(row)
    return rows, r.get("warnings", [])


def _summary(fit) -> dict:
    from analysis.fitting.result import law_json

    d = {"law": law_json(fit), "ci": {k: [v[0], v[1]] for k, v in fit.ci.items()},
         "ci_level": fit.ci_level, "n_points": fit.n_points, "n_sizes": fit.n_sizes, "n_budgets": fit.n_budgets,
         "stderr": fit.stderr, "method": getattr(fit, "method", fit.law), "warnings": list(fit.warnings),
         "notes": list(fit.meta.get("notes", []))}
    if hasattr(fit, "derived") and fit.derived():
        d["derived"] = fit.derived()
        dci = fit.derived_ci()
        if dci:
            d["derived_ci"] = {k: [v[0], v[1]] for k, v in dci.items()}
    if getattr(fit, "points", None):
        d["optima"] = fit.points
    return d


def _emit(args, fit, predict, compute, extra, checked=None) -> int:
    from analysis.common.text import format_table, si

    preds = _predictions(fit, predict, checked) if predict else []
    allocs, alloc_warn = _allocations(fit, compute) if compute else ([], [])
    if args.save:
        from analysis.common.records import writing_output

        with writing_output("--save", args.save):
            if checked is not None:  # with what its intervals need: tied laws, error model
                from analysis.selection.checked import save_checked

                save_checked(checked, args.save)
            else:
                fit.save(args.save)
    if args.json:
        out = _summary(fit)
        if predict:
            out["predictions"] = preds
        if compute:
            out["allocation"] = allocs
            out["allocation_warnings"] = alloc_warn
        if extra is not None:
            out["compute_frontier"] = _summary(extra)
        if checked is not None:
            out.update(checked.to_dict())
        print_json(out)
        return _status(args, checked)
    if checked is not None:
        head = checked.header_lines()
        if head:
            print("\n".join(head) + "\n")
    print(fit.report())
    if extra is not None:
        print()
        print(extra.report())
    if preds:
        print("\n[[Predictions]]")
        rows = [{"params": p["params"], "tokens": p["tokens"], "loss": p["loss"],
                 "low": p.get("interval", [None, None])[0], "high": p.get("interval", [None, None])[1],
                 "x largest N": p["distance"]["params_ratio"], "D/N": p["distance"]["tokens_per_param"]}
                for p in preds]
        fmt = {"params": si, "tokens": si, "x largest N": lambda v: f"{v:.3g}x", "D/N": lambda v: f"{v:.3g}"}
        print("\n".join("    " + ln for ln in format_table(rows, formats=fmt).splitlines()))
        if checked is not None and (checked.backtest_error or checked.error_model is not None):
            print(f"    interval: {checked.interval_note()}")
        beyond = [p for p in preds if p["distance"].get("beyond_every_split")]
        if beyond:
            reach = beyond[0]["distance"]["backtest_reach"]
            print(f"    - {len(beyond)} of {len(preds)} predictions lie beyond every backtest split (farthest "
                  f"{reach:.3g}x): their intervals rest on the error model's extrapolation")
        for p in preds:
            for w in p.get("warnings", []):
                print(f"    - {w}")
    if allocs:
        print("\n[[Compute-optimal allocation]] (C = 6ND)" if fit.law not in ("approach1", "approach2")
              else "\n[[Compute-optimal allocation]]")
        rows = [{"flops": a["flops"], "N_opt": a["n_opt"], "D_opt": a["d_opt"], "D/N": a["tokens_per_param"],
                 "N low": a.get("n_opt_ci", [None])[0], "N high": a.get("n_opt_ci", [None, None])[1]}
                for a in allocs]
        fmt = {"flops": lambda v: f"{v:.3g}", "N_opt": si, "D_opt": si, "N low": si, "N high": si,
               "D/N": lambda v: f"{v:.1f}"}
        print("\n".join("    " + ln for ln in format_table(rows, formats=fmt).splitlines()))
        for w in alloc_warn:
            print(f"    - {w}")
    if checked is not None and checked.backtest is not None and args.backtest:
        print()
        print(checked.backtest.table())
    if args.save:
        print(f"\nsaved {args.save}")
    return _status(args, checked)


def _status(args, checked) -> int:
    """1 under --strict when a self-check failed (the output above says which)."""
    return 1 if getattr(args, "strict", False) and checked is not None and checked.failed else 0
