"""Loss-curve laws: one run's loss as a function of its step and learning-rate schedule.

Three laws, each fitted with a Huber loss (delta = 1e-3) on log-loss residuals:

``saturating_power``
    L(D) = E + B / D^beta over the stable phase of a constant-LR or WSD run (the data
    term of Hoffmann et al. 2022 eq. 2 at fixed N). Returns a
    :class:`~analysis.result.LawFit` that predicts L(D).
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

from .errors import FitError, InputError, RecordError, TableError
from .fit import HUBER_DELTA, huber
from .result import LawFit, _read_json, bound_warnings, warnings_block
from .schedules import Schedule, schedule_from_rows
from .text import format_table

__all__ = ["CURVE_LAWS", "read_curve", "fit_curve", "CurveFit", "Schedule", "schedule_from_rows",
           "annealing_areas", "tissue_annealing", "luo_multipower", "relative_errors"]

CURVE_LAWS = ("saturating_power", "annealing", "multipower")
#: Tissue et al. 2024 momentum decay of the annealing area.
TISSUE_LAMBDA = 0.999

ANNEALING_PARAMS = ("L0", "A", "alpha", "C")
MULTIPOWER_PARAMS = ("L0", "A", "alpha", "B", "C", "beta", "gamma")
CITATIONS = {
    "annealing": "Tissue et al. 2024, Scaling Law with Learning Rate Annealing, eq. (1)",
    "multipower": "Luo et al. 2025, A Multi-Power Law for Loss Curve Prediction Across Learning Rate Schedules",
}


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
        from .records import iter_jsonl

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


def annealing_areas(schedule: Schedule, lam: float = TISSUE_LAMBDA) -> tuple[np.ndarray, np.ndarray]:
    """Tissue et al. 2024's S1 (forward area) and S2 (annealing area) at every step 1..T."""
    from scipy.signal import lfilter

    s1 = np.cumsum(schedule.lr)
    m = lfilter([1.0], [1.0, -lam], schedule.decrements())
    return s1, np.cumsum(m)


def tissue_annealing(S1, S2, L0, A, alpha, C):
    """Tissue et al. 2024, eq. (1): L = L0 + A S1^-alpha - C S2."""
    return L0 + A * np.asarray(S1, float) ** (-alpha) - C * np.asarray(S2, float)


