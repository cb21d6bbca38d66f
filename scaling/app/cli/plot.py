"""``scaling plot``: loss curves with their extrapolations, IsoFLOP profiles and fit residuals."""
# Deferred imports: the analysis modules (pandas) are imported inside run and study_from_args
# because `scaling --help` imports every subcommand's module to build its parser; the
# analysis.common ones are light and sit beside them only to keep each command's imports
# together.
from __future__ import annotations

import argparse
from pathlib import Path

from scaling.app.cli._common import (AUTO_LAW_HELP, add_command, add_min_tpp_option, add_sizes_option, add_table_options,
                                 check_bootstrap, check_jobs,
                                   print_json, sizes_from_args, study_summary)

EXAMPLE = ("scaling plot runs/sweep -o curves.png\n"
           "  scaling plot points.csv --kind all -o figs/study.svg --law chinchilla --bootstrap 100")


def add_study_options(p: argparse.ArgumentParser) -> None:
    """Options shared by ``plot`` and ``report``: which law, which target, which intervals."""
    p.add_argument("path", help="sweep or run directory, or a CSV/Parquet table of points")
    p.add_argument("--law", default="auto",
                   help=f"law to fit (auto [default: {AUTO_LAW_HELP}], chinchilla, gadre2024, kaplan_nd), "
                        "a published law (hoffmann2022, besiroglu2024) or a saved fit (.json)")
    add_sizes_option(p)
    add_min_tpp_option(p)
    p.add_argument("--target", default="largest",
                   help="largest (default), a loss such as 2.05, or PARAMS:TOKENS such as 1e9:2e10")
    p.add_argument("--bootstrap", type=int, default=0, metavar="N", help="bootstrap refits for bands (default 0)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.add_argument("--jobs", type=int, default=None, help="worker processes for the bootstrap (default: all cores)")
    p.add_argument("--flops", choices=("6nd", "detailed"), default="6nd", help="FLOP convention (default 6nd)")
    p.add_argument("--no-curves", dest="curves", action="store_false", help="skip the per-run loss curves")
    add_table_options(p)


def study_from_args(args):
    """Run the study the shared options describe."""
    from analysis.extrapolation.study import run_study

    check_bootstrap(args.bootstrap)
    check_jobs(args.jobs)
    return run_study(args.path, law=args.law, target=args.target, bootstrap=args.bootstrap, seed=args.seed,
                     n_jobs=args.jobs, level=args.level, flops=args.flops, curves=args.curves,
                     columns=args.columns, policy=args.policy, allow_repeats=args.allow_repeats,
                     backtest=getattr(args, "backtest", False), sizes=sizes_from_args(args), min_tpp=args.min_tpp)


#: The figures of ``scaling report`` (analysis.reporting.report.REPORT_KINDS; written out here so that
#: ``scaling --help`` does not import the analysis and matplotlib behind them).
REPORT_KINDS = ("curves", "isoflop", "residuals", "frontier", "own_curves", "repetition")


def add_parser(sub) -> argparse.ArgumentParser:
    p = add_command(sub, "plot", "Plot loss curves and extrapolations, IsoFLOP profiles or fit residuals.",
                    EXAMPLE, run)
    add_study_options(p)
    p.add_argument("-o", "--output", required=True, metavar="FIG",
                   help="figure file; the format follows the extension (.png, .svg, .pdf). With --kind all, "
                        "one file per kind beside FIG, named STEM-KIND (study.png: study-curves.png, "
                        "study-isoflop.png, ...), or just KIND when FIG's stem is a kind's name (curves.png: "
                        "curves.png, isoflop.png, ..., as in a report)")
    p.add_argument("--kind", choices=(*REPORT_KINDS, "all"), default="curves",
                   help="what to draw (default curves), any figure `scaling report` writes: frontier: loss vs "
                        "compute with the compute-efficient frontier; own_curves: each smaller model's own run "
                        "extrapolated alone; repetition: loss against epochs at fixed compute and the effective "
                        "data D'(D) of a data-constrained law; all: every figure the report of this data holds")
    p.add_argument("--unique-tokens", type=float, default=None, metavar="U", dest="unique_tokens",
                   help="unique-token budget the repetition figure draws (default: the table's median unique_tokens)")
    p.add_argument("--dpi", type=int, default=150, help="resolution of PNG output (default 150)")
    p.add_argument("--json", action="store_true",
                   help="print a JSON object (the files written, the law, the target, the checks) instead of lines")
    return p


#: Highest --dpi accepted: a 6x4-inch figure at 2400 dpi is already ~550 MB of pixels.
MAX_DPI = 2400


def figure_path(out, kind: str, kinds) -> "Path":
    """Where ``--kind all`` puts the figure of ``kind``: STEM-KIND beside ``out``, or KIND when
    ``out``'s stem already names a kind (never ``curves-curves.png``)."""
    if len(kinds) == 1:
        return out
    stem = kind if out.stem in {*REPORT_KINDS, *kinds} else f"{out.stem}-{kind}"
    return out.with_name(stem + out.suffix)


def run(args) -> int:
    from pathlib import Path

    from analysis.common.errors import InputError
    from analysis.common.records import writing_output
    from analysis.reporting.plots import check_figure_output, save_figure
    from analysis.reporting.report import report_figures, report_kinds

    out = Path(args.output)
    check_figure_output(out, "--output")
    if not 1 <= args.dpi <= MAX_DPI:  # matplotlib's own error is a traceback; a huge one exhausts memory
        raise InputError(f"must lie in 1..{MAX_DPI}, got {args.dpi}", field="--dpi",
                         fix="e.g. --dpi 150 (screen) or --dpi 300 (print)")
    study = study_from_args(args)
    kinds = tuple(report_kinds(study)) if args.kind == "all" else (args.kind,)
    figures = report_figures(study, kinds, unique_tokens=args.unique_tokens)
    written = []
    for kind, fig in figures.items():
        path = figure_path(out, kind, kinds)
        with writing_output("--output", path):
            save_figure(fig, path, dpi=args.dpi)
        written.append(path)
        if not args.json:
            print(f"wrote {path}")
    if args.json:
        print_json(study_summary(study, written))
    return 0
