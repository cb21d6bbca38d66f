"""Fit results: one object for fitted and published laws alike.

A :class:`LawFit` carries a law's parameters, their intervals and (when bootstrapped)
the resampled parameter draws, plus everything needed to judge it: how many points and
distinct sizes it saw, the range of the data, and the problems found while fitting
(parameters at a bound, unidentifiable pairs, extrapolation far outside the data).
It is saved to and loaded from JSON without loss.

An :class:`AllocationFit` is the same for Hoffmann et al.'s Approaches 1 and 2, which fit
N_opt(C) and D_opt(C) directly; :func:`analysis.fitting.io.load_result` reads any saved fit back.
"""
from __future__ import annotations

import json
import math
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..common.errors import InputError, RecordError
from ..common.records import atomic_write_json
from ..common.text import format_table, num, si
from ..laws import Law, get_law
from ..laws.base import INPUT_COLUMNS

#: How far (as a factor) past the fitted data a prediction may go before it is flagged.
EXTRAPOLATION_FACTOR = 10.0
#: |correlation| above which two parameters are reported as not separately identifiable.
#: Fits judge it in centred coordinates (each term's value at the data's centre), where a
#: well-designed ladder stays below about 0.99; at N = 1, where A lives, it is always ~1.
CORRELATION_LIMIT = 0.995
#: Relative standard error above which a parameter is reported as poorly determined
#: (exponents; scale constants are allowed twice as much, being exponentials of logs).
RELATIVE_STDERR_LIMIT = 0.5


def law_json(fit, draws: int | None = None) -> dict:
    """The one JSON shape of a law in every command's ``--json`` (docs/json.md): ``name``
    (what the user asked for: ``hoffmann2022``, ``chinchilla``, ``approach2``), ``form`` (the
    registered law it evaluates), ``source`` (``fit``, or the paper for a published law),
    ``citation`` and ``params``; ``bootstrap_draws`` where draws exist."""
    form = getattr(fit, "law", None) or getattr(fit, "method", "")
    try:
        citation = fit.law_obj.citation
    except (AttributeError, KeyError, InputError):
        citation = getattr(fit, "CITATION", {}).get(form, "")
    out = {"name": getattr(fit, "name", "") or form, "form": form, "source": getattr(fit, "source", "fit"),
           "citation": citation or None, "params": dict(fit.params)}
    n = draws if draws is not None else (0 if getattr(fit, "samples", None) is None else len(fit.samples))
    out["bootstrap_draws"] = int(n)
    return out


def warnings_block(items: list[str]) -> list[str]:
    """The report lines listing a fit's warnings (none when there are none)."""
    return ["[[Warnings]]"] + [f"    - {w}" for w in items] if items else []


class _Persisted:
    """JSON persistence shared by the result classes: intervals and ranges as lists,
    bootstrap draws as nested lists, and a ``kind`` tag naming the class."""

    KIND = ""

    def __str__(self) -> str:
        return self.report()

    def to_dict(self) -> dict:
        d = asdict(self)
        d["ci"] = {k: [_enc(v[0]), _enc(v[1])] for k, v in self.ci.items()}
        d["data_range"] = {k: [_enc(v[0]), _enc(v[1])] for k, v in self.data_range.items()}
        d["stderr"] = {k: None if v is None else _enc(v) for k, v in self.stderr.items()}
        d["samples"] = None if self.samples is None else [[_enc(x) for x in row] for row in self.samples.tolist()]
        return d

    @classmethod
    def from_dict(cls, d: dict):
        d = dict(d)
        d["ci"] = {k: (_float(v[0]), _float(v[1])) for k, v in (d.get("ci") or {}).items()}
        d["data_range"] = {k: (_float(v[0]), _float(v[1])) for k, v in (d.get("data_range") or {}).items()}
        d["stderr"] = {k: None if v is None else _float(v) for k, v in (d.get("stderr") or {}).items()}
        if d.get("samples") is not None:
            d["samples"] = [[_float(x) for x in row] for row in d["samples"]]
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in known})

    def save(self, path: str | Path) -> None:
        atomic_write_json(path, {"kind": self.KIND, **self.to_dict()})

    @classmethod
    def load(cls, path: str | Path):
        return cls.from_record(_read_json(path), path)

    @classmethod
    def from_record(cls, d: dict, path: str | Path):
        """The object a saved record ``d`` (read from ``path``) holds; keys it does not know,
        such as a saved fit's ``intervals_from``, are left to the caller."""
        d = dict(d)
        kind = d.pop("kind", cls.KIND)
        if kind != cls.KIND:
            raise RecordError(f"holds a {kind}, not a {cls.KIND}", field=str(path),
                              fix="load it with analysis.fitting.io.load_result")
        return cls.from_dict(d)



