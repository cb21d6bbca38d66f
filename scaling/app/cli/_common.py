"""Small helpers shared by the subcommands: output modes and examples in --help."""
# Deferred imports: analysis.selection.size_cuts loads pandas and is imported inside
# sizes_from_args because every subcommand, and so `scaling --help`, imports this module; the
# deferred analysis.common.errors imports gain nothing (analysis.common.records, imported at the
# top, loads it) and may move up.
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from analysis.common.records import _jsonable

#: Most bootstrap refits a command accepts. Every refit is a full fit and the resamples'
#: indices are drawn up front, so a typo such as 100000000 would otherwise run for days
#: and grow in memory until killed; percentile intervals settle long before this.
MAX_BOOTSTRAP = 100_000


def add_command(sub, name: str, help: str, example: str, func) -> argparse.ArgumentParser:
    """Register a subcommand whose --help ends with a runnable example."""
    p = sub.add_parser(name, help=help, description=help,
                       epilog=f"example:\n  {example}",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.set_defaults(func=func)
    return p


def add_table_options(p: argparse.ArgumentParser) -> None:
    """The options of every command that reads a points table and fits it (fit, extrapolate,
    plot): the interval level and how the table is read."""
    p.add_argument("--level", type=float, default=0.90, help="interval level (default 0.90)")
    p.add_argument("--allow-repeats", action="store_true",
                   help="rows with the same params and tokens are separate seeds (else they are refused)")
    p.add_argument("--columns", help="map table columns, e.g. 'params=Model Size,tokens=Training Tokens'")
    p.add_argument("--on-bad-rows", choices=("raise", "omit"), default="raise", dest="policy",
                   help="refuse (default) or drop rows with missing or non-positive values, and runs whose "
                        "record cannot be read")


def add_sizes_option(p: argparse.ArgumentParser) -> None:
    """``--sizes``: which model sizes a law is fitted to (analysis.selection.size_cuts)."""
    p.add_argument("--sizes", default=None, metavar="WHICH",
                   help="sizes to fit the law to: all (the default), a fraction of the largest sizes such as "
                        "1/2, or auto (the earlier rule: three hold-out splits decide whether the largest 2/3 or "
                        "1/2 of the sizes predict the largest runs better, and may stack laws)")


#: what ``--law auto`` does, in every command's help (analysis.selection.policy, docs/analysis.md)
AUTO_LAW_HELP = ("among the laws with a loss floor, the one that best predicts larger sizes from smaller ones, "
                 "ties going to fewer parameters; the output says which and why")


def add_min_tpp_option(p: argparse.ArgumentParser) -> None:
    """``--min-tpp``: runs shorter than this many tokens per parameter are not fitted."""
    p.add_argument("--min-tpp", type=float, default=None, metavar="M",
                   help="set aside runs trained on fewer than M tokens per parameter before fitting (default: the "
                        "policy's 20, chosen leaving one public source out, docs/analysis.md; it comes down to the "
                        "largest size's longest run when that is shorter); 0 fits every run")


def sizes_from_args(args):
    """``--sizes`` parsed (None: the default for the law)."""
    from analysis.selection.size_cuts import parse_sizes

    v = getattr(args, "sizes", None)
    return None if v is None else parse_sizes(v)


def print_json(obj: Any, file=None) -> None:
    print(json.dumps(_jsonable(obj), indent=2), file=file or sys.stdout)


def check_bootstrap(n: int, field: str = "--bootstrap") -> int:
    """``n`` when it is a usable number of bootstrap refits, else a one-line InputError."""
    from analysis.common.errors import InputError

    if n < 0:
        raise InputError("must be 0 or more", field=field, fix="give a number of refits such as 1000")
    if n > MAX_BOOTSTRAP:
        raise InputError(f"{n} refits is more than the {MAX_BOOTSTRAP} allowed (each is a full fit)", field=field,
                         fix="use 1000 to 10000: percentile intervals change little beyond that")
    return n


def check_jobs(n) -> None:
    """``--jobs``: None (all cores) or a positive number of processes, else a one-line InputError
    (joblib reads 0 as no meaning and negative numbers as "all cores but some")."""
    from analysis.common.errors import InputError

    if n is not None and n < 1:
        raise InputError(f"must be 1 or more, got {n}", field="--jobs",
                         fix="e.g. --jobs 2, or leave it out to use all cores")


def study_summary(study, written) -> dict:
    """``plot --json`` and ``report --json``: the files written and what a script needs to
    know about the study behind them (the extrapolation itself: ``scaling extrapolate --json``)."""
    r = study.result.to_dict()
    out = {"written": [str(p) for p in written], "source": study.source or None, "law": r["law"],
           "n_points": None if study.points is None else int(len(study.points)), "target": r["target"],
           "models": [m["name"] for m in r["models"]],
           "warnings": list(dict.fromkeys([*study.fit.warnings, *r["warnings"]])), "notes": list(study.notes)}
    if study.checked is not None:
        d = study.checked.to_dict()
        out["choice"], out["checks"] = d["choice"], d["checks"]
        out["failed_checks"] = sum(c["status"] == "fail" for c in d["checks"])
    return out


#: Environment variable naming modules that register laws of their own (``os.pathsep``
#: separated: a ``.py`` file or an importable module name each), loaded before any
#: command reads its ``--law``: a law registered with :func:`analysis.laws.register_law`
#: in one file is usable from every command with no edit to the package.
LAW_MODULES_ENV = "SCALING_LAW_MODULES"


def load_user_laws(environ=None) -> list[str]:
    """Import the modules :data:`LAW_MODULES_ENV` names (each once); the names imported."""
    import importlib
    import importlib.util
    import os
    from pathlib import Path

    from analysis.common.errors import InputError

    env = os.environ if environ is None else environ
    loaded = []
    for item in [s.strip() for s in env.get(LAW_MODULES_ENV, "").split(os.pathsep) if s.strip()]:
        try:
            if item.endswith(".py"):
                path = Path(item).expanduser().resolve()
                if not path.is_file():
                    raise InputError(f"{item}: no such file", field=LAW_MODULES_ENV,
                                     fix="give the path of a Python file that calls analysis.laws.register_law")
                name = f"scaling_user_laws_{path.stem}_{abs(hash(str(path))) % 10 ** 8}"
                if name not in sys.modules:
                    spec = importlib.util.spec_from_file_location(name, path)
                    module = importlib.util.module_from_spec(spec)
                    sys.modules[name] = module
                    try:
                        spec.loader.exec_module(module)
                    except BaseException:
                        del sys.modules[name]
                        raise
            else:
                importlib.import_module(item)
        except InputError:
            raise
        except Exception as e:  # the user's module: its error, in one line
            first = (str(e).strip().splitlines() or [""])[0]
            raise InputError(f"{item}: {type(e).__name__}: {first}", field=LAW_MODULES_ENV,
                             fix="fix that module, or remove it from the variable") from None
        loaded.append(item)
    return loaded
