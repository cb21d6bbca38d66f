"""``scaling curve``: fit loss-curve laws to training runs and predict other schedules."""
# Deferred imports: analysis.fitting.curves (pandas) is imported inside run_fit, run_predict and
# their helpers because `scaling --help` imports every subcommand's module to build its parser;
# analysis.fitting.result and the analysis.common modules are light and sit beside it only to
# keep each command's imports together.
from __future__ import annotations

import argparse

from scaling.app.cli._common import add_command, print_json

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
    f.add_argument("--law", choices=("auto", "annealing", "multipower", "saturating_power"), default="auto",
                   help="auto (default: annealing for one curve, whose 4 parameters one schedule determines; "
                        "multipower, 7 parameters, for two or more), annealing, multipower, or saturating_power")
    f.add_argument("--warmup-steps", type=int, default=None, metavar="W",
                   help="warmup length; default: linear warmup from 0 up to the first logged row")
    f.add_argument("--min-step", type=int, default=None, metavar="S", help="also drop rows at or before step S")
    f.add_argument("--loss", default="auto", metavar="COLUMN",
                   help="loss column: auto (default: val_loss when logged at least 3 times per parameter of the "
                        "law, else train_loss or loss), loss, val_loss or train_loss")
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
    from analysis.common.errors import InputError

    raise InputError("no action given", field="scaling curve", fix="use `scaling curve fit` or `scaling curve predict`")


#: Rows of val_loss per parameter below which ``--loss auto`` fits the (noisier, far more
#: often logged) training loss instead: a handful of evaluations cannot pin a curve law.
ROWS_PER_PARAM = 3


def run_fit(args) -> int:
    from analysis.fitting.curves import SCHEDULE_LAWS, fit_curve
    from analysis.common.records import check_output, writing_output

    if args.output:
        check_output(args.output, "--output")
    notes = []
    law = args.law
    if law == "auto":
        law = "annealing" if len(args.curves) == 1 else "multipower"
        notes.append(f"law: {law} (--law auto: " + ("one curve determines annealing's 4 parameters, not multipower's 7"
                                                     if law == "annealing" else "two or more curves: multipower")
                     + ")")
    curves = _read_curves(args.curves, args.loss)
    k = len(SCHEDULE_LAWS[law].params) if law in SCHEDULE_LAWS else 3
    n_val = sum(int(c["loss"].notna().sum()) for c in curves.values() if c.attrs.get("loss_column") == "val_loss")
    if args.loss == "auto" and 0 < n_val < ROWS_PER_PARAM * k:
        train = _read_curves(args.curves, "train_loss", quiet=True)
        if train is not None:
            n_train = sum(int(c["loss"].notna().sum()) for c in train.values())
            notes.append(f"loss: train_loss ({n_train} rows), not val_loss: its {n_val} rows are too few for the "
                         f"{k} parameters of {law} (--loss auto wants {ROWS_PER_PARAM} per parameter)")
            curves = train
    fit = fit_curve(curves if len(curves) > 1 or law != "saturating_power" else next(iter(curves.values())),
                    law=law, warmup_steps=args.warmup_steps, min_step=args.min_step, lam=args.lam,
                    convention=args.convention,
                    **({"bootstrap": args.bootstrap, "seed": args.seed} if args.bootstrap else {}))
    models = {name: m for name, m in ((n, _model_of(p)) for n, p in zip(curves, args.curves)) if m}
    if models and hasattr(fit, "meta"):
        fit.meta["models"] = models  # read by `curve predict`, which warns on another model's run
    noise = _noise_note(curves, fit)
    if noise:
        notes.append(noise)
    if args.output:
        with writing_output("--output", args.output):
            fit.save(args.output)
    if args.json:
        from analysis.fitting.result import law_json

        out = fit.to_dict()
        out.pop("samples", None)
        out["law"] = law_json(fit)
        out.pop("params", None)  # inside "law", the one shape of a law in --json (docs/json.md)
        out["cli_notes"] = notes
        print_json(out)
    else:
        print(fit.report())
        for note in notes:
            print(f"note: {note}")
        if args.output:
            print(f"\nsaved {args.output}")
    return 0


def _read_curves(paths, loss: str, quiet: bool = False):
    """name -> curve for each path; with ``quiet``, None when some path lacks that column."""
    from analysis.fitting.curves import read_curve
    from analysis.common.errors import TableError

    curves = {}
    for path in paths:
        try:
            c = read_curve(path, loss=loss)
        except TableError:
            if quiet:
                return None
            raise
        name = c.attrs.get("name", path)
        curves[name if name not in curves else path] = c
    return curves