def _enc(v: float):
    """JSON has neither NaN nor infinity: NaN (e.g. a failed refit) is written as null,
    and an unbounded interval end as the string "inf" or "-inf", so nothing is lost."""
    v = float(v)
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return None if math.isnan(v) else v


def _float(v) -> float:
    """Inverse of :func:`_enc`."""
    return math.nan if v is None else float(v)

@dataclass
class LawFit(_Persisted):
    """A law with parameters, from a fit or from a paper.

    Attributes mirror lmfit's ``MinimizerResult`` where they overlap: ``params`` (best
    values), ``stderr`` (asymptotic standard errors), ``correl`` (parameter
    correlations), plus ``ci`` (parameter -> (low, high) at ``ci_level``) and
    ``samples`` (bootstrap draws, one row per refit, columns in ``law.params`` order).
    """

    law: str
    params: dict[str, float]
    ci: dict[str, tuple[float, float]] = field(default_factory=dict)
    ci_level: float = 0.90
    stderr: dict[str, float | None] = field(default_factory=dict)
    correl: dict[str, dict[str, float]] = field(default_factory=dict)
    samples: np.ndarray | None = None
    n_points: int = 0
    n_sizes: int = 0
    n_budgets: int = 0
    data_range: dict[str, tuple[float, float]] = field(default_factory=dict)
    method: str = ""
    objective: float | None = None
    warnings: list[str] = field(default_factory=list)
    source: str = "fit"
    name: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        law = get_law(self.law)
        self.law = law.name
        # the Law object itself, so fits, extrapolation, plots and reports ask it directly;
        # ``law`` stays its name, which is what a saved fit records
        self.__dict__["_law"] = law
        missing = [p for p in law.params if p not in self.params]
        if missing:
            raise InputError(f"missing parameter(s) {', '.join(missing)} for law {self.law!r}", field="params")
        self.params = {p: float(self.params[p]) for p in law.params}
        if self.samples is not None:
            self.samples = np.asarray(self.samples, dtype=float).reshape(-1, len(law.params))

    # ------------------------------------------------------------------ evaluation
    @property
    def law_obj(self) -> Law:
        """The :class:`~analysis.laws.Law` this fit holds (looked up again only if ``law`` was renamed)."""
        law = self.__dict__.get("_law")
        if law is None or law.name != self.law:
            law = get_law(self.law)
            self.__dict__["_law"] = law
        return law

    @property
    def is_published(self) -> bool:
        return self.source != "fit"

    @property
    def n_column(self) -> str:
        """The parameter count the law's N is: ``params_nonembedding`` for a fit on Kaplan et
        al.'s non-embedding counts and for Kaplan et al.'s own published laws (their N counts
        non-embedding parameters), else ``params``. Evaluate the law at that count."""
        meta = self.meta or {}
        col = (meta.get("inputs") or {}).get("N") or meta.get("n_column")
        if col:
            return str(col)
        law = self.law_obj
        if self.is_published and law.nonembedding and "N" in law.inputs:
            return "params_nonembedding"
        return "params"

    def predict(self, N=None, D=None, C=None, U=None) -> np.ndarray:
        """Loss predicted at the given inputs (arrays broadcast against each other); ``U``,
        the unique tokens, reaches only laws that have it (default: every token unique)."""
        return np.asarray(self.law_obj.evaluate(self.params, N=N, D=D, C=C, U=U), dtype=float)

    def predict_table(self, points) -> np.ndarray:
        """Loss predicted at every row of a points table, each law input read from its column
        (:data:`analysis.laws.base.INPUT_COLUMNS`; N from :attr:`n_column` when the table has it)."""

        given = {k: points[col].to_numpy(float) for k, col in INPUT_COLUMNS.items() if col in points.columns}
        ncol = self.n_column if self.n_column in points.columns else "params"
        given["N"] = points[ncol].to_numpy(float)
        return self.predict(**given)

    def sample_params(self) -> list[dict[str, float]]:
        """The bootstrap draws as parameter dicts (empty when not bootstrapped)."""
        if self.samples is None:
            return []
        names = self.law_obj.params
        return [dict(zip(names, row)) for row in self.samples]

    def predict_samples(self, N=None, D=None, C=None) -> np.ndarray | None:
        """Predictions under every bootstrap draw: shape (n_draws, *broadcast shape)."""
        draws = self.sample_params()
        if not draws:
            return None
        return np.stack([np.asarray(self.law_obj.evaluate(p, N=N, D=D, C=C), dtype=float) for p in draws])

    def predict_interval(self, N=None, D=None, C=None, level: float | None = None):
        """(low, high) percentile interval of the prediction over bootstrap draws, or None."""
        preds = self.predict_samples(N=N, D=D, C=C)
        if preds is None:
            return None
        level = self.ci_level if level is None else level
        q = 100 * (1 - level) / 2
        return np.nanpercentile(preds, q, axis=0), np.nanpercentile(preds, 100 - q, axis=0)

    def derived(self) -> dict[str, float]:
        """Quantities implied by the parameters: for Chinchilla-form laws the exponents of
        the compute-optimal allocation, N_opt ~ C^a and D_opt ~ C^b with a = beta/(alpha+beta),
        b = alpha/(alpha+beta) (Hoffmann et al. 2022, eq. 4)."""
        return derived_quantities(self.law, self.params)

    def derived_ci(self, level: float | None = None) -> dict[str, tuple[float, float]]:
        """Percentile intervals of :meth:`derived` over the bootstrap draws (empty without draws)."""
        draws = self.sample_params()
        if not draws:
            return {}
        vals = [derived_quantities(self.law, p) for p in draws]
        names = list(vals[0])
        arr = np.array([[v[k] for k in names] for v in vals], dtype=float)
        lo, hi = interval_from_samples(arr, self.ci_level if level is None else level)
        return {k: (float(lo[i]), float(hi[i])) for i, k in enumerate(names)}

    def extrapolation_warnings(self, **inputs) -> list[str]:
        """Warnings for inputs more than EXTRAPOLATION_FACTOR beyond the fitted data range."""
        return _extrapolation_warnings(self.data_range, inputs)

    # ------------------------------------------------------------------ reporting
    def report(self) -> str:
        """A human-readable summary: parameters with intervals, data, and problems."""
        law = self.law_obj
        title = self.name or self.law
        lines = [f"[[{title}]] {law.citation}"]
        if self.is_published:
            lines.append(f"    source: {self.source}")
        else:
            lines.append(f"    method: {self.method or '-'}; {self.n_points} points, "
                         f"{self.n_sizes} model sizes, {self.n_budgets} token budgets")
            for key, (lo, hi) in self.data_range.items():
                fmt = _fmt_sci if key == "C" else si  # FLOPs span too many decades for SI suffixes
                lines.append(f"    {key} range: {fmt(lo)} .. {fmt(hi)}")
        rows = []
        pct = f"{100 * self.ci_level:g}%"
        for p in law.params:
            lo, hi = self.ci.get(p, (None, None))
            rows.append({"param": p, "value": self.params[p], "stderr": self.stderr.get(p),
                         f"{pct} low": lo, f"{pct} high": hi})
        derived = self.derived()
        if derived:
            dci = self.derived_ci()
            for k, v in derived.items():
                lo, hi = dci.get(k, (None, None))
                rows.append({"param": f"{k} (derived)", "value": v, "stderr": None, f"{pct} low": lo,
                             f"{pct} high": hi})
        table = format_table(rows, formats={"param": str})
        lines += ["    " + ln for ln in table.splitlines()]
        ci_method = self.meta.get("ci_method")
        if not self.is_published and any(v is not None for v in self.stderr.values()):
            lines.append(STDERR_NOTE)
        if self.samples is not None:
            boot = self.meta.get("bootstrap", {})
            unit = f" resampling {boot['unit']}" if boot.get("unit") else ""
            lines.append(f"    intervals: bootstrap percentiles over {len(self.samples)} refits{unit}")
        elif ci_method == "asymptotic" and self.ci:
            lines.append("    intervals: asymptotic (stderr x normal quantile), lower bounds like the stderr; "
                         "bootstrap for honest intervals")
        for note in self.meta.get("notes", []):
            lines.append(f"    note: {note}")
        return "\n".join(lines + warnings_block(self.warnings))

    KIND = "LawFit"


