"""Loss-curve laws: one run's loss as a function of its step and learning-rate schedule.

Three laws, each fitted with a Huber loss (delta = 1e-3) on log-loss residuals:

``saturating_power``
    L(D) = E + B / D^beta over the stable phase of a constant-LR or WSD run (the data
    term of Hoffmann et al. 2022 eq. 2 at fixed N). Returns a
    :class:`~analysis.fitting.result.LawFit` that predicts L(D).
``annealing``
    Tissue et al. 2024, "Scaling Law with Learning Rate Annealing", eq. (1):
    L(s) = L0 + A S1^-alpha - C S2, with S1 = sum_{i<=s} eta_i the forward area and
    S2 = sum_{i<=s} m_i the annealing area, m_i = lambda m_{i-1} + (eta_{i-1} - eta_i)
    (momentum form, decay factor lambda = 0.999 as in the paper).
``multipower``
    Luo et al. 2025, "A Multi-Power Law for Loss Curve Prediction Across Learning Rate
    Schedules", eq. (6): L(t) = L0 + A (S1(t) + S_W)^-alpha - LD(t), with
    LD(t) = B sum_{k=1}^{t} (eta_{k-1} - eta_k) G(eta_k^-gamma S_k(t)),
    G(x) = 1 - (C x + 1)^-beta, S_k(t) = sum_{tau=k}^{t} eta_tau, S_W the warmup area.

Logs are sparse (a row every k steps, often only after warmup), but both schedule laws
need the learning rate at every step. :func:`schedule_from_rows` rebuilds it: linear
interpolation between logged rows, and a linear warmup from zero up to the first row
(or over ``warmup_steps``). Steps count from 1; eta_0 in the sums is the peak learning
rate at the end of warmup, so the warmup itself adds to S1 (and S_W) but not to the
annealing terms. Fits use only rows after warmup (where the laws are stated) and list
what they dropped.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from ..common.errors import FitError, InputError, RecordError, TableError
from ..common.records import atomic_write_json, iter_jsonl
from ..common.schedules import Schedule, schedule_from_rows
from ..common.text import format_table
from ..laws import get_law
from ..laws.schedule import (CONVENTIONS, LUO2025, MULTIPOWER, SCHEDULE_LAWS, TISSUE_LAMBDA, ScheduleLaw,
                             annealing_areas, luo_multipower, tissue_annealing)
from .bootstrap import parametric_refits
from .optimize import HUBER_DELTA, huber, solve_form
from .result import LawFit, _read_json, bound_warnings, warnings_block
from .uncertainty import asymptotic_ci, fit_warnings

__all__ = ["CURVE_LAWS", "published_curve", "CONVENTIONS", "read_curve", "fit_curve", "CurveFit", "Schedule", "schedule_from_rows",
           "annealing_areas", "tissue_annealing", "luo_multipower", "relative_errors"]

#: How far past its last fitted step a curve fit may predict before it warns.
CURVE_EXTRAPOLATION = 2.0
#: Loss-curve laws: the per-run saturating power law in D, and the schedule laws.
CURVE_LAWS = ("saturating_power",) + tuple(SCHEDULE_LAWS)


# ---------------------------------------------------------------------- reading curves

def read_curve(path, loss: str = "auto") -> pd.DataFrame:
    """A loss curve as a DataFrame with ``step``, ``lr``, ``loss`` (NaN where the row has
    no loss), and ``tokens`` when known.

    ``path`` is a CSV (columns step, lr and loss; train_loss / val_loss are accepted) or
    a trainer run: its ``metrics.jsonl`` or the run directory. ``loss`` picks the column:
    ``"auto"`` takes val_loss when 3 or more rows have it, else train_loss (or loss).
    Every row keeps its learning rate, so the schedule is known even where the loss was
    not measured.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "metrics.jsonl"
    if not path.exists():
        raise InputError("no such curve file", field=str(path),
                         fix="pass a CSV with step, lr, loss columns or a run's metrics.jsonl")
    if path.suffix in (".jsonl", ".ndjson"):

        df = pd.DataFrame(list(iter_jsonl(path)))
    else:
        try:
            df = pd.read_csv(path)
        except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as e:
            raise TableError(f"not a readable CSV ({str(e).splitlines()[0]})", field=str(path)) from None
    df = _canonical_curve(df, loss, str(path))
    df.attrs["name"] = path.parent.name if path.name == "metrics.jsonl" else path.stem
    return df


