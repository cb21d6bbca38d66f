"""``scaling curve``: fit loss-curve laws to training runs and predict other schedules."""
from __future__ import annotations

import argparse

from scaling.cli._common import add_command, print_json

FIT_EXAMPLE = ("scaling curve fit runs/const/metrics.jsonl runs/cosine/metrics.jsonl --law multipower -o mpl.json\n"
               "  scaling curve fit cosine.csv --law annealing --warmup-steps 200 -o fit.json")
PREDICT_EXAMPLE = "scaling curve predict mpl.json runs/wsd/metrics.jsonl --json"

FIT_DESCRIPTION = """\
Fit a schedule-aware loss-curve law to one or more runs. A curve file is a CSV with
step, lr and loss columns (train_loss / val_loss are accepted), or a trainer run's
metrics.jsonl (or its directory; val_loss is used when logged, else train_loss).

Laws: annealing (Tissue et al. 2024: L = L0 + A S1^-alpha - C S2), multipower (Luo et
al. 2025), saturating_power (L(D) = E + B/D^beta on one run's stable phase). Logs may be
sparse: the learning rate is interpolated between logged rows, and a linear warmup from
zero up to the first row is assumed unless --warmup-steps says otherwise. Only rows
after warmup are fitted. Fit two schedules (e.g. constant and cosine) to predict others.
"""


def add_parser(sub) -> argparse.ArgumentParser:
    p = add_command(sub, "curve", "Fit loss-curve laws to runs and predict other learning-rate schedules.",
                    "scaling curve fit const.csv cosine.csv --law multipower -o mpl.json && "
                    "scaling curve predict mpl.json wsd.csv", _no_action)
    csub = p.add_subparsers(dest="curve_command", metavar="ACTION", parser_class=type(p))

    f = add_command(csub, "fit", "fit a loss-curve law to one or more curves", FIT_EXAMPLE, run_fit)
    f.description = FIT_DESCRIPTION
    f.add_argument("curves", nargs="+", metavar="CURVE", help="CSV (step, lr, loss) or a run's metrics.jsonl / directory")
    f.add_argument("--law", choices=("annealing", "multipower", "saturating_power"), default="multipower",
                   help="multipower (default), annealing, or saturating_power")
    f.add_argument("--warmup-steps", type=int, default=None, metavar="W",
                   help="warmup length; default: linear warmup from 0 up to the first logged row")
    f.add_argument("--min-step", type=int, default=None, metavar="S", help="also drop rows at or before step S")
    f.add_argument("--loss", default="auto", metavar="COLUMN",
                   help="loss column: auto (default: val_loss when logged, else train_loss or loss), "
                        "loss, val_loss or train_loss")
    f.add_argument("--lambda", dest="lam", type=float, default=0.999,
                   help="annealing-area momentum of Tissue et al. 2024 (default 0.999)")
    f.add_argument("--convention", choices=("printed", "reference"), default="printed",
                   help="multipower's loss-drop term: printed (Luo et al. 2025 eq. 6, from the end of warmup; "
                        "default) or reference (the authors' code: from step 1, the warmup ramp included)")
    f.add_argument("--bootstrap", type=int, default=0, metavar="N",
                   help="refits on a block bootstrap of the residuals, for intervals on the parameters and on every "
                        "prediction (default 0: none)")
    f.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    f.add_argument("-o", "--output", metavar="FIT.json", help="save the fit as JSON (for `scaling curve predict`)")
    f.add_argument("--json", action="store_true", help="print a JSON object instead of the report")

    q = add_command(csub, "predict", "predict the loss under a schedule from a saved curve fit", PREDICT_EXAMPLE,
                    run_predict)
    q.description = ("Predict the loss at every row of SCHEDULE (columns step and lr; a CSV or a run's "
                     "metrics.jsonl). When the file also has losses, print the mean and maximum relative error "
                     "over the rows after warmup.")
    q.add_argument("fit", metavar="FIT.json", help="a fit saved by `scaling curve fit -o`")
    q.add_argument("schedule", metavar="SCHEDULE", help="CSV with step and lr (and optionally loss), or metrics.jsonl")
    q.add_argument("--warmup-steps", type=int, default=None, metavar="W",
                   help="warmup length of the schedule; default: linear warmup up to the first row")
    q.add_argument("--loss", default="auto", metavar="COLUMN", help="loss column to compare with (default auto)")
    q.add_argument("--min-step", type=int, default=None, metavar="S",
                   help="compare with measured losses only after step S (e.g. the --min-step of the fit)")
    q.add_argument("-o", "--output", metavar="PRED.csv", help="write the predictions as CSV")
    q.add_argument("--json", action="store_true", help="print a JSON object instead of the table")
    return p


