"""``scaling report``: one Markdown + HTML report of a study (fits, extrapolation, figures)."""
# Deferred imports: analysis.reporting.report (pandas) is imported inside run because `scaling
# --help` imports every subcommand's module to build its parser; analysis.common.records is light
# and sits beside it only to keep the command's imports together.
from __future__ import annotations

import argparse

from scaling.app.cli._common import add_command, print_json, study_summary
from scaling.app.cli.plot import add_study_options, study_from_args

EXAMPLE = "scaling report runs/sweep -o report/ --bootstrap 100"


def add_parser(sub) -> argparse.ArgumentParser:
    p = add_command(sub, "report", "Write a Markdown and HTML report: data, fits, extrapolation table, figures.",
                    EXAMPLE, run)
    add_study_options(p)
    p.add_argument("-o", "--output", required=True, metavar="DIR",
                   help="directory for report.md, report.html and the figures (created if missing)")
    p.add_argument("--title", default="Scaling study report", help="the report's title")
    p.add_argument("--strict", action="store_true", help="exit with status 1 when a self-check fails")
    p.add_argument("--json", action="store_true",
                   help="print a JSON object (the files written, the law, the target, the checks) instead of lines")
    p.set_defaults(backtest=True)
    return p


def run(args) -> int:
    from analysis.common.records import check_output, writing_output
    from analysis.reporting.report import build_report

    check_output(args.output, "--output", directory=True)
    study = study_from_args(args)
    with writing_output("--output", args.output):
        written = build_report(None, args.output, study=study, title=args.title)
    if args.json:
        print_json(study_summary(study, written.values()))
    else:
        for line in (study.checked.header_lines() if study.checked is not None else []):
            print(line)
        for name, path in written.items():
            print(f"wrote {path}")
    return 1 if args.strict and study.checked is not None and study.checked.failed else 0