def _canonical_curve(df: pd.DataFrame, loss: str, origin: str) -> pd.DataFrame:
    cols = {c.lower().strip(): c for c in df.columns}
    if "step" not in cols:
        raise TableError("no step column", field=origin, fix="a curve needs step, lr and loss columns")
    if loss == "auto":
        choices = [c for c in ("loss", "val_loss", "train_loss") if c in cols]
        if "val_loss" in cols and df[cols["val_loss"]].notna().sum() >= 3 and "loss" not in cols:
            loss = "val_loss"
        elif choices:
            loss = choices[0]
        else:
            raise TableError("no loss column", field=origin, fix="name it loss, val_loss or train_loss")
    if loss not in cols:
        raise TableError(f"no {loss} column", field=origin, fix="choose one of: " + ", ".join(df.columns))
    out = pd.DataFrame({"step": pd.to_numeric(df[cols["step"]], errors="coerce"),
                        "loss": pd.to_numeric(df[cols[loss]], errors="coerce")})
    if "lr" in cols:
        out["lr"] = pd.to_numeric(df[cols["lr"]], errors="coerce")
    for extra in ("tokens", "params"):
        if extra in cols:
            out[extra] = pd.to_numeric(df[cols[extra]], errors="coerce")
    if out["step"].isna().any():
        raise TableError("step has missing or non-numeric values", field=origin, fix="fill in every row's step")
    out = out.sort_values("step").drop_duplicates("step", keep="last").reset_index(drop=True)
    out.attrs["loss_column"] = loss
    out.attrs["source"] = origin
    return out


def _as_curves(curves) -> list[tuple[str, pd.DataFrame]]:
    """Named curve tables from a DataFrame, a path, or a list / mapping of them."""
    if isinstance(curves, pd.DataFrame):
        return [(curves.attrs.get("name", "curve"), _canonical_curve(curves, "auto", curves.attrs.get("name", "curve")))]
    if isinstance(curves, (str, Path)):
        c = read_curve(curves)
        return [(c.attrs["name"], c)]
    if isinstance(curves, Mapping):
        return [(str(k), v if isinstance(v, pd.DataFrame) else read_curve(v)) for k, v in curves.items()]
    out = []
    for i, c in enumerate(curves):
        (name, df), = _as_curves(c)
        out.append((name if name != "curve" else f"curve{i + 1}", df))
    if not out:
        raise InputError("no curves given", field="curves", fix="pass one or more curves")
    return out


# ---------------------------------------------------------------------- schedules

def _curve_schedule(df: pd.DataFrame, warmup_steps, total_steps=None) -> Schedule:
    if "lr" not in df.columns or df["lr"].notna().sum() == 0:
        raise TableError("the curve has no learning rates", field="lr",
                         fix="schedule laws need an lr column (step, lr, loss)")
    return schedule_from_rows(df["step"], df["lr"], warmup_steps, total_steps)


# ---------------------------------------------------------------------- fitting

@dataclass
class _Obs:
    name: str
    schedule: Schedule
    steps: np.ndarray
    loss: np.ndarray
    n_rows: int
    notes: list


def _observations(name, df, warmup_steps, min_step) -> _Obs:
    sched = _curve_schedule(df, warmup_steps)
    rows = df[np.isfinite(df["loss"]) & (df["loss"] > 0)]
    n_rows = len(rows)
    cut = max(sched.warmup_end, int(min_step or 0))
    used = rows[rows["step"] > cut]
    notes = []
    if len(used) < n_rows:
        why = f"at or before the end of warmup (step {sched.warmup_end})" if cut == sched.warmup_end \
            else f"at or before min_step {cut}"
        notes.append(f"{name}: used {len(used)} of {n_rows} loss rows; dropped {n_rows - len(used)} {why}, "
                     "where the law does not apply")
    notes.append(f"{name}: learning rate between logged rows interpolated linearly; {sched.assumed}")
    return _Obs(name, sched, used["step"].to_numpy(int), used["loss"].to_numpy(float), n_rows, notes)


