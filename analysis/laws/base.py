"""The :class:`Law` object: one place that knows everything about a scaling law.

Like lmfit's ``Model``, a law knows its function, its parameters and their bounds. It
also knows what the rest of the toolkit asks of it, so that fitting, extrapolation,
figures and reports never branch on a law's name:

* ``fn``, ``params``, ``inputs`` (a subset of N, D, C and U, the unique tokens a run
  repeats, in the order ``fn`` takes them),
  ``bounds`` (the box a fit searches and reports hits on), ``formula`` and ``citation``;
* ``form``: the parametrisation the fitter works in, with a vectorised log-prediction,
  its Jacobian and a start grid (:mod:`analysis.laws.forms`). A law that brings none gets
  a :class:`~analysis.laws.forms.GenericForm` built from ``fn``, ``bounds`` and
  ``start_grid``, with numerical derivatives;
* the inversions extrapolation needs: :meth:`Law.loss` over bootstrap draws,
  :meth:`Law.floor` (the loss with unlimited data), :meth:`Law.tokens_to_match` and
  :meth:`Law.optimal_allocation`. Laws with closed forms override them; the defaults here
  are numerical and work for any law that falls monotonically in D;
* ``published``: parameter sets from papers, each with its source;
* ``size_terms``: the parameters only differences between model sizes determine, which
  decides whether a bootstrap may resample whole runs.

Adding a law is one new module that builds a :class:`Law` and one
:func:`analysis.laws.register_law` call; ``docs/analysis.md`` walks through an example.
The registry (:data:`LAWS`, :func:`register_law`, :func:`get_law`) lives here, below
every law module, so that each can look up the others without importing the package.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np

from ..common.errors import InputError
from .forms import GenericForm

__all__ = ["Law", "Published", "D_MAX", "INPUT_COLUMNS", "DATA_INPUTS", "LAWS", "register_law", "get_law",
           "register_builder", "fittable", "published_sets"]

#: Largest token count the numerical inversions search; beyond it a target counts as unreachable.
D_MAX = 1e40
#: The points-table column behind each law input.
INPUT_COLUMNS = {"N": "params", "D": "tokens", "C": "flops", "U": "unique_tokens"}
#: Inputs a loss in tokens may have besides N and D: U, the unique tokens a run repeats
#: (absent, every token is unique, U = D).
DATA_INPUTS = {"N", "D", "U"}


@dataclass(frozen=True)
class Published:
    """A published parameter set of a law: the values and where they were printed."""

    params: Mapping[str, float]
    source: str
    doc: str = ""


@dataclass(frozen=True, eq=False)
class Law:
    """A named scaling law with everything fits, extrapolation, plots and reports need.

    ``nonembedding``: the law's N is Kaplan et al.'s non-embedding parameter count, so a
    fit uses ``params_nonembedding`` when the table has it, and the law's published sets
    are evaluated at that count. ``fit_to_points``: the law can be fitted to a points
    table by :func:`analysis.fitting.fit.fit_law` (a per-run loss curve such as
    ``saturating_power`` is fitted by :func:`analysis.fitting.curves.fit_curve` instead).
    ``grid_description`` names the start grid in the fit's method line. ``candidate``:
    ``--law auto`` considers the law when it picks one by backtest
    (:meth:`analysis.selection.policy.LawPolicy.choose`; with a floor only). ``parent`` and ``equal``: the law is ``parent``
    with the two parameters in ``equal`` set equal; a fit tests that constraint against
    the parent (:func:`analysis.selection.checks.misspecification_checks`).
    """

    name: str
    fn: Callable
    params: tuple[str, ...]
    inputs: tuple[str, ...]
    bounds: dict = field(default_factory=dict)
    citation: str = ""
    formula: str = ""
    form: Any = None
    start_grid: Any = None
    grid_description: str = ""
    size_terms: tuple[str, ...] = ()
    nonembedding: bool = False
    fit_to_points: bool = True
    candidate: bool = False
    parent: str = ""
    equal: tuple[str, ...] = ()
    published: Mapping[str, Published] = field(default_factory=dict)
    #: a combination's laws and their weights (:func:`analysis.laws.mix.mix_law`), as lmfit's
    #: CompositeModel holds its parts; empty for a single law
    components: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self):
        if self.form is None and self.start_grid is not None:

            object.__setattr__(self, "form", GenericForm.for_law(self))

    # ------------------------------------------------------------------ evaluation
    def __call__(self, *args, **params):
        return self.fn(*args, **params)

    def evaluate(self, params: Mapping[str, Any], N=None, D=None, C=None, U=None):
        """Evaluate with named inputs; inputs the law does not use are ignored. A law of
        the unique tokens U given none sees every token as unique (U = D)."""
        given = {"N": N, "D": D, "C": C, "U": D if U is None else U}
        missing = [k for k in self.inputs if given[k] is None]
        if missing:
            raise InputError(f"law {self.name!r} needs {', '.join(missing)}", field="inputs",
                             fix=f"pass {', '.join(self.inputs)}")
        args = [given[k] for k in self.inputs]
        return self.fn(*args, **{p: params[p] for p in self.params})

    def loss(self, params: Mapping[str, Any], N, D, U=None) -> np.ndarray:
        """L(N, D) broadcast over parameter arrays (bootstrap draws) and inputs; ``U`` (unique
        tokens) reaches only laws that have it, and defaults to D (no repetition)."""
        args = [{"N": N, "D": D, "U": D if U is None else U}[k] for k in self.inputs]
        return np.asarray(self.fn(*args, **{p: params[p] for p in self.params}), dtype=float)

    # ------------------------------------------------------------------ what the law can answer
    @property
    def needs(self) -> tuple[str, ...]:
        """Points-table columns whose variation the law's terms need."""
        return tuple(INPUT_COLUMNS[k] for k in self.inputs)

    @property
    def is_loss_in_tokens(self) -> bool:
        """A loss in tokens, L(N, D) or L(D): what the extrapolation questions need."""
        return "D" in self.inputs and set(self.inputs) <= DATA_INPUTS

    @property
    def is_joint(self) -> bool:
        """A law of both N and D (and perhaps the unique tokens U), which can compare model sizes."""
        return {"N", "D"} <= set(self.inputs) <= DATA_INPUTS

    @property
    def takes_unique_tokens(self) -> bool:
        """The law has a term in U, the unique tokens a run repeats (Muennighoff et al. 2023)."""
        return "U" in self.inputs

    @property
    def exponents(self) -> tuple[str, ...]:
        """Parameters that are exponents (a sanity check wants them positive)."""
        # a combination's parameters carry their law's name: chinchilla.alpha
        return tuple(p for p in self.params if p.split(".")[-1].split("_")[0] in ("alpha", "beta", "eta", "gamma"))

    def check_extrapolates(self) -> None:
        if not self.is_loss_in_tokens:
            raise InputError(f"law {self.name!r} is not a loss in tokens, L(N, D) or L(D)", field="law",
                             fix="use chinchilla, gadre2024 or kaplan_nd (or a per-run saturating_power curve)")

    def check_joint(self) -> None:
        """Extrapolation across sizes needs L(N, D); refuse anything else before any fitting."""
        self.check_extrapolates()
        if "N" not in self.inputs:
            raise InputError(f"law {self.name!r} has no model-size term", field="law",
                             fix="use a joint law L(N, D): chinchilla, gadre2024 or kaplan_nd")

    # ------------------------------------------------------------------ inversions (numerical defaults)
    def floor(self, params: Mapping[str, Any], N, U=None) -> np.ndarray:
        """The loss model N approaches with unlimited data, lim_{D->inf} L(N, D); here
        L(N, D_MAX), a numerical stand-in for the limit. With ``U``, a law of the unique
        tokens gives the floor of repeating U tokens forever."""
        return self.loss(params, np.asarray(N, dtype=float), D_MAX, U)

    def tokens_to_match(self, params: Mapping[str, Any], N, loss, U=None) -> np.ndarray:
        """Tokens D* with L(N, D*) = loss (with ``U`` unique tokens, for laws that have them);
        +inf where loss is at or below the model's floor.

        brentq in log D on [1, D_MAX], one solve per element: every admissible law falls
        monotonically in D but has no general inverse."""
        from scipy.optimize import brentq

        N = np.asarray(N, dtype=float)
        loss = np.asarray(loss, dtype=float)
        arrays = np.broadcast_arrays(N, loss, *[np.asarray(params[p], dtype=float) for p in self.params])
        shape = arrays[0].shape
        flat = [a.ravel() for a in arrays]
        out = np.empty(flat[0].size)
        lo, hi = 0.0, math.log(D_MAX)
        for i in range(out.size):
            n, target = flat[0][i], flat[1][i]
            p = {name: flat[2 + j][i] for j, name in enumerate(self.params)}

            def gap(x, n=n, p=p, target=target):
                return float(self.loss(p, n, math.exp(x), U)) - target

            g_lo, g_hi = gap(lo), gap(hi)
            if not (np.isfinite(g_lo) and np.isfinite(g_hi)) or g_hi >= 0:
                out[i] = np.inf  # at or below the floor within D_MAX tokens: unreachable
            elif g_lo <= 0:
                out[i] = 1.0
            else:
                out[i] = math.exp(brentq(gap, lo, hi, xtol=1e-12, rtol=1e-12))
        return out.reshape(shape)

    def optimal_allocation(self, params: Mapping[str, Any], C, flops_per_param_token: float = 6.0):
        """(N_opt, D_opt) minimising L(N, C / (k N)) (Kaplan et al. 2020, Sec. 2.1: C = 6ND):
        a dense log grid, then golden-section refinement."""
        if not self.is_joint:
            raise InputError(f"law {self.name!r} is not a law of both N and D: it has no compute-optimal "
                             "allocation", field="law",
                             fix="use chinchilla, gadre2024, kaplan_nd, or an approach1/approach2 fit")
        from scipy.optimize import minimize_scalar

        k = flops_per_param_token
        C = np.asarray(C, dtype=float)
        flat = np.atleast_1d(C).ravel()
        n_out = np.empty_like(flat)
        for i, c in enumerate(flat):
            def f(u):
                n = np.exp(u)
                return float(self.evaluate(params, N=n, D=c / (k * n)))

            grid = np.linspace(0.0, np.log(c / k), 400)
            with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
                vals = np.asarray(self.evaluate(params, N=np.exp(grid), D=c / (k * np.exp(grid))), dtype=float)
            j = int(np.nanargmin(vals))
            lo, hi = grid[max(j - 1, 0)], grid[min(j + 1, len(grid) - 1)]
            res = minimize_scalar(f, bounds=(lo, hi), method="bounded", options={"xatol": 1e-10})
            n_out[i] = np.exp(res.x)
        n = n_out.reshape(np.shape(C))
        return n, C / (k * n)

    def derived(self, params: Mapping[str, float]) -> dict[str, float]:
        """Quantities implied by the parameters that a report lists beside them (none here)."""
        return {}

    # ------------------------------------------------------------------ fitting hooks
    def select_points(self, points, frontier: bool = True):
        """The points the law is fitted to, and a note per selection made (all of them here)."""
        return points, []

    def describe_grid(self, n: int) -> str:
        return self.grid_description or f"a {n}-point grid"

    def check_fittable(self) -> None:
        if not self.fit_to_points or self.form is None:
            raise InputError(f"law {self.name!r} cannot be fitted to points", field="law",
                             fix="use one of " + ", ".join(fittable()))

