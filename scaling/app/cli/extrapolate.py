"""``scaling extrapolate``: what would a smaller model do with the largest model's compute?"""
# Deferred imports: the analysis modules (pandas) are imported inside run and its helpers because
# `scaling --help` imports every subcommand's module to build its parser; analysis.common.errors
# is light and sits beside them only to keep each command's imports together.
from __future__ import annotations

import argparse

from scaling.app.cli._common import (AUTO_LAW_HELP, add_command, add_min_tpp_option, add_sizes_option, add_table_options,
                                 check_bootstrap, check_jobs,
                                 print_json, sizes_from_args)

EXAMPLE = ("scaling extrapolate --published llama\n"
           "  scaling extrapolate --published llama --unique-tokens 1.4e12\n"
           "  scaling extrapolate --law hoffmann2022 --models 7e9,13e9 --target 65e9:1.4e12 --json\n"
           "  scaling extrapolate runs/sweep --law chinchilla --bootstrap 200 --target largest")

DESCRIPTION = """\
For each model smaller than the target: the loss it reaches with the target's training
compute, the tokens and FLOPs it needs to match the target's loss (or "never" when its
own floor E + A/N^alpha lies above that loss), and the served tokens after which it is
the cheaper model once inference is counted at 2N FLOPs per token (Sardana and Frankle
2023). FLOPs are 6ND unless --flops detailed. With --bootstrap, every answer gets a
percentile interval; with measured loss curves, each model's own curve answers too.
With --unique-tokens U only U unique tokens exist, so runs repeat them (Muennighoff et al.
2023): each answer counts epochs over U, and "never" means the repetition-limited floor
lies above the target's loss.
"""