class _CurveModel:
    """Prediction of one schedule law on several curves, with parameters in a fixed order."""

    def __init__(self, law: ScheduleLaw, obs: list[_Obs], lam: float, max_blocks: int | None,
                 convention: str = "printed"):
        self.law, self.obs, self.lam = law, obs, lam
        self.parts = [law.prepare(o.schedule, o.steps, lam, max_blocks, convention) for o in obs]
        self.y = np.concatenate([o.loss for o in obs])

    def predict(self, p):
        return np.concatenate([self.law.predict(p, part) for part in self.parts])

    def jacobian(self, p):
        """d prediction / d parameters, rows like :meth:`predict`."""
        return np.vstack([self.law.jacobian(p, part) for part in self.parts])

    def basis(self, nonlinear):
        """Columns multiplying the law's linear parameters for fixed nonlinear ones."""
        return self.law.basis(nonlinear, self.parts)


def _start_points(model: _CurveModel, n_keep: int = 2):
    """Variable projection: on the law's grid of nonlinear parameters, the linear ones by
    non-negative least squares; the best few become starts."""
    from scipy.optimize import nnls

    scored = []
    for nl in model.law.start_grid:
        with np.errstate(all="ignore"):
            M = model.basis(nl)
        if not np.all(np.isfinite(M)):
            continue
        lin, _ = nnls(M, model.y)
        p = model.law.assemble(lin, nl)
        pred = model.predict(p)
        if np.any(pred <= 0):
            continue
        scored.append((float(huber(np.log(pred) - np.log(model.y)).sum()), p))
    scored.sort(key=lambda s: s[0])
    return [p for _, p in scored[:n_keep]]


def _robust_fit(model: _CurveModel, starts, delta):
    from scipy.optimize import least_squares

    lo, hi = np.array(model.law.lower), np.array(model.law.upper)
    logy = np.log(model.y)

    def resid(p):
        with np.errstate(all="ignore"):
            pred = model.predict(p)
        # a non-positive prediction is far outside the law's domain: a large, finite residual
        return np.where(pred > 0, np.log(np.maximum(pred, 1e-300)) - logy, 10.0)

    def jac(p):
        with np.errstate(all="ignore"):
            pred = model.predict(p)
            J = model.jacobian(p) / np.maximum(pred, 1e-300)[:, None]
        J[~(pred > 0)] = 0.0
        return np.nan_to_num(J, nan=0.0, posinf=0.0, neginf=0.0)

    best = None
    for p0 in starts:
        x0 = np.clip(p0, lo + 1e-12, np.where(np.isfinite(hi), hi - 1e-12, np.inf))
        # Jacobian scaling converges fast when the parameters are well determined, but stalls
        # where the multi-power law degenerates (C -> 0 with B C fixed); unit scaling gets there.
        for x_scale in ("jac", 1.0):
            try:
                res = least_squares(resid, x0, jac=jac, bounds=(lo, hi), loss="huber", f_scale=delta,
                                    x_scale=x_scale, method="trf", max_nfev=1000, xtol=1e-10, ftol=1e-10,
                                    gtol=1e-10)
            except ValueError:
                continue
            f = float(huber(resid(res.x), delta).sum())
            if best is None or f < best[0]:
                best = (f, res.x)
    if best is None:
        raise FitError(f"the {model.law.name} law could not be fitted from any start", field="law",
                       fix="check that the curve's loss and lr columns are right")
    return best


def relative_errors(pred, actual) -> dict:
    """Mean and maximum of |pred - actual| / actual."""
    pred, actual = np.asarray(pred, float), np.asarray(actual, float)
    ok = np.isfinite(pred) & np.isfinite(actual) & (actual > 0)
    if not ok.any():
        return {"n": 0, "mean_rel_error": None, "max_rel_error": None}
    r = np.abs(pred[ok] - actual[ok]) / actual[ok]
    return {"n": int(ok.sum()), "mean_rel_error": float(r.mean()), "max_rel_error": float(r.max())}