def _no_action(args) -> int:
    from analysis.errors import InputError

    raise InputError("no action given", field="scaling curve", fix="use `scaling curve fit` or `scaling curve predict`")


def run_fit(args) -> int:
    from analysis.curves import fit_curve, read_curve
    from analysis.records import check_output, writing_output

    if args.output:
        check_output(args.output, "--output")
    curves = {}
    for path in args.curves:
        c = read_curve(path, loss=args.loss)
        name = c.attrs.get("name", path)
        curves[name if name not in curves else path] = c
    fit = fit_curve(curves if len(curves) > 1 or args.law != "saturating_power" else next(iter(curves.values())),
                    law=args.law, warmup_steps=args.warmup_steps, min_step=args.min_step, lam=args.lam,
                    convention=args.convention,
                    **({"bootstrap": args.bootstrap, "seed": args.seed} if args.bootstrap else {}))
    if args.output:
        with writing_output("--output", args.output):
            fit.save(args.output)
    if args.json:
        out = fit.to_dict()
        out.pop("samples", None)
        print_json(out)
    else:
        print(fit.report())
        if args.output:
            print(f"\nsaved {args.output}")
    return 0


def run_predict(args) -> int:
    from analysis.curves import CurveFit, read_curve, relative_errors
    from analysis.records import atomic_write_text, check_output, writing_output

    if args.output:
        check_output(args.output, "--output")
    fit = CurveFit.load(args.fit)
    sched = read_curve(args.schedule, loss=args.loss) if _has_loss(args.schedule) else _read_schedule(args.schedule)
    pred = fit.predict(sched, warmup_steps=args.warmup_steps)
    errors = None
    if "loss" in pred.columns and pred["loss"].notna().any():
        after = pred[pred["step"] > max(pred.attrs["warmup_end"], args.min_step or 0)]
        errors = relative_errors(after["loss_pred"], after["loss"])
    if args.output:
        with writing_output("--output", args.output):
            atomic_write_text(args.output, pred.to_csv(index=False))
    if args.json:
        out = {"law": fit.law, "schedule": str(args.schedule), "warmup_end": int(pred.attrs["warmup_end"]),
               "assumed": pred.attrs["assumed"],
               "predictions": [{k: (None if v != v else v) for k, v in row.items()}
                               for row in pred.to_dict(orient="records")]}
        if errors is not None:
            out.update(errors)
        out["warnings"] = list(pred.attrs.get("warnings", []))
        print_json(out)
        return 0
    for w in pred.attrs.get("warnings", []):
        print(f"WARNING: {w}")
    from analysis.text import format_table

    shown = pred if len(pred) <= 40 else pred.iloc[:: max(1, len(pred) // 40)]
    print(format_table(shown.to_dict(orient="records"), formats={"step": lambda v: str(int(v)),
                                                                 "lr": lambda v: f"{v:.3g}"}))
    if len(shown) < len(pred):
        print(f"({len(shown)} of {len(pred)} rows shown; -o PRED.csv or --json for all)")
    print(f"\nschedule: {pred.attrs['assumed']}; warmup ends at step {pred.attrs['warmup_end']}")
    if errors is not None:
        where = f"after step {args.min_step}" if args.min_step else "after warmup"
        print(f"relative error over {errors['n']} rows {where}: mean {100 * errors['mean_rel_error']:.3f}%, "
              f"max {100 * errors['max_rel_error']:.3f}%")
    if args.output:
        print(f"wrote {args.output}")
    return 0


def _has_loss(path) -> bool:
    """Whether the schedule file carries losses (a metrics.jsonl always does)."""
    from pathlib import Path

    p = Path(path)
    if p.is_dir() or p.suffix in (".jsonl", ".ndjson"):
        return True
    try:
        with open(p, encoding="utf-8") as f:
            header = f.readline().strip().lower()
    except OSError:
        return True  # let read_curve report the missing file
    return any(k in header.replace(" ", "").split(",") for k in ("loss", "val_loss", "train_loss"))


def _read_schedule(path):
    import pandas as pd

    from analysis.errors import TableError

    try:
        df = pd.read_csv(path)
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as e:
        raise TableError(f"not a readable CSV ({str(e).splitlines()[0]})", field=str(path)) from None
    cols = {c.lower().strip(): c for c in df.columns}
    if "step" not in cols or "lr" not in cols:
        raise TableError("a schedule needs step and lr columns", field=str(path), fix="give step,lr rows")
    return pd.DataFrame({"step": pd.to_numeric(df[cols["step"]], errors="coerce"),
                         "lr": pd.to_numeric(df[cols["lr"]], errors="coerce")}).dropna()