def _model_of(path) -> dict | None:
    """The model a curve comes from, from the run record beside it (None for a bare CSV)."""
    from pathlib import Path

    from analysis.common.errors import RecordError
    from analysis.common.records import read_summary

    p = Path(path)
    run_dir = p if p.is_dir() else p.parent if p.name == "metrics.jsonl" else None
    if run_dir is None or not (run_dir / "summary.json").is_file():
        return None
    try:
        s = read_summary(run_dir)
    except RecordError:
        return None
    preset = s["model"].get("preset") if isinstance(s.get("model"), dict) else None
    return {"params": float(s["params"]), "name": preset}


def _noise_note(curves, fit) -> str | None:
    """How the fit's error compares with the loss's own row-to-row scatter (its scatter
    around a running median): an error at that level is noise the law cannot remove."""
    import numpy as np

    errs = [c.get("mean_rel_error") for c in getattr(fit, "curves", []) or [] if isinstance(c, dict)]
    errs = [e for e in errs if e is not None]
    scatter, window = [], 21
    for c in curves.values():
        loss = c["loss"].dropna()
        if len(loss) >= 30:
            window = 21 if len(loss) >= 100 else 11
            med = loss.rolling(window, center=True).median()
            scatter.append(float(np.nanmean(np.abs(loss / med - 1))))
    if not errs or not scatter:
        return None
    e, s = float(np.mean(errs)), float(np.mean(scatter))
    verdict = ("at the noise level: a smoother curve (val_loss logged more often, or a larger batch) is what "
               "would lower it") if e < 1.5 * s else "well above the noise: the law misses the curve's shape"
    return (f"mean error {100 * e:.2f}% against the loss's own row-to-row scatter of {100 * s:.2f}% "
            f"(around a {window}-row running median): {verdict}")


def run_predict(args) -> int:
    from analysis.fitting.curves import CurveFit, read_curve, relative_errors
    from analysis.common.errors import RecordError
    from analysis.common.records import atomic_write_text, check_output, writing_output

    if args.output:
        check_output(args.output, "--output")
    try:
        fit = CurveFit.load(args.fit)
    except RecordError as e:
        if e.fix:
            raise
        raise RecordError(e.message, field=f"FIT.json ({args.fit})",
                          fix=f"the first argument is a fit saved by `scaling curve fit`: run `scaling curve fit "
                              f"{args.fit} -o fit.json`, then `scaling curve predict fit.json {args.schedule}`") from None
    sched = read_curve(args.schedule, loss=args.loss) if _has_loss(args.schedule) else _read_schedule(args.schedule)
    pred = fit.predict(sched, warmup_steps=args.warmup_steps)
    other = _other_model(fit, args.schedule)
    if other:
        pred.attrs.setdefault("warnings", []).append(other)
    errors = None
    if "loss" in pred.columns and pred["loss"].notna().any():
        after = pred[pred["step"] > max(pred.attrs["warmup_end"], args.min_step or 0)]
        errors = relative_errors(after["loss_pred"], after["loss"])
    if args.output:
        with writing_output("--output", args.output):
            atomic_write_text(args.output, pred.to_csv(index=False))
    if args.json:
        from analysis.fitting.result import law_json

        out = {"law": law_json(fit), "schedule": str(args.schedule), "warmup_end": int(pred.attrs["warmup_end"]),
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
    from analysis.common.text import format_table

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


def _other_model(fit, schedule) -> str | None:
    """A warning when the fit's runs are of another model size than ``schedule``'s run: a
    curve law's parameters (its floor above all) belong to one model."""
    from analysis.common.text import model_label

    fitted = [m for m in (getattr(fit, "meta", {}) or {}).get("models", {}).values() if m]
    mine = _model_of(schedule)
    if not fitted or mine is None:
        return None
    if any(abs(m["params"] / mine["params"] - 1) < 1e-6 for m in fitted):
        return None
    names = ", ".join(dict.fromkeys(model_label(m["params"], m.get("name")) for m in fitted))
    return (f"this fit is of {names}, and {schedule} is a run of {model_label(mine['params'], mine.get('name'))}: "
            "a loss-curve law's parameters belong to one model size (fit this model's own runs)")


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

    from analysis.common.errors import TableError

    try:
        df = pd.read_csv(path)
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as e:
        raise TableError(f"not a readable CSV ({str(e).splitlines()[0]})", field=str(path)) from None
    cols = {c.lower().strip(): c for c in df.columns}
    if "step" not in cols or "lr" not in cols:
        raise TableError("a schedule needs step and lr columns", field=str(path), fix="give step,lr rows")
    return pd.DataFrame({"step": pd.to_numeric(df[cols["step"]], errors="coerce"),
                         "lr": pd.to_numeric(df[cols["lr"]], errors="coerce")}).dropna()