@dataclass
class CurveFit:
    """A schedule law (``annealing`` or ``multipower``) fitted to one or more loss curves.

    ``predict(schedule)`` gives the loss at every row of another schedule (columns step,
    lr); ``evaluate(curve)`` compares with measured losses.
    """

    law: str
    params: dict[str, float]
    lam: float = TISSUE_LAMBDA
    delta: float = HUBER_DELTA
    curves: list[dict] = field(default_factory=list)
    objective: float | None = None
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    max_blocks: int | None = 256
    #: which steps the multi-power loss-drop term counts (:data:`analysis.laws.schedule.CONVENTIONS`)
    convention: str = "printed"
    meta: dict[str, Any] = field(default_factory=dict)

    ci: dict = field(default_factory=dict)
    #: bootstrap draws of the parameters, one list per refit in ``param_names`` order (empty: none)
    samples: list = field(default_factory=list)
    ci_level: float = 0.90

    @property
    def param_names(self) -> tuple[str, ...]:
        return self.law_obj.params

    @property
    def law_obj(self) -> ScheduleLaw:
        return SCHEDULE_LAWS[self.law]

    def predict_schedule(self, schedule: Schedule, steps) -> np.ndarray:
        """Loss at ``steps`` (1-based) of a per-step schedule."""
        steps = np.asarray(steps, dtype=int)
        if np.any(steps < 1) or np.any(steps > schedule.steps):
            raise InputError("steps outside the schedule", field="step", fix="predict at steps 1..T of the schedule")
        return self.law_obj.predict_steps(self.params, schedule, steps, self.lam, self.max_blocks, self.convention)

    def extrapolation_warnings(self, last_step: int) -> list[str]:
        """A warning when ``last_step`` lies more than :data:`CURVE_EXTRAPOLATION` times past the
        last fitted step (none for published fits, whose fitted range is not known here)."""
        fitted = [c.get("last_step") for c in self.curves if c.get("last_step")]
        if not fitted or last_step <= CURVE_EXTRAPOLATION * max(fitted):
            return []
        return [f"predicting step {last_step}, {last_step / max(fitted):.1f}x past the last fitted step "
                f"{max(fitted)}: treat it as an extrapolation"]

    def predict(self, schedule, warmup_steps: int | None = None) -> pd.DataFrame:
        """Predicted loss at every row of ``schedule`` (a DataFrame or file with step and lr;
        a loss column, if any, is kept as ``loss`` and the prediction is ``loss_pred``)."""
        df = schedule if isinstance(schedule, pd.DataFrame) else read_curve(schedule)
        if "lr" not in df.columns:
            raise TableError("the schedule has no lr column", field="lr", fix="give step and lr for every row")
        sched = schedule_from_rows(df["step"], df["lr"], warmup_steps)
        steps = df["step"].to_numpy(float)
        out = pd.DataFrame({"step": steps.astype(int), "lr": df["lr"].to_numpy(float)})
        valid = steps >= 1
        pred = np.full(len(steps), np.nan)
        pred[valid] = self.predict_schedule(sched, steps[valid].astype(int))
        out["loss_pred"] = pred
        if self.samples:
            # the prediction under every bootstrap draw: the percentile band of the level
            draws = np.array([self.law_obj.predict_steps(dict(zip(self.param_names, row)), sched,
                                                         steps[valid].astype(int), self.lam, self.max_blocks,
                                                         self.convention) for row in self.samples])
            q = 100 * (1 - self.ci_level) / 2
            for col, qq in (("loss_low", q), ("loss_high", 100 - q)):
                band = np.full(len(steps), np.nan)
                band[valid] = np.nanpercentile(draws, qq, axis=0)
                out[col] = band
        if "loss" in df.columns:
            out["loss"] = df["loss"].to_numpy(float)
        out.attrs["warmup_end"] = sched.warmup_end
        out.attrs["assumed"] = sched.assumed
        out.attrs["warnings"] = self.extrapolation_warnings(int(np.nanmax(steps)) if len(steps) else 0)
        return out

    def evaluate(self, curve, warmup_steps: int | None = None, min_step: int | None = None) -> dict:
        """Relative errors against a measured curve, over its rows after warmup (and after
        ``min_step``)."""
        pred = self.predict(curve, warmup_steps)
        after = pred[pred["step"] > max(pred.attrs["warmup_end"], int(min_step or 0))]
        if "loss" not in after.columns:
            raise TableError("the curve has no loss column", field="loss", fix="give measured losses to compare")
        return relative_errors(after["loss_pred"], after["loss"])

    def report(self) -> str:
        lines = [f"[[{self.law}]] {self.law_obj.citation}",
                 f"    Huber (delta={self.delta:g}) on log loss over {sum(c['n_used'] for c in self.curves)} "
                 f"points from {len(self.curves)} curve(s)"]
        if self.law_obj.has_convention:
            lines.append(f"    convention: {CONVENTIONS[self.convention]}")
        if self.law_obj.uses_lambda:
            lines.append(f"    lambda = {self.lam:g} (annealing-area momentum, fixed)")
        pct = f"{100 * self.ci_level:g}%"
        rows = [{"param": k, "value": self.params[k], f"{pct} low": self.ci.get(k, (None, None))[0],
                 f"{pct} high": self.ci.get(k, (None, None))[1]} if self.ci else {"param": k, "value": self.params[k]}
                for k in self.param_names]
        lines += ["    " + ln for ln in format_table(rows, formats={"param": str}).splitlines()]
        fit_rows = [{"curve": c["name"], "points": c["n_used"], "steps": f"{c['first_step']}..{c['last_step']}",
                     "mean rel err": _pct(c.get("mean_rel_error")), "max rel err": _pct(c.get("max_rel_error"))}
                    for c in self.curves]
        lines += ["    " + ln for ln in format_table(fit_rows, formats={"curve": str, "steps": str}).splitlines()]
        lines += [f"    note: {n}" for n in self.notes]
        return "\n".join(lines + warnings_block(self.warnings))

    def __str__(self):
        return self.report()

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "CurveFit":
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in known})

    def save(self, path) -> None:
        atomic_write_json(path, {"kind": "CurveFit", **self.to_dict()})

    @classmethod
    def load(cls, path) -> "CurveFit":
        d = _read_json(path)
        kind = d.pop("kind", None)
        if kind != "CurveFit":
            raise RecordError(f"holds a {kind or 'different object'}, not a loss-curve fit", field=str(path),
                              fix="pass a file written by `scaling curve fit`")
        return cls.from_dict(d)