#: Printed under every fitted parameter table. Measured by ``python docs/studies/calibration.py``
#: (docs/analysis.md, "Honest intervals"): Huber's asymptotic errors understate the spread.
STDERR_NOTE = ("    stderr: asymptotic, a lower bound for most parameters: on real tables the bootstrap's "
               "spread was up to 4.5x larger (docs/analysis.md, Honest intervals); use --bootstrap")


# ---------------------------------------------------------------------- diagnostics

def bound_warnings(params: dict[str, float], bounds: dict[str, tuple[float, float]],
                   rtol: float = 1e-3) -> list[str]:
    """One warning per parameter that ended on (or within rtol of) a bound of its box."""
    out = []
    for p, v in params.items():
        if p not in bounds:
            continue
        lo, hi = bounds[p]
        for edge, name in ((lo, "lower"), (hi, "upper")):
            if math.isfinite(edge) and abs(v - edge) <= rtol * max(1.0, abs(edge)):
                out.append(f"parameter {p} = {num(v)} is at its {name} bound {num(edge)}; "
                           "the optimum may lie outside the search box or the data cannot pin it down")
    return out


def correlation_warnings(correl: dict[str, dict[str, float]], limit: float = CORRELATION_LIMIT) -> list[str]:
    """One warning per parameter pair whose |correlation| reaches ``limit``."""
    out, seen = [], set()
    for p, row in correl.items():
        for q, c in row.items():
            key = tuple(sorted((p, q)))
            if p == q or key in seen or c is None or not math.isfinite(c):
                continue
            seen.add(key)
            if abs(c) >= limit:
                out.append(f"parameters {key[0]} and {key[1]} are not separately identifiable "
                           f"(correlation {c:+.3f}); more distinct sizes or budgets would separate them")
    return out


