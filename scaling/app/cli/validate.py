"""``scaling validate TABLE``: the tokens-to-match answer backtested against longer runs."""
# Deferred imports: the analysis modules (pandas) are imported inside run because `scaling
# --help` imports every subcommand's module to build its parser.
from __future__ import annotations

from scaling.app.cli._common import AUTO_LAW_HELP, add_command, add_min_tpp_option, check_bootstrap, print_json

EXAMPLE = "scaling validate gadre2024:rpj --allow-repeats --bootstrap 200"


def add_parser(sub) -> None:
    p = add_command(sub, "validate",
                    "Backtest the headline answer on a table with over-trained runs: fit only the runs up to "
                    "--max-tpp tokens per parameter, predict how many tokens each smaller model needs to match "
                    "each larger model's run nearest --target-tpp, and compare with where the smaller model's own "
                    "longer runs cross that loss.", EXAMPLE, run)
    p.add_argument("path", metavar="TABLE", help="a points table, sweep directory or dataset name")
    p.add_argument("--max-tpp", type=float, default=40.0, metavar="M",
                   help="the fit sees runs up to M tokens per parameter (default 40)")
    p.add_argument("--target-tpp", type=float, default=20.0, metavar="M",
                   help="each larger size's target is its run nearest M tokens per parameter (default 20)")
    p.add_argument("--law", default="auto", help=f"law to fit (default auto: {AUTO_LAW_HELP}), or chinchilla, gadre2024, kaplan_nd")
    p.add_argument("--bootstrap", type=int, default=0, metavar="N", help="bootstrap refits for intervals (default 0)")
    p.add_argument("--level", type=float, default=0.90, help="interval level (default 0.90)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.add_argument("--allow-repeats", action="store_true",
                   help="rows sharing N and D are separate seeds: keep them")
    add_min_tpp_option(p)
    p.add_argument("--plot", metavar="FIG", default=None,
                   help="also write a figure (.png, .svg or .pdf): predicted against measured tokens to match with "
                        "their intervals, and their ratio against how far the measured answer lies in tokens per "
                        "parameter")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")


def run(args) -> int:
    from analysis.data.loading import load_points
    from analysis.extrapolation.validate import backtest_tokens_to_match

    check_bootstrap(args.bootstrap)
    if args.plot is not None:
        # refuse a name that cannot be written before the fit, not after it
        from analysis.reporting.plots import check_figure_output

        check_figure_output(args.plot, "--plot")
    points = load_points(args.path)
    result = backtest_tokens_to_match(points, max_tpp=args.max_tpp, target_tpp=args.target_tpp, law=args.law,
                                      bootstrap=args.bootstrap, level=args.level, seed=args.seed,
                                      allow_repeats=args.allow_repeats, min_tpp=args.min_tpp)
    if args.plot is not None:
        from analysis.common.records import writing_output
        from analysis.reporting.plots import plot_tokens_backtest, save_figure

        with writing_output("--plot", args.plot):
            save_figure(plot_tokens_backtest(result), args.plot)
    if args.json:
        print_json({**result.to_dict(), **({"figure": str(args.plot)} if args.plot is not None else {})})
    else:
        print(result.table() + (f"\nfigure: {args.plot}" if args.plot is not None else ""))
    return 0