def _pct(v):
    return "-" if v is None else f"{100 * v:.3f}%"


def fit_curve(curves, law: str = "saturating_power", warmup_steps: int | None = None, min_step: int | None = None,
              lam: float = TISSUE_LAMBDA, delta: float = HUBER_DELTA, max_blocks: int = 256, convention: str = "printed",
              stable_tolerance: float = 0.1, bootstrap: int = 0, seed: int = 0, level: float = 0.90):
    """Fit a loss-curve law to one or more curves.

    ``curves``: a DataFrame (step, lr, loss; tokens for ``saturating_power``), a file
    path (CSV or metrics.jsonl), or a list / mapping of them. ``law``:

    * ``saturating_power`` -> :class:`~analysis.fitting.result.LawFit` of L(D) = E + B / D^beta
      over the stable phase (rows after warmup whose lr is within ``stable_tolerance`` of
      the peak; all rows when there are no learning rates). D is ``tokens`` (steps when
      the curve has no tokens). One curve only.
    * ``annealing`` / ``multipower`` -> :class:`CurveFit`, fitted jointly to all curves
      over their rows after warmup (and after ``min_step``).

    ``warmup_steps`` overrides the assumed linear warmup up to the first logged row.
    """
    if law not in CURVE_LAWS:
        raise InputError(f"unknown curve law {law!r}", field="law", fix="use one of " + ", ".join(CURVE_LAWS))
    named = _as_curves(curves)
    schedule_law = SCHEDULE_LAWS.get(law)
    if schedule_law is None:  # the per-run law in D
        if len(named) != 1:
            raise InputError("saturating_power fits one curve at a time", field="curves",
                             fix="call fit_curve once per run")
        return _fit_saturating(*named[0], warmup_steps=warmup_steps, min_step=min_step, delta=delta,
                               tolerance=stable_tolerance, bootstrap=bootstrap, seed=seed, level=level)
    obs = [_observations(name, df, warmup_steps, min_step) for name, df in named]
    n = sum(len(o.steps) for o in obs)
    k = len(schedule_law.params)
    if n <= k:
        raise TableError(f"{n} usable points cannot determine the {k} parameters of {law}", field="loss",
                         fix="log the loss more often, or fit more curves")
    model = _CurveModel(schedule_law, obs, lam, max_blocks, convention)
    starts = _start_points(model)
    if not starts:
        raise FitError(f"no starting point gives positive losses for {law}", field="loss",
                       fix="check that the loss column holds losses in nats")
    f, p = _robust_fit(model, starts, delta)
    names = schedule_law.params
    params = {nm: float(v) for nm, v in zip(names, p)}
    pred = model.predict(p)
    infos, offset, notes, warn = [], 0, [], []
    for o in obs:
        m = len(o.steps)
        err = relative_errors(pred[offset:offset + m], o.loss)
        offset += m
        infos.append({"name": o.name, "n_rows": o.n_rows, "n_used": m, "warmup_end": o.schedule.warmup_end,
                      "first_step": int(o.steps.min()) if m else None, "last_step": int(o.steps.max()) if m else None,
                      "assumed": o.schedule.assumed, **err})
        notes += o.notes
    decays = [o for o in obs if np.any(o.schedule.decrements() > 0)]
    if not decays:
        warn.append("no curve anneals its learning rate: the annealing terms are not determined "
                    "(fit a constant-LR curve together with a decaying one)")
    warn += bound_warnings(params, schedule_law.bounds)
    samples, ci = [], {}
    if bootstrap:
        samples = _block_bootstrap(model, obs, p, delta, bootstrap, seed)
        if samples:
            arr = np.array(samples)
            q = 100 * (1 - level) / 2
            ci = {nm: (float(np.percentile(arr[:, j], q)), float(np.percentile(arr[:, j], 100 - q)))
                  for j, nm in enumerate(names)}
            notes.append(f"intervals: {len(samples)} refits on a moving-block bootstrap of the log residuals "
                         "within each curve (blocks keep the residuals' correlation along a run)")
        if len(samples) < bootstrap:
            warn.append(f"{bootstrap - len(samples)} of {bootstrap} bootstrap refits failed and were left out")
    return CurveFit(law=law, params=params, lam=lam, delta=delta, curves=infos, objective=f, warnings=warn,
                    notes=notes, max_blocks=max_blocks, convention=convention, samples=samples, ci=ci,
                    ci_level=level)


