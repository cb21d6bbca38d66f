"""``scaling demo``: a real scaling study on the built-in corpus, from training to a report.

Thin front to :func:`scaling.app.demo.run_demo`; ``make demo`` runs it after setting up
``.venv``. It trains the ``demo`` experiment preset's own sweep, the same runs as
``python -m sweeps -m experiment=demo``. Rerunning it reuses the finished runs and only
redoes the analysis.
"""
# Deferred imports: scaling.app.demo (Hydra, pandas, the whole analysis) is imported inside run
# because `scaling --help` imports every subcommand's module to build its parser;
# scaling.defaults imports nothing and analysis.common is light, so their deferred imports gain
# nothing and may move up.
from __future__ import annotations

import argparse

from scaling.app.cli._common import AUTO_LAW_HELP, add_command, check_bootstrap, check_jobs, print_json, study_summary

EXAMPLE = ("scaling demo --out demo_out                        # the demo experiment's 4 runs, on all cores\n"
           "  scaling demo --out demo_small --grid nano=2e6,micro=1e6,tiny=5e5     # smaller and quicker\n"
           "  scaling demo --out demo_1m tokens=1e6                               # every size at one budget")


def add_parser(sub) -> argparse.ArgumentParser:
    from scaling.defaults import DEMO_BOOTSTRAP as DEFAULT_BOOTSTRAP, DEMO_OUT as DEFAULT_OUT

    p = add_command(
        sub, "demo",
        help="Train the demo sweep exactly as `python -m sweeps -m experiment=demo` does (or reuse its finished "
             "runs), fit the joint law (by default the one with a loss floor that best predicts larger sizes "
             "from smaller ones) with bootstrap intervals and each model's own curve, print the "
             "compute-matched extrapolation table, and write a report with figures.",
        example=EXAMPLE, func=run)
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="Hydra overrides of the experiment, as `python -m sweeps -m experiment=demo` takes them, "
                        "e.g. optim.lr=2e-3, model=nano,micro, tokens=5e5 (one budget for every size) or "
                        "++sweep.tokens_by_model.nano=2e6")
    p.add_argument("--grid", default=None, metavar="MODEL=TOKENS,...",
                   help="shorthand for the runs: these model presets, each at its own token budget (default: the "
                        "experiment's sweep.tokens_by_model, see sweeps/conf/experiment/demo.yaml)")
    p.add_argument("--lanes", type=int, default=None, metavar="N",
                   help="runs trained at a time: the joblib launcher's workers (default: one per core, each run "
                        "with its share of the cores)")
    p.add_argument("--out", default=DEFAULT_OUT, metavar="DIR",
                   help=f"output directory: the sweep in DIR/runs, the report in DIR/report (default {DEFAULT_OUT})")
    p.add_argument("--bootstrap", type=int, default=DEFAULT_BOOTSTRAP, metavar="N",
                   help=f"bootstrap refits of the joint law (default {DEFAULT_BOOTSTRAP}; 0 for asymptotic "
                        "intervals only)")
    p.add_argument("--law", default="auto",
                   help=f"joint law to fit: auto (default: {AUTO_LAW_HELP}), chinchilla, gadre2024 or kaplan_nd")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.add_argument("--resample", choices=("auto", "points", "runs"), default="auto",
                   help="what the bootstrap draws (default auto: whole runs when there are enough runs per model "
                        "size, else points; the report says which and why)")
    p.add_argument("--jobs", type=int, default=None, metavar="N",
                   help="processes for the bootstrap (default: all cores)")
    p.add_argument("--launcher", default=None, choices=("basic", "joblib", "submitit_local", "submitit_slurm"),
                   help="how the runs are launched (default: the experiment's, joblib for the demo)")
    p.add_argument("--experiment", default="demo", help="the experiment preset to run (default demo)")
    p.add_argument("--strict", action="store_true",
                   help="exit with status 1 when a self-check fails (the output says which), as fit and extrapolate do")
    p.add_argument("--json", action="store_true",
                   help="print a JSON object at the end (the files written, the runs trained, reused and failed, "
                        "the law, the checks); the progress goes to stderr")
    return p


def run(args) -> int:
    import logging
    import sys

    from analysis.common.errors import InputError
    from scaling.app.demo import parse_grid, run_demo

    # The bootstrap reports progress through logging when stderr is not a terminal.
    log = logging.getLogger("analysis")
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("    %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
    own_grid = any(o.split("=", 1)[0].lstrip("+~") in ("model", "tokens") for o in args.overrides)
    if own_grid and args.grid:
        raise InputError("--grid and model= or tokens= overrides both choose the runs", field="--grid",
                         fix="give either --grid MODEL=TOKENS,... or model=/tokens= overrides")
    check_bootstrap(args.bootstrap)
    check_jobs(args.jobs)
    if args.lanes is not None and args.lanes < 1:
        raise InputError("must be 1 or more", field="--lanes", fix="e.g. --lanes 2")
    grid = parse_grid(args.grid) if args.grid else None
    from pathlib import Path

    from analysis.common.records import check_output
    from scaling.defaults import DEMO_SWEEP_SUBDIR

    # Before anything trains: otherwise the sweep's jobs fail one by one on the same path.
    check_output(args.out, "--out", directory=True)
    check_output(Path(args.out) / DEMO_SWEEP_SUBDIR, "--out", directory=True)
    # With --json, stdout holds only the JSON object: progress and results, the training
    # processes' included (they inherit file descriptor 1), go to stderr meanwhile.
    saved = _stdout_to_stderr() if args.json else None
    echo = (lambda line: print(line, file=sys.stderr, flush=True)) if args.json else (
        lambda line: print(line, flush=True))
    try:
        result = run_demo(args.out, grid=grid, overrides=args.overrides, experiment=args.experiment,
                          launcher=args.launcher, lanes=args.lanes, bootstrap=args.bootstrap, seed=args.seed,
                          resample=args.resample, n_jobs=args.jobs, law=args.law, echo=echo)
    finally:
        if saved is not None:
            _restore_stdout(saved)
    if args.json:
        print_json({**study_summary(result.study, result.written.values()), "out_dir": str(result.out_dir),
                    "sweep_dir": str(result.sweep_dir), "report_dir": str(result.report_dir),
                    "trained": result.trained, "reused": result.reused, "failed": result.failed,
                    "seconds": result.seconds})
    if result.failed:
        return 3
    return 1 if args.strict and any(c.status == "fail" for c in result.checks) else 0


def _stdout_to_stderr() -> int:
    """Point file descriptor 1 at stderr; returns a copy of the old one for :func:`_restore_stdout`."""
    import os
    import sys

    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    return saved


def _restore_stdout(saved: int) -> None:
    import os
    import sys

    sys.stdout.flush()
    os.dup2(saved, 1)
    os.close(saved)