class _MPLTerms:
    """Precomputed sums for the multi-power law at given observation steps.

    The loss-drop term sums over every step k where the rate changed; steps are grouped
    into at most ``max_blocks`` blocks (split at every observation step, so no block
    straddles one) and each block is evaluated at its decrement-weighted centre.
    """

    def __init__(self, schedule: Schedule, obs_steps: np.ndarray, max_blocks: int = 256):
        cum = schedule.cumulative()
        obs = np.asarray(obs_steps, dtype=int)
        self.S = cum[obs]  # S1(t) + S_W: the whole area up to t
        dec = schedule.decrements()
        ks = np.flatnonzero(dec != 0) + 1  # 1-based steps with a change
        if len(ks) == 0:
            self.delta = np.zeros(0)
            self.eta = np.zeros(0)
            self.Sk = np.zeros((len(obs), 0))
            return
        # block boundaries: equal counts, plus every observation step
        n_blocks = min(max_blocks, len(ks))
        cuts = set(np.unique(np.linspace(0, len(ks), n_blocks + 1).astype(int)).tolist())
        cuts |= set(np.searchsorted(ks, obs, side="right").tolist())
        cuts = np.array(sorted(c for c in cuts if 0 <= c <= len(ks)))
        deltas, centres = [], []
        for a, b in zip(cuts[:-1], cuts[1:]):
            if b <= a:
                continue
            kk = ks[a:b]
            w = dec[kk - 1]
            tot = w.sum()
            deltas.append(tot)
            centres.append(int(round(np.average(kk, weights=np.abs(w)))) if np.abs(w).sum() > 0 else int(kk[0]))
            if not kk[0] <= centres[-1] <= kk[-1]:
                centres[-1] = int(kk[len(kk) // 2])
        self.delta = np.array(deltas)
        k = np.array(centres)
        self.eta = schedule.lr[k - 1]
        self.first = np.array([ks[a] for a, b in zip(cuts[:-1], cuts[1:]) if b > a])
        # S_k(t) = sum_{tau=k}^{t} eta_tau, zero (and masked) for blocks after t
        Sk = cum[obs][:, None] - cum[k - 1][None, :]
        self.mask = (self.first[None, :] <= obs[:, None]).astype(float)
        self.Sk = np.where(self.mask > 0, np.maximum(Sk, 0.0), 0.0)

    def loss_drop(self, B, C, beta, gamma):
        if self.delta.size == 0:
            return np.zeros(len(self.S))
        eta = np.maximum(self.eta, 1e-300)
        x = eta[None, :] ** (-gamma) * self.Sk
        G = 1.0 - (C * x + 1.0) ** (-beta)
        return B * (G * self.mask) @ self.delta

    def loss_drop_jac(self, B, C, beta, gamma):
        """LD and its derivatives with respect to (B, C, beta, gamma)."""
        n = len(self.S)
        if self.delta.size == 0:
            return np.zeros(n), np.zeros((n, 4))
        eta = np.maximum(self.eta, 1e-300)
        x = eta[None, :] ** (-gamma) * self.Sk
        u = C * x + 1.0
        p = u ** (-beta)
        wd = self.mask * self.delta[None, :]
        g_sum = ((1.0 - p) * wd).sum(axis=1)
        dG_dx = beta * C * p / u
        J = np.empty((n, 4))
        J[:, 0] = g_sum
        J[:, 1] = B * ((beta * p / u * x) * wd).sum(axis=1)
        J[:, 2] = B * ((p * np.log(u)) * wd).sum(axis=1)
        J[:, 3] = B * ((dG_dx * x * -np.log(eta)[None, :]) * wd).sum(axis=1)
        return B * g_sum, J


def luo_multipower(schedule: Schedule, steps, L0, A, alpha, B, C, beta, gamma, max_blocks: int = 256):
    """Luo et al. 2025 multi-power law at ``steps`` of ``schedule``:
    L(t) = L0 + A (S1(t) + S_W)^-alpha - LD(t) (see the module docstring)."""
    terms = _MPLTerms(schedule, np.asarray(steps, dtype=int), max_blocks)
    return L0 + A * terms.S ** (-alpha) - terms.loss_drop(B, C, beta, gamma)


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

    def __init__(self, law: str, obs: list[_Obs], lam: float, max_blocks: int):
        self.law, self.obs, self.lam = law, obs, lam
        if law == "annealing":
            self.parts = []
            for o in obs:
                s1, s2 = annealing_areas(o.schedule, lam)
                self.parts.append((s1[o.steps - 1], s2[o.steps - 1]))
        else:
            self.parts = [_MPLTerms(o.schedule, o.steps, max_blocks) for o in obs]
        self.y = np.concatenate([o.loss for o in obs])

    def predict(self, p):
        if self.law == "annealing":
            L0, A, alpha, C = p
            return np.concatenate([tissue_annealing(s1, s2, L0, A, alpha, C) for s1, s2 in self.parts])
        L0, A, alpha, B, C, beta, gamma = p
        return np.concatenate([L0 + A * t.S ** (-alpha) - t.loss_drop(B, C, beta, gamma) for t in self.parts])

    def jacobian(self, p):
        """d prediction / d parameters, rows like :meth:`predict`."""
        blocks = []
        if self.law == "annealing":
            L0, A, alpha, C = p
            for s1, s2 in self.parts:
                pw = s1 ** (-alpha)
                blocks.append(np.column_stack([np.ones_like(s1), pw, -A * pw * np.log(s1), -s2]))
            return np.vstack(blocks)
        L0, A, alpha, B, C, beta, gamma = p
        for t in self.parts:
            pw = t.S ** (-alpha)
            _, J = t.loss_drop_jac(B, C, beta, gamma)
            blocks.append(np.column_stack([np.ones_like(t.S), pw, -A * pw * np.log(t.S), -J[:, 0], -J[:, 1],
                                           -J[:, 2], -J[:, 3]]))
        return np.vstack(blocks)

    def basis(self, nonlinear):
        """Columns multiplying the linear parameters for fixed nonlinear ones:
        annealing (L0, A, C) given alpha; multipower (L0, A, B) given (alpha, C, beta, gamma)."""
        if self.law == "annealing":
            (alpha,) = nonlinear
            S1 = np.concatenate([s1 for s1, _ in self.parts])
            S2 = np.concatenate([s2 for _, s2 in self.parts])
            return np.column_stack([np.ones_like(S1), S1 ** (-alpha), -S2])
        alpha, C, beta, gamma = nonlinear
        S = np.concatenate([t.S for t in self.parts])
        LD = np.concatenate([t.loss_drop(1.0, C, beta, gamma) for t in self.parts])
        return np.column_stack([np.ones_like(S), S ** (-alpha), -LD])

    def assemble(self, lin, nonlinear):
        if self.law == "annealing":
            return np.array([lin[0], lin[1], nonlinear[0], lin[2]])
        alpha, C, beta, gamma = nonlinear
        return np.array([lin[0], lin[1], alpha, lin[2], C, beta, gamma])


def _start_points(model: _CurveModel, n_keep: int = 2):
    """Variable projection: on a grid of the nonlinear parameters, the linear ones
    (L0, A and C or B) by non-negative least squares; the best few become starts."""
    from scipy.optimize import nnls

    if model.law == "annealing":
        grid = [(a,) for a in (0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5)]
    else:
        grid = [(a, c, b, g) for a in (0.2, 0.5, 1.0) for c in (0.3, 1.0, 3.0, 10.0)
                for b in (0.3, 0.6, 1.0) for g in (0.3, 0.6)]
    scored = []
    for nl in grid:
        with np.errstate(all="ignore"):
            M = model.basis(nl)
        if not np.all(np.isfinite(M)):
            continue
        lin, _ = nnls(M, model.y)
        p = model.assemble(lin, nl)
        pred = model.predict(p)
        if np.any(pred <= 0):
            continue
        scored.append((float(huber(np.log(pred) - np.log(model.y)).sum()), p))
    scored.sort(key=lambda s: s[0])
    return [p for _, p in scored[:n_keep]]


def _bounds(law):
    if law == "annealing":
        return np.array([0.0, 0.0, 0.0, 0.0]), np.array([20.0, np.inf, 5.0, np.inf])
    return np.array([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]), np.array([20.0, np.inf, 5.0, np.inf, np.inf, 5.0, 5.0])


def _robust_fit(model: _CurveModel, starts, delta):
    from scipy.optimize import least_squares

    lo, hi = _bounds(model.law)
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
        raise FitError(f"the {model.law} law could not be fitted from any start", field="law",
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
    max_blocks: int = 256
    meta: dict[str, Any] = field(default_factory=dict)

    ci: dict = field(default_factory=dict)  # kept for a uniform result interface; curve fits have none yet

    @property
    def param_names(self) -> tuple[str, ...]:
        return ANNEALING_PARAMS if self.law == "annealing" else MULTIPOWER_PARAMS

    def _vector(self):
        return np.array([self.params[p] for p in self.param_names])

    def predict_schedule(self, schedule: Schedule, steps) -> np.ndarray:
        """Loss at ``steps`` (1-based) of a per-step schedule."""
        steps = np.asarray(steps, dtype=int)
        if np.any(steps < 1) or np.any(steps > schedule.steps):
            raise InputError("steps outside the schedule", field="step", fix="predict at steps 1..T of the schedule")
        p = self.params
        if self.law == "annealing":
            s1, s2 = annealing_areas(schedule, self.lam)
            return tissue_annealing(s1[steps - 1], s2[steps - 1], p["L0"], p["A"], p["alpha"], p["C"])
        return luo_multipower(schedule, steps, **{k: p[k] for k in MULTIPOWER_PARAMS}, max_blocks=self.max_blocks)

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
        if "loss" in df.columns:
            out["loss"] = df["loss"].to_numpy(float)
        out.attrs["warmup_end"] = sched.warmup_end
        out.attrs["assumed"] = sched.assumed
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
        lines = [f"[[{self.law}]] {CITATIONS[self.law]}",
                 f"    Huber (delta={self.delta:g}) on log loss over {sum(c['n_used'] for c in self.curves)} "
                 f"points from {len(self.curves)} curve(s)"]
        if self.law == "annealing":
            lines.append(f"    lambda = {self.lam:g} (annealing-area momentum, fixed)")
        rows = [{"param": k, "value": self.params[k]} for k in self.param_names]
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
        from .records import atomic_write_json

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
              lam: float = TISSUE_LAMBDA, delta: float = HUBER_DELTA, max_blocks: int = 256,
              stable_tolerance: float = 0.1):
    """Fit a loss-curve law to one or more curves.

    ``curves``: a DataFrame (step, lr, loss; tokens for ``saturating_power``), a file
    path (CSV or metrics.jsonl), or a list / mapping of them. ``law``:

    * ``saturating_power`` -> :class:`~analysis.result.LawFit` of L(D) = E + B / D^beta
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
    if law == "saturating_power":
        if len(named) != 1:
            raise InputError("saturating_power fits one curve at a time", field="curves",
                             fix="call fit_curve once per run")
        return _fit_saturating(*named[0], warmup_steps=warmup_steps, min_step=min_step, delta=delta,
                               tolerance=stable_tolerance)
    obs = [_observations(name, df, warmup_steps, min_step) for name, df in named]
    n = sum(len(o.steps) for o in obs)
    k = len(ANNEALING_PARAMS if law == "annealing" else MULTIPOWER_PARAMS)
    if n <= k:
        raise TableError(f"{n} usable points cannot determine the {k} parameters of {law}", field="loss",
                         fix="log the loss more often, or fit more curves")
    model = _CurveModel(law, obs, lam, max_blocks)
    starts = _start_points(model)
    if not starts:
        raise FitError(f"no starting point gives positive losses for {law}", field="loss",
                       fix="check that the loss column holds losses in nats")
    f, p = _robust_fit(model, starts, delta)
    names = ANNEALING_PARAMS if law == "annealing" else MULTIPOWER_PARAMS
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
    lo, hi = _bounds(law)
    warn += bound_warnings(params, {nm: (a, b) for nm, a, b in zip(names, lo, hi)})
    return CurveFit(law=law, params=params, lam=lam, delta=delta, curves=infos, objective=f, warnings=warn,
                    notes=notes, max_blocks=max_blocks)


def _fit_saturating(name, df, warmup_steps, min_step, delta, tolerance) -> LawFit:
    from .fit import solve_form

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
    from .fit import asymptotic_ci, fit_warnings
    from .laws import get_law

    warn = fit_warnings(sol.params, sol.stderr, sol.cent_correl, get_law("saturating_power").bounds)
    if sol.cov_note:
        warn.append(sol.cov_note)
    meta = {"notes": notes, "curve": name, "x": unit, "huber_delta": delta, "ci_method": "asymptotic"}
    if "params" in rows.columns and rows["params"].notna().any():
        meta["params"] = float(rows["params"].iloc[0])
    from .result import LawFit as _LF

    return _LF(law="saturating_power", params=sol.params, ci=asymptotic_ci(sol.params, sol.stderr, 0.90),
               stderr=sol.stderr, correl=sol.correl,
               n_points=len(rows), n_sizes=1, n_budgets=len(rows), data_range={"D": (float(D.min()), float(D.max()))},
               method=f"Huber (delta={delta:g}) on log loss, L-BFGS-B from a grid; one curve's stable phase",
               objective=sol.objective, warnings=warn, source="fit", name=f"saturating_power ({name})", meta=meta)
