"""``scaling sweep EXPERIMENT [OVERRIDES...]``: run (or plan) an experiment preset as a Hydra multirun.

A thin front to ``python -m sweeps -m experiment=EXPERIMENT ...``: the same configs,
launchers and resubmission rules. ``--dry-run`` lists the runs and what a submission
would do with each, without training anything.
"""
# Deferred imports: sweeps (Hydra) is imported inside run and _dry_run because `scaling --help`
# imports every subcommand's module to build its parser; scaling.app.cli.runs and the analysis.common
# modules are light, deferred beside it for no gain, and may move up.
from __future__ import annotations

from scaling.app.cli._common import add_command, print_json


def add_parser(sub) -> None:
    p = add_command(
        sub, "sweep",
        help="Run an experiment preset (demo, isoflop, overtrain, llama_ladder) as a Hydra multirun; "
             "rerun the same command to resume it.",
        example="scaling sweep --out runs/small demo model=nano,micro   # --dry-run: plan only",
        func=run,
    )
    p.add_argument("experiment", metavar="EXPERIMENT", help="a preset in sweeps/conf/experiment")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="Hydra overrides (before or after the options); comma lists sweep, "
                        "e.g. model=nano,micro tokens=1e6,2e6")
    p.add_argument("--out", metavar="DIR",
                   help="sweep directory (default: the experiment's sweep.root: demo_out/runs for demo, "
                        "where `scaling demo` writes; runs/EXPERIMENT for the others)")
    p.add_argument("--launcher", default=None,
                   choices=("basic", "joblib", "submitit_local", "submitit_slurm"),
                   help="basic: one run after another; joblib: parallel processes here; "
                        "submitit_local / submitit_slurm: through submitit "
                        "(default: the experiment's choice, else basic)")
    p.add_argument("--dry-run", action="store_true",
                   help="list the runs, their size and cost, and what a submission would do; train nothing")
    p.add_argument("--no-estimate", action="store_true",
                   help="with --dry-run: skip the time estimate (it may time short probe runs on this device)")
    p.add_argument("--json", action="store_true", help="print the plan (with --dry-run) or the index as JSON")


def run(args) -> int:
    import sweeps
    from analysis.common.errors import InputError

    if args.experiment not in sweeps.experiments():
        raise InputError(f"unknown experiment {args.experiment!r}", field="EXPERIMENT",
                         fix="use one of " + ", ".join(sweeps.experiments()))
    overrides = list(args.overrides) + ([f"sweep.root={args.out}"] if args.out else [])
    if args.dry_run:
        return _dry_run(args, overrides)

    from scaling.app.cli.runs import run as show_runs

    df = sweeps.run_experiment(args.experiment, args.out, overrides=list(args.overrides), launcher=args.launcher)
    from sweeps.launch import sweep_root

    show_runs(_RunsArgs(str(sweep_root(args.experiment, overrides)), args.json))
    return 3 if df["status"].isin(["failed", "diverged"]).any() else 0


def _dry_run(args, overrides) -> int:
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from analysis.common.errors import ConfigError
    from analysis.common.text import format_table, sci, si
    from sweeps.estimate import duration, estimate_times, plan_warnings
    from sweeps.launch import plan

    try:
        jobs = plan(args.experiment, overrides)
    except (HydraException, OmegaConfBaseException) as e:
        raise ConfigError(str(e).strip().splitlines()[0], field="overrides",
                          fix="check the key against `python -m sweeps --cfg job`") from None
    invalid = [j for j in jobs if j.error]
    todo = [j for j in jobs if j.action != "skip" and not j.error]
    if todo:  # the real run's first check: a sweep directory it cannot write
        from analysis.common.records import check_output

        check_output(todo[0].run_dir.parent, "--out" if args.out else "sweep.root", directory=True)
    device = estimate_times(todo) if todo and not args.no_estimate else None
    rows = [j.to_dict() for j in jobs]
    if args.json:
        print_json({"experiment": args.experiment, "runs": rows, "device": device, "warnings": plan_warnings(jobs)})
        _refuse_if_all_invalid(jobs, invalid)
        return 0
    print(format_table(rows, ["run", "status", "action", "params", "tokens", "flops", "branches", "seconds",
                              "error"],
                       formats={"params": si, "tokens": si, "flops": sci, "seconds": duration,
                                "error": lambda x: x or ""},
                       headers={"flops": "FLOPs (detailed)", "seconds": "time"}))
    _refuse_if_all_invalid(jobs, invalid)
    total = sum(j.flops or 0.0 for j in todo)
    print(f"\n{len(jobs)} runs, {len(todo)} to train ({sci(total)} FLOPs, detailed count)"
          + (f", {len(invalid)} invalid (see the error column)" if invalid else "")
          + f"; sweep directory {jobs[0].run_dir.parent if jobs else '-'}")
    if todo and device is not None:
        sources = sorted({j.estimate_from for j in todo})
        lanes = min(max(j.lanes for j in todo), len(todo))
        wall = max(sum(j.seconds for j in todo) / lanes, max(j.seconds for j in todo))
        print(f"time: about {duration(wall)} of training"
              f"{f' with {lanes} runs side by side' if lanes > 1 else ''} on {device}, from "
              f"{' and '.join(_SOURCES[s] for s in sources)} (training steps only)")
    for w in plan_warnings(jobs):
        print(f"warning: {w}")
    return 0


#: How each estimate_from source reads in the dry run's time line.
_SOURCES = {"sweep": "runs of the same shape in the sweep directory", "probe": "a timed probe of each shape",
            "probe, scaled": "a probe scaled by FLOPs for the largest shapes"}


def _refuse_if_all_invalid(jobs, invalid) -> None:
    """A plan in which no run can train is an error (exit 2), not "N to train"."""
    from analysis.common.errors import ConfigError

    if not jobs or len(invalid) < len(jobs):
        return
    message, _, fix = str(invalid[0].error).partition(" (fix: ")
    raise ConfigError(f"all {len(jobs)} runs are invalid ({invalid[0].run_dir.name}: {message})",
                      field="overrides", fix=fix[:-1] if fix.endswith(")") else "correct the overrides")


class _RunsArgs:
    def __init__(self, path, as_json):
        self.sweep_dir, self.json = path, as_json
        self.csv = self.reindex = self.final = False
        self.status = None