def add_parser(sub) -> argparse.ArgumentParser:
    p = add_command(sub, "extrapolate", "Compute-matched extrapolation from a sweep or a published law.",
                    EXAMPLE, run)
    p.description = DESCRIPTION
    p.add_argument("path", nargs="?", help="sweep or run directory, CSV/Parquet table of points, or a saved fit (.json)")
    p.add_argument("--law", default=None,
                   help=f"law to fit on PATH (auto [default: {AUTO_LAW_HELP}], chinchilla, gadre2024, "
                        "kaplan_nd) or a published law "
                        "(hoffmann2022, besiroglu2024, kaplan2020); with --published, a comma list of published laws")
    p.add_argument("--published", metavar="FAMILY", help="answer for a published model family from built-in facts (llama)")
    p.add_argument("--models", help="sizes to ask about, PARAMS or PARAMS:TOKENS, comma separated (default: the data's)")
    p.add_argument("--target", default="largest",
                   help="largest (default: the largest model at its largest budget), a loss such as 2.05, "
                        "PARAMS:TOKENS such as 65e9:1.4e12, or a model of the data by name; a comma list asks "
                        "about each (the table is fitted once; --json then prints {\"targets\": [...]})")
    p.add_argument("--bootstrap", type=int, default=0, metavar="N", help="bootstrap refits for intervals (default 0)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.add_argument("--jobs", type=int, default=None, help="worker processes for the bootstrap (default: all cores)")
    p.add_argument("--flops", choices=("6nd", "detailed"), default="6nd",
                   help="FLOP convention: 6ND (default) or the data's detailed count per token")
    p.add_argument("--no-curves", dest="curves", action="store_false",
                   help="skip the per-run loss-curve answers")
    p.add_argument("--unique-tokens", type=float, default=None, metavar="U", dest="unique_tokens",
                   help="answer under a limit of U unique tokens, repeated for as many epochs as needed "
                        "(Muennighoff et al. 2023's data-constrained law)")
    add_sizes_option(p)
    add_min_tpp_option(p)
    p.add_argument("--strict", action="store_true", help="exit with status 1 when a self-check fails")
    add_table_options(p)
    p.add_argument("--quiet", action="store_true",
                   help="no progress on stderr (the bootstrap's), so stderr holds only warnings and errors")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print a JSON object instead of the table")
    out.add_argument("--csv", action="store_true", help="print one CSV row per model instead of the table")
    return p


def _saved_fit(path: str) -> bool:
    import json
    from pathlib import Path

    p = Path(path)
    if p.suffix.lower() != ".json" or not p.is_file():
        return False
    try:
        head = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False
    return isinstance(head, dict) and head.get("kind") == "LawFit"


def run(args) -> int:
    from analysis.common.errors import InputError

    if args.published:
        return _run_published(args)
    from analysis.extrapolation.study import run_studies
    from analysis.data.published import PUBLISHED_LAWS

    law, source = args.law, args.path
    if source is not None and _saved_fit(source):
        if law is not None:
            raise InputError("a saved fit already names its law", field="--law", fix="drop --law, or pass the data instead")
        law, source = source, None
    if law is None:
        if source is None:
            raise InputError("nothing to extrapolate from", field="path",
                             fix="give a sweep directory or table, --law hoffmann2022 with --models, "
                                 "or --published llama")
        law = "auto"
    _check_law_name(law)
    if source is None and args.models is None:
        raise InputError("no models to ask about", field="--models",
                         fix="list sizes, e.g. --models 7e9,13e9 --target 65e9:1.4e12")
    if args.bootstrap and (source is None or law in PUBLISHED_LAWS):
        raise InputError("--bootstrap needs a law fitted on data", field="--bootstrap",
                         fix="give PATH and a law to fit (chinchilla, gadre2024, kaplan_nd), or drop --bootstrap")
    check_bootstrap(args.bootstrap)
    check_jobs(args.jobs)
    targets = [t.strip() for t in str(args.target).split(",")]
    if any(not t for t in targets):
        raise InputError(f"empty target in {args.target!r}", field="--target",
                         fix="separate targets by single commas, e.g. --target 1e9:2e10,3e9:6e10")
    studies = run_studies(source, targets=targets, law=law, models=args.models, bootstrap=args.bootstrap,
                          seed=args.seed, n_jobs=args.jobs, level=args.level, flops=args.flops, curves=args.curves,
                          columns=args.columns, policy=args.policy, allow_repeats=args.allow_repeats,
                          unique_tokens=args.unique_tokens, sizes=sizes_from_args(args), min_tpp=args.min_tpp,
                          progress=False if args.quiet else None)
    if args.json:
        objs = [_study_json(s) for s in studies]
        print_json(objs[0] if len(objs) == 1 else {"targets": objs})
    elif args.csv:
        import pandas as pd

        frames = [s.result.to_frame() for s in studies]
        if len(frames) > 1:
            for t, f in zip(targets, frames):
                f.insert(0, "target", t)
        print(pd.concat(frames, ignore_index=True).to_csv(index=False), end="")
    else:
        for i, (t, study) in enumerate(zip(targets, studies)):
            if len(studies) > 1:
                print(("\n" if i else "") + f"=== target {i + 1} of {len(studies)}: {t} ===\n")
            head = study.checked.header_lines() if study.checked is not None and (i == 0 or len(studies) == 1) else []
            if head:
                print("\n".join(head) + "\n")
            print(study.result.table())
            for note in study.notes:
                print(f"note: {note}")
    failed = any(s.checked is not None and s.checked.failed for s in studies)
    return 1 if args.strict and failed else 0


def _study_json(study) -> dict:
    """One target's answers in the documented shape (docs/json.md, ``extrapolate``)."""
    d = study.result.to_dict()
    d["notes"] = study.notes
    if study.checked is not None:
        d.update(study.checked.to_dict())
    return d


def _check_law_name(law: str) -> None:
    """An InputError naming the known laws when ``law`` is none of them (nor a saved fit),
    before the data are read: otherwise a typo reads as a law to fit with no data given."""
    import difflib

    from analysis.common.errors import InputError
    from analysis.laws import LAWS
    from analysis.laws.mix import is_mix
    from analysis.data.published import PUBLISHED_LAWS

    if law == "auto" or law in PUBLISHED_LAWS or law in LAWS or law.endswith(".json") or is_mix(law):
        return
    published = list(PUBLISHED_LAWS)
    to_fit = ["auto", *LAWS]
    near = difflib.get_close_matches(law, published + to_fit, n=1, cutoff=0.6)
    hint = f"did you mean {near[0]}? " if near else ""
    raise InputError(f"unknown law {law!r}", field="--law",
                     fix=f"{hint}published laws: {', '.join(published)}; laws to fit on data: {', '.join(to_fit)}; "
                         "or a saved fit (.json)")


def _run_published(args) -> int:
    from analysis.common.errors import InputError
    from analysis.extrapolation.study import published_case

    for flag in ("path", "models", "columns"):
        if getattr(args, flag):
            raise InputError("cannot be combined with --published", field=f"--{flag}" if flag != "path" else "path",
                             fix="drop it, or drop --published")
    if args.bootstrap:
        raise InputError("published laws have no bootstrap draws", field="--bootstrap", fix="drop --bootstrap")
    if args.target != "largest":
        raise InputError("the published case's target is its largest model", field="--target",
                         fix="drop --target, or use --law NAME --models ... --target N:D")
    laws = tuple(x.strip() for x in args.law.split(",")) if args.law else ("hoffmann2022", "besiroglu2024")
    case = published_case(args.published, laws=laws, unique_tokens=args.unique_tokens)
    if args.json:
        print_json(case.to_dict())
    elif args.csv:
        print(case.to_frame().to_csv(index=False), end="")
    else:
        print(case.table())
    return 0