def _block_bootstrap(model: _CurveModel, obs: list, p, delta: float, n: int, seed: int) -> list:
    """Refits on curves rebuilt as prediction x exp(resampled log residuals). Residuals of one
    run are correlated step to step, so they are drawn in moving blocks of about n^(1/3)
    points (Kunsch 1989) within each curve, and every refit starts at the full fit."""
    rng = np.random.default_rng(seed)
    pred = model.predict(p)
    resid = np.log(model.y) - np.log(pred)
    spans, offset = [], 0
    for o in obs:
        spans.append((offset, offset + len(o.steps)))
        offset += len(o.steps)
    y0 = model.y
    out = []
    try:
        for _ in range(n):
            r = np.empty_like(resid)
            for a, b in spans:
                m = b - a
                block = max(1, int(round(m ** (1 / 3))))
                starts = rng.integers(a, b - block + 1, size=-(-m // block))
                r[a:b] = np.concatenate([resid[s:s + block] for s in starts])[:m]
            model.y = pred * np.exp(r)
            try:
                _, q = _robust_fit(model, [p], delta)
            except FitError:
                continue
            out.append([float(v) for v in q])
    finally:
        model.y = y0
    return out


def _fit_saturating(name, df, warmup_steps, min_step, delta, tolerance, bootstrap=0, seed=0, level=0.90) -> LawFit:
    rows = df[np.isfinite(df["loss"]) & (df["loss"] > 0)].copy()
    n_rows = len(rows)
    notes = []
    if "lr" in df.columns and df["lr"].notna().any():
        sched = _curve_schedule(df, warmup_steps)
        peak = float(np.nanmax(df["lr"]))
        keep = (rows["step"] > max(sched.warmup_end, int(min_step or 0))) & (rows["lr"] >= (1 - tolerance) * peak)
        rows = rows[keep.to_numpy()]
        notes.append(f"{name}: fitted the stable phase only: {len(rows)} of {n_rows} loss rows after warmup "
                     f"(step {sched.warmup_end}) with lr within {100 * tolerance:g}% of its peak")
    else:
        if min_step:
            rows = rows[rows["step"] > min_step]
        notes.append(f"{name}: no learning rates: all {len(rows)} loss rows used; "
                     "the law holds for constant-LR (or WSD stable-phase) curves only")
    if "tokens" in rows.columns and rows["tokens"].notna().all():
        D = rows["tokens"].to_numpy(float)
        unit = "tokens"
    else:
        D = rows["step"].to_numpy(float)
        unit = "steps"
        notes.append(f"{name}: no tokens column: D is the step count")
    if len(rows) < 4:
        raise TableError(f"{len(rows)} usable points on curve {name}: L(D) = E + B/D^beta needs 4 or more",
                         field="loss", fix="log the loss more often during the stable phase")
    logy = np.log(rows["loss"].to_numpy(float))
    sol = solve_form("saturating_power", {"y": np.log(D)}, logy, delta=delta)

    warn = fit_warnings(sol.params, sol.stderr, sol.cent_correl, get_law("saturating_power").bounds)
    if sol.cov_note:
        warn.append(sol.cov_note)
    meta = {"notes": notes, "curve": name, "x": unit, "huber_delta": delta, "ci_method": "asymptotic"}
    if "params" in rows.columns and rows["params"].notna().any():
        meta["params"] = float(rows["params"].iloc[0])

    ci, samples = asymptotic_ci(sol.params, sol.stderr, level), None
    if bootstrap:

        samples, sigma = parametric_refits("saturating_power", {"y": np.log(D)}, logy, sol.theta, bootstrap,
                                           seed=seed, delta=delta)
        if len(samples):
            q = 100 * (1 - level) / 2
            ci = {k: (float(np.percentile(samples[:, j], q)), float(np.percentile(samples[:, j], 100 - q)))
                  for j, k in enumerate(get_law("saturating_power").params)}
            meta["ci_method"] = "parametric bootstrap"
            notes.append(f"{name}: intervals from {len(samples)} refits with Gaussian noise of "
                         f"{100 * sigma:.2g}% on each log loss, the fit's residual RMS over "
                         f"{len(rows) - 3} degree(s) of freedom (parametric bootstrap)")
        if len(samples) < bootstrap:
            warn.append(f"{bootstrap - len(samples)} of {bootstrap} bootstrap refits failed and were left out")
    return LawFit(law="saturating_power", params=sol.params, ci=ci, ci_level=level, samples=samples,
               stderr=sol.stderr, correl=sol.correl,
               n_points=len(rows), n_sizes=1, n_budgets=len(rows), data_range={"D": (float(D.min()), float(D.max()))},
               method=f"Huber (delta={delta:g}) on log loss, L-BFGS-B from a grid; one curve's stable phase",
               objective=sol.objective, warnings=warn, source="fit", name=f"saturating_power ({name})", meta=meta)


LUO2025_SOURCE = ("Luo et al. 2025, 'A Multi-Power Law for Loss Curve Prediction Across Learning Rate Schedules', "
                  "parameters of the authors' released code (25M, 100M, 400M models; 2,160-step linear warmup "
                  "from 0 to 3e-4)")


def published_curve(name: str) -> CurveFit:
    """A published multi-power fit (``luo2025_25m``, ``luo2025_100m``, ``luo2025_400m``),
    under the convention it was fitted in (the authors' code, :data:`CONVENTIONS`), with the
    loss-drop sum exact rather than blocked."""
    if name not in LUO2025:
        raise InputError(f"unknown published curve fit {name!r}", field="name", fix="use one of " + ", ".join(LUO2025))
    return CurveFit(law=MULTIPOWER.name, params=dict(LUO2025[name]), max_blocks=None, convention="reference",
                    notes=[LUO2025_SOURCE], meta={"published": name})