# ============================================================================ the registry

#: Laws addressable by name in fits, published parameter sets and the CLI, in display order.
LAWS: dict[str, Law] = {}


def register_law(law: Law, replace: bool = False) -> Law:
    """Make ``law`` addressable by its name everywhere (fits, saved results, the CLI)."""
    if not isinstance(law, Law):
        raise InputError(f"expected a Law, got {type(law).__name__}", field="law",
                         fix="build it with analysis.laws.Law(...)")
    if law.name in LAWS and not replace and LAWS[law.name] is not law:
        raise InputError(f"a law named {law.name!r} is already registered", field="law",
                         fix="choose another name, or pass replace=True")
    taken = {s: other.name for other in LAWS.values() if other.name != law.name for s in other.published}
    clash = [s for s in law.published if s in taken]
    if clash:
        raise InputError(f"published set {clash[0]!r} already belongs to law {taken[clash[0]]!r}",
                         field="published", fix="give the published set another name")
    LAWS[law.name] = law
    return law


#: Laws built on demand from their name, as (claims(name), build(name)): a stacked
#: combination ``mix(a=0.6,b=0.4)`` (:mod:`analysis.laws.mix` adds its builder).
_BUILDERS: list[tuple[Callable[[Any], bool], Callable[[str], "Law"]]] = []


def register_builder(claims: Callable[[Any], bool], build: Callable[[str], "Law"]) -> None:
    """Let :func:`get_law` build the laws whose names ``claims`` recognises with ``build``."""
    _BUILDERS.append((claims, build))


def get_law(name) -> Law:
    """The :class:`Law` called ``name`` (or ``name`` itself when it is a Law), or an
    InputError listing the known ones."""
    if isinstance(name, Law):
        return name
    for claims, build in _BUILDERS:
        if claims(name):  # e.g. a stacked combination, named by its weights and rebuilt from them
            return build(name)
    try:
        return LAWS[name]
    except (KeyError, TypeError):
        raise InputError(f"unknown law {name!r}", field="law", fix="use one of " + ", ".join(LAWS)) from None


def fittable() -> tuple[str, ...]:
    """Names of the laws :func:`analysis.fitting.fit.fit_law` fits to points tables."""
    return tuple(n for n, law in LAWS.items() if law.fit_to_points and law.form is not None)


def published_sets() -> dict[str, tuple[Law, Published]]:
    """Every published parameter set of every registered law: name -> (law, set)."""
    return {s: (law, pub) for law in LAWS.values() for s, pub in law.published.items()}