def uncertainty_warnings(params: dict[str, float], stderr: dict[str, float | None],
                         limit: float = RELATIVE_STDERR_LIMIT) -> list[str]:
    """One warning per parameter whose standard error is large against its value.

    A relative error means something only while the value stands clear of zero. Once one
    standard error either side of the value reaches 0 (E = 0.001 with stderr 0.4, say),
    a percentage ("40000% of its value") only measures how close to 0 the optimum landed,
    so the warning states the value and its standard error instead.
    """
    out = []
    for p, v in params.items():
        se = stderr.get(p)
        if se is None or not math.isfinite(se) or se <= 0 or not math.isfinite(v):
            continue
        lim = limit if _is_exponent(p) else 2 * limit
        if se >= abs(v):
            out.append(f"parameter {p} = {num(v)} ± {num(se)} (stderr) is poorly determined: "
                       "the interval includes 0")
        elif se > lim * abs(v):
            out.append(f"parameter {p} = {num(v)} is poorly determined (stderr {num(se)}, "
                       f"{100 * se / abs(v):.0f}% of its value)")
    return out


def _is_exponent(name: str) -> bool:
    return name.split("_")[0] in ("alpha", "beta", "eta", "gamma", "a", "b")


def check_interval_args(level: float, bootstrap: int = 0) -> None:
    """The interval options every fit takes: a level in (0, 1) and a non-negative number of refits."""
    if not 0 < level < 1:
        raise InputError(f"level must lie in (0, 1), got {level}", field="level", fix="e.g. 0.90")
    if bootstrap < 0:
        raise InputError("bootstrap must be >= 0", field="bootstrap")


def interval_from_samples(samples: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval along axis 0, ignoring failed (NaN) refits."""
    q = 100 * (1 - level) / 2
    samples = np.asarray(samples, dtype=float)
    with warnings.catch_warnings():
        # an all-NaN column (every refit failed) gives NaN, which the report shows as '-'
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanpercentile(samples, q, axis=0), np.nanpercentile(samples, 100 - q, axis=0)


def derived_quantities(law: str, params: dict[str, float]) -> dict[str, float]:
    """Quantities implied by a law's parameters (:meth:`analysis.laws.Law.derived`), e.g. the
    allocation exponents of Hoffmann et al. 2022, eq. 4."""
    return get_law(law).derived(params)


# ---------------------------------------------------------------------- allocation fits

#: Parameters of an allocation fit: N_opt = k_N C^a, D_opt = k_D C^b.
ALLOCATION_PARAMS = ("a", "b", "k_N", "k_D")


@dataclass
class AllocationFit(_Persisted):
    """Compute-optimal allocation fitted by Hoffmann et al. 2022's Approach 1 (training-curve
    envelope) or Approach 2 (IsoFLOP profiles): N_opt = k_N C^a and D_opt = k_D C^b.

    ``points`` lists the per-compute optima the power laws were fitted to (C, n_opt,
    d_opt, loss), so they can be plotted or refitted. ``samples`` are bootstrap draws of
    (a, b, k_N, k_D).
    """

    method: str
    params: dict[str, float]
    ci: dict[str, tuple[float, float]] = field(default_factory=dict)
    ci_level: float = 0.90
    stderr: dict[str, float | None] = field(default_factory=dict)
    samples: np.ndarray | None = None
    n_points: int = 0
    n_sizes: int = 0
    n_budgets: int = 0
    data_range: dict[str, tuple[float, float]] = field(default_factory=dict)
    points: list[dict] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    name: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    CITATION = {
        "approach1": "Hoffmann et al. 2022, Sec. 3.1 (Approach 1: minimum over training curves at fixed FLOPs)",
        "approach2": "Hoffmann et al. 2022, Sec. 3.2 (Approach 2: IsoFLOP profiles)",
    }

    def __post_init__(self):
        missing = [p for p in ALLOCATION_PARAMS if p not in self.params]
        if missing:
            raise InputError(f"missing parameter(s) {', '.join(missing)}", field="params")
        self.params = {p: float(self.params[p]) for p in ALLOCATION_PARAMS}
        if self.samples is not None:
            self.samples = np.asarray(self.samples, dtype=float).reshape(-1, len(ALLOCATION_PARAMS))

    @property
    def law(self) -> str:
        return self.method

    @property
    def is_published(self) -> bool:
        return False

    def predict(self, C) -> tuple[np.ndarray, np.ndarray]:
        """(N_opt, D_opt) at compute C (FLOPs, same count as the fitted table's flops)."""
        C = np.asarray(C, dtype=float)
        p = self.params
        return p["k_N"] * C ** p["a"], p["k_D"] * C ** p["b"]

    def predict_samples(self, C):
        """(N_opt draws, D_opt draws), each of shape (n_draws, *C.shape), or None."""
        if self.samples is None or not len(self.samples):
            return None
        C = np.asarray(C, dtype=float)
        s = self.samples
        shape = (-1,) + (1,) * C.ndim
        a, b, kN, kD = (s[:, i].reshape(shape) for i in range(4))
        return kN * C[None] ** a, kD * C[None] ** b

    def predict_interval(self, C, level: float | None = None):
        """((N_lo, N_hi), (D_lo, D_hi)) percentile intervals over bootstrap draws, or None."""
        draws = self.predict_samples(C)
        if draws is None:
            return None
        level = self.ci_level if level is None else level
        return tuple(interval_from_samples(d, level) for d in draws)

    def extrapolation_warnings(self, C=None, **_) -> list[str]:
        return _extrapolation_warnings(self.data_range, {"C": C})

    def report(self) -> str:
        """Exponents and prefactors with intervals, the per-compute optima, and problems."""
        lines = [f"[[{self.name or self.method}]] {self.CITATION.get(self.method, '')}",
                 f"    {self.n_points} points, {self.n_sizes} model sizes, {self.n_budgets} compute values "
                 f"used for the power laws"]
        for key, (lo, hi) in self.data_range.items():
            lines.append(f"    {key} range: {_fmt_sci(lo)} .. {_fmt_sci(hi)}")
        pct = f"{100 * self.ci_level:g}%"
        rows = []
        for p in ALLOCATION_PARAMS:
            lo, hi = self.ci.get(p, (None, None))
            rows.append({"param": p, "value": self.params[p], "stderr": self.stderr.get(p),
                         f"{pct} low": lo, f"{pct} high": hi})
        lines += ["    " + ln for ln in format_table(rows, formats={"param": str}).splitlines()]
        lines.append("    N_opt = k_N * C^a,  D_opt = k_D * C^b")
        if self.samples is not None:
            lines.append(f"    intervals: bootstrap percentiles over {len(self.samples)} resamples "
                         f"({self.meta.get('resample', 'points')})")
        elif self.ci:
            lines.append("    intervals: least-squares standard errors of the log-log regressions")
        for note in self.meta.get("notes", []):
            lines.append(f"    note: {note}")
        if self.points:
            lines.append("    optima:")
            tab = format_table([{"C": q["C"], "N_opt": q["n_opt"], "D_opt": q["d_opt"], "loss": q.get("loss"),
                                 "D/N": q["d_opt"] / q["n_opt"]} for q in self.points[:12]],
                               formats={"C": _fmt_sci, "N_opt": si, "D_opt": si, "D/N": lambda v: f"{v:.1f}"})
            lines += ["      " + ln for ln in tab.splitlines()]
            if len(self.points) > 12:
                lines.append(f"      ... {len(self.points) - 12} more")
        return "\n".join(lines + warnings_block(self.warnings))

    KIND = "AllocationFit"

    def to_dict(self) -> dict:
        return {**super().to_dict(), "law": self.method}


def _fmt_sci(x) -> str:
    return "-" if x is None else f"{float(x):.3g}"


def _read_json(path) -> dict:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RecordError("no such fit file", field=str(path)) from None
    except json.JSONDecodeError as e:
        raise RecordError(f"not valid JSON ({e.msg})", field=str(path)) from None


def _extrapolation_warnings(data_range: dict, inputs: dict) -> list[str]:
    out = []
    for key, value in inputs.items():
        if value is None or key not in data_range:
            continue
        lo, hi = data_range[key]
        v = np.asarray(value, dtype=float)
        if np.any(v > hi * EXTRAPOLATION_FACTOR) or np.any(v < lo / EXTRAPOLATION_FACTOR):
            far = float(np.max(v)) if np.any(v > hi * EXTRAPOLATION_FACTOR) else float(np.min(v))
            out.append(f"{key}={si(far)} lies more than {EXTRAPOLATION_FACTOR:g}x outside "
                       f"the fitted range [{si(lo)}, {si(hi)}]; treat the prediction as an extrapolation")
    return out
