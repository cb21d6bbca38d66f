"""Public scaling-law ladders shipped with the toolkit, so fits can be tried on real runs.

Two sources, each copied as CSV tables with its licence file next to this module:

* **Porian et al. 2024**, "Resolving Discrepancies in Compute-Optimal Scaling of Language
  Models" (arXiv:2406.19146; MIT licence): IsoFLOP observations of 16 models (5M-900M
  parameters) at 12 budgets (1.25e16-2.56e19 FLOPs) in 15 configurations, with the
  authors' per-budget optima and fitted exponents.
* **Muennighoff et al. 2023**, "Scaling Data-Constrained Language Models"
  (arXiv:2305.16264; Apache-2.0): 317 runs with a number of unique tokens each, and the
  fitted constants of the data-constrained law.

Names
-----
``porian2024:DATASET/HPARAMS/WARMUP/DECAY/COUNT/LOSS`` is one configuration, the authors'
own 6-tuple (``config_id``) joined by ``/``:

==========  ==========================================================================
DATASET     ``rw`` RefinedWeb, ``owt2`` OpenWebText2
HPARAMS     ``base`` one optimizer setting for all sizes; ``tuned`` lr, batch, beta2 per size
WARMUP      ``long`` Kaplan-style (~1.6e9 tokens); ``short`` about N tokens
DECAY       ``kaplan`` cosine over a long fixed horizon (points are mid-schedule readouts);
            ``chinchilla`` cosine ending at the budget; ``const`` constant lr, no cooldown
COUNT       how N and FLOPs are counted: ``kaplan`` non-embedding without the head,
            ``standard`` with the head, ``attention`` with attention FLOPs folded into N
LOSS        ``val`` validation loss; ``train`` smoothed training loss
==========  ==========================================================================

``porian2024`` alone names the family (:func:`describe` lists its 15 configurations).
``muennighoff2023`` is the 296 runs the authors' notebook keeps (finished, not
deduplicated), ``muennighoff2023:curated`` the 182 the data-constrained law was fitted on,
``muennighoff2023:all`` all 317 (nine unfinished ones have no loss).

:func:`load` returns a points table in the columns of :func:`analysis.data.loading.load_points`
(``params``, ``tokens``, ``loss``, ``flops``, ``run``, ...); ``load_points(name)`` accepts
the same names, so ``scaling fit porian2024:rw/tuned/short/const/standard/val`` needs no
file. :func:`describe` says what the loss column means, where the data come from, the
licence and the caveats; :func:`table` reads the shipped tables as they are.
"""
from __future__ import annotations

import difflib
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from importlib import resources

import pandas as pd

from ...common.errors import InputError
from ._gadre import GADRE_CITATION, GADRE_FILES, GADRE_PARTS, GADRE_SETS, gadre_caveats, gadre_points
from ._muennighoff import (MUENNIGHOFF_CITATION, MUENNIGHOFF_FILES, MUENNIGHOFF_SUBSETS, muennighoff_caveats,
                           muennighoff_points)
from ._porian import (PORIAN_CITATION, PORIAN_FIELDS, PORIAN_FILES, porian_caveats, porian_description, porian_points,
                      porian_short)

__all__ = ["list_datasets", "load", "describe", "table", "licence_text", "is_dataset_name", "DatasetInfo",
           "PORIAN_FIELDS"]

#: Shipped tables, by the stem used in :func:`table`.
TABLES = PORIAN_FILES + MUENNIGHOFF_FILES + GADRE_FILES
FAMILIES = ("porian2024", "muennighoff2023", "gadre2024")


@lru_cache(maxsize=None)
def _read(stem: str) -> pd.DataFrame:
    if stem not in TABLES:
        raise InputError(f"no shipped table {stem!r}", field="table", fix="use one of " + ", ".join(TABLES))
    with resources.files(__name__).joinpath(f"{stem}.csv").open("r", encoding="utf-8") as f:
        return pd.read_csv(f)


def table(stem: str) -> pd.DataFrame:
    """A shipped table as the CSV holds it (a copy): ``porian2024_isoflop``,
    ``porian2024_optimal``, ``porian2024_fits``, ``porian2024_models``,
    ``muennighoff2023_runs`` or ``muennighoff2023_constants``."""
    return _read(stem).copy()


def licence_text(family: str) -> str:
    """The licence file shipped with a family's tables, verbatim."""
    family = _family(family)
    return resources.files(__name__).joinpath(f"{family}.LICENSE").read_text(encoding="utf-8")


def _porian_configs() -> list[str]:
    return list(pd.unique(_read("porian2024_fits")["config_id"]))


def _gadre_names() -> list[str]:
    return [f"gadre2024:{s}" + (f"/{p}" if p else "") for s in GADRE_SETS for p in GADRE_PARTS]


def _family(name: str) -> str:
    fam = str(name).split(":", 1)[0].strip().lower()
    if fam not in FAMILIES:
        close = difflib.get_close_matches(fam, FAMILIES, n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        raise InputError(f"unknown dataset {name!r}", field="dataset",
                         fix=f"{hint}`scaling datasets` lists the names ({', '.join(FAMILIES)}, ...)")
    return fam


def is_dataset_name(source) -> bool:
    """True for a string that names a shipped dataset family (``porian2024...``,
    ``muennighoff2023...``) or nearly does (a misspelt family): :func:`analysis.data.loading.load_points`
    sends such a string, when no file has that name, here for the data or a precise error."""
    if not isinstance(source, str):
        return False
    fam = source.split(":", 1)[0].strip().lower()
    if fam in FAMILIES:
        return True
    return "/" not in fam and "." not in fam and \
        bool(difflib.get_close_matches(fam, FAMILIES, n=1, cutoff=0.8))


def _resolve(name: str) -> tuple[str, str | None]:
    """(family, configuration or subset) for a full name; an InputError naming the fix otherwise."""
    fam = _family(name)
    rest = str(name).split(":", 1)[1].strip() if ":" in str(name) else None
    if fam == "porian2024":
        configs = _porian_configs()
        if rest is None or rest == "":
            raise InputError("porian2024 is a family of 15 configurations, not one table", field="dataset",
                             fix="name one, e.g. porian2024:rw/tuned/short/const/standard/val "
                                 "(`scaling datasets porian2024` lists them)")
        key = rest.strip("/").lower()
        if key not in configs:
            close = difflib.get_close_matches(key, configs, n=1, cutoff=0.5)
            hint = f"did you mean porian2024:{close[0]}? " if close else ""
            raise InputError(f"no configuration {rest!r} in porian2024", field="dataset",
                             fix=f"{hint}write porian2024:{'/'.join(PORIAN_FIELDS)} "
                                 "(`scaling datasets porian2024` lists the 15)")
        return fam, key
    key = (rest or "").lower()
    if fam == "gadre2024":
        names = [n.split(":", 1)[1] for n in _gadre_names()]
        if key.strip("/") not in names:
            close = difflib.get_close_matches(key, names, n=1, cutoff=0.5)
            hint = f"did you mean gadre2024:{close[0]}? " if close else ""
            raise InputError(f"no table {rest!r} in gadre2024" if rest else "gadre2024 is a family of 3 training sets",
                             field="dataset", fix=f"{hint}write gadre2024:SET or gadre2024:SET/PART with SET one of "
                             f"{', '.join(GADRE_SETS)} and PART one of {', '.join(p for p in GADRE_PARTS if p)}")
        return fam, key.strip("/")
    if key not in MUENNIGHOFF_SUBSETS:
        raise InputError(f"no subset {rest!r} in muennighoff2023", field="dataset",
                         fix="use muennighoff2023 (296 runs), muennighoff2023:curated (182) or muennighoff2023:all (317)")
    return fam, key


def load(name: str) -> pd.DataFrame:
    """The points of a dataset: one row per observation, with ``params``, ``tokens``,
    ``loss``, ``flops`` and ``run`` first (the columns of
    :func:`analysis.data.loading.load_points`), then the source's own columns. Units are counts
    of parameters and tokens, FLOPs, and nats per token. ``df.attrs`` carries the name
    and, for Porian et al., ``loss_noise_sd``: the loss noise their Approach 2 bootstrap
    assumes (used by ``approach2(..., optimum="akima")``)."""
    fam, key = _resolve(name)
    if fam == "porian2024":
        df = porian_points(_read("porian2024_isoflop"), key)
    elif fam == "gadre2024":
        df = gadre_points(_read("gadre2024_runs"), key)
    else:
        df = muennighoff_points(_read("muennighoff2023_runs"), key)
    df.attrs["dataset"] = _canonical(fam, key)
    return df


def _canonical(fam: str, key: str | None) -> str:
    return f"{fam}:{key}" if key else fam


@dataclass
class DatasetInfo:
    """What :func:`describe` says about a dataset; ``str()`` gives the text shown by
    ``scaling datasets NAME``."""

    name: str
    title: str
    description: str
    loss: str
    source: str
    citation: str
    licence: str
    licence_file: str
    caveats: list[str] = field(default_factory=list)
    rows: int | None = None
    columns: list[str] = field(default_factory=list)
    configurations: list[dict] = field(default_factory=list)
    reference: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        lines = [f"{self.name}: {self.title}", f"  {self.description}"]
        if self.rows is not None:
            lines.append(f"  rows: {self.rows}")
        lines.append(f"  loss: {self.loss}")
        if self.columns:
            lines.append("  columns: " + ", ".join(self.columns))
        if self.reference:
            lines.append("  authors' result: " + self.reference["text"])
        if self.configurations:
            pattern = ("gadre2024:SET/PART" if self.name.startswith("gadre2024")
                       else f"porian2024:{'/'.join(PORIAN_FIELDS)}")
            lines.append(f"  configurations ({pattern}):")
            width = max(len(c["name"]) for c in self.configurations)
            lines += [f"    {c['name']:<{width}}  {c['rows']:>4} rows  {c['label']}" for c in self.configurations]
        lines.append(f"  source: {self.source}")
        lines.append(f"  licence: {self.licence} (file shipped as analysis/data/datasets/{self.licence_file})")
        if self.caveats:
            lines.append("  caveats:")
            lines += [f"    - {c}" for c in self.caveats]
        lines.append("  citation:")
        lines += [f"    {ln}" for ln in self.citation.splitlines()]
        return "\n".join(lines)


_PORIAN_SOURCE = ("github.com/formll/resolving-scaling-law-discrepancies at commit 0dc60d9 (data last changed "
                  "in 859f146): the summary pickles' IsoFLOP points, per-budget optima and fitted exponents")
_MUENNIGHOFF_SOURCE = ("github.com/huggingface/datablations at commit 1370131, utils/parametric_fit.ipynb: "
                       "NAMES_TO_VAL_LOSSES (cell 1) with the notebook's parse and filters, and its fitted constants")


def describe(name: str) -> DatasetInfo:
    """What a dataset is: its loss column's meaning, source, citation, licence and caveats.
    ``porian2024`` alone describes the family and lists its 15 configurations."""
    fam = _family(name)
    family_only = ":" not in str(name) or not str(name).split(":", 1)[1].strip()
    if fam == "porian2024":
        fits = _read("porian2024_fits").set_index("config_id")
        counts = _read("porian2024_isoflop").groupby("config_id", sort=False).size()
        common = dict(source=_PORIAN_SOURCE, citation=PORIAN_CITATION, licence="MIT",
                      licence_file="porian2024.LICENSE")
        if family_only:
            confs = [{"name": f"porian2024:{c}", "label": fits.loc[c, "config_label"], "rows": int(counts[c])}
                     for c in fits.index]
            return DatasetInfo(name="porian2024", title="Porian et al. 2024, IsoFLOP observations (15 configurations)",
                               description="16 models (5M-900M parameters) at 12 budgets 1.25e16-2.56e19 FLOPs; "
                                           "each configuration is one choice of data, hyperparameters, warmup, "
                                           "decay, parameter count and loss readout",
                               loss="depends on the configuration: describe one of them",
                               caveats=porian_caveats(None), configurations=confs, **common)
        _, key = _resolve(name)
        df = load(name)
        f = fits.loc[key]
        ref = {"a": float(f["a_exponent_N"]), "a_ci95": [float(f["a_ci95_lo"]), float(f["a_ci95_hi"])],
               "b": float(f["b_exponent_D"]), "b_ci95": [float(f["b_ci95_lo"]), float(f["b_ci95_hi"])],
               "n_budgets_with_optimum": int(f["n_budgets_with_optimum"])}
        ref["text"] = (f"N_opt ~ C^a with a = {ref['a']:.3f} (95% CI {ref['a_ci95'][0]:.3f}-{ref['a_ci95'][1]:.3f}), "
                       f"b = {ref['b']:.3f}, from {ref['n_budgets_with_optimum']} budgets (Akima optimum per "
                       "budget, weighted power law; `scaling fit NAME --law approach2 --optimum akima`)")
        title, desc, loss = porian_description(key, str(f["config_label"]))
        return DatasetInfo(name=f"porian2024:{key}", title=title, description=desc, loss=loss,
                           caveats=porian_caveats(key), rows=len(df), columns=list(df.columns), reference=ref,
                           **common)
    if fam == "gadre2024":
        return _describe_gadre(name, family_only)
    key = "" if family_only else _resolve(name)[1]
    df = load(name)
    what = {"": "the 296 runs the authors' notebook keeps: finished (non-zero loss) and not deduplicated-data runs",
            "curated": "the 182 runs (outliers removed, cell 25) that R_D* and R_N* were fitted on",
            "all": "all 317 runs of the notebook's NAMES_TO_VAL_LOSSES, with 9 unfinished ones (no loss) and "
                   "12 on deduplicated data"}[key]
    return DatasetInfo(name=_canonical("muennighoff2023", key or None),
                       title="Muennighoff et al. 2023, runs with repeated data",
                       description=what + "; `unique_tokens` U is the size of the C4 subset each run repeats",
                       loss="final validation loss (nats/token, GPT-2 BPE) on the C4 validation split, as the "
                            "authors transcribed it from each run's TensorBoard logs; `tokens` counts repeats",
                       source=_MUENNIGHOFF_SOURCE, citation=MUENNIGHOFF_CITATION, licence="Apache-2.0",
                       licence_file="muennighoff2023.LICENSE", caveats=muennighoff_caveats(key), rows=len(df),
                       columns=list(df.columns), reference=_muennighoff_reference())


def _muennighoff_reference() -> dict:
    c = _read("muennighoff2023_constants").set_index("name")["value"]
    vals = {"A": c["A = exp(a)"], "B": c["B = exp(b)"], "E": c["E = exp(e)"], "alpha": c["alpha, C4 base"],
            "beta": c["beta, C4 base"], "R_D_star": c["R_D* (rd_star / ep_star)"],
            "R_N_star": c["R_N* (rn_star / n_star)"]}
    out = {k: float(v) for k, v in vals.items()}
    out["text"] = (f"C4 base law E + A/N^alpha + B/D^beta with E = {out['E']:.4f}, A = {out['A']:.2f}, "
                   f"B = {out['B']:.2f}, alpha = beta = {out['alpha']:.4f}; data-constrained decay constants "
                   f"R_D* = {out['R_D_star']:.3f}, R_N* = {out['R_N_star']:.3f} "
                   "(all constants: table('muennighoff2023_constants'))")
    return out


_GADRE_SOURCE = ("github.com/mlfoundations/scaling at commit a003c49, exp_data/models/*.json (one per trained "
                 "model), field meanings from scaling/shared.py and scaling/laws.py")


def _describe_gadre(name: str, family_only: bool) -> DatasetInfo:
    common = dict(source=_GADRE_SOURCE, citation=GADRE_CITATION, licence="MIT", licence_file="gadre2024.LICENSE",
                  caveats=gadre_caveats(),
                  loss="mean cross-entropy (nats per token) on a fixed C4 validation shard at the end of each run's "
                       "own cosine schedule, whatever the training set")
    title = "Gadre et al. 2024, over-trained runs (10.6M-6.9B parameters, 5-640 tokens per parameter)"
    if family_only:
        confs = [{"name": n, "label": GADRE_PARTS[n.split(":", 1)[1].partition("/")[2]],
                  "rows": len(load(n))} for n in _gadre_names()]
        return DatasetInfo(name="gadre2024", title=title,
                           description="3 training sets (c4, rpj, rw); four small sizes at M = D/N of 5 to 640, "
                                       "a 1B at M = 20 and one longer M, a 7B at M = 20",
                           configurations=confs, **common)
    _, key = _resolve(name)
    df = load(name)
    set_name, _, part = key.partition("/")
    ref = {"text": "on rpj the authors' notebook predicts the 1B (M = 640) and the 7B (M = 20) within 0.71% and "
                   "0.73% from the five-run protocol (gadre2024:rpj/paper)"} if set_name == "rpj" else {}
    return DatasetInfo(name=f"gadre2024:{key}", title=title,
                       description=f"training set {GADRE_SETS[set_name]}: {GADRE_PARTS[part]}",
                       rows=len(df), columns=list(df.columns), reference=ref, **common)


def list_datasets() -> dict[str, str]:
    """Every loadable name -> a one-line description, in a stable order."""
    fits = _read("porian2024_fits").set_index("config_id")
    counts = _read("porian2024_isoflop").groupby("config_id", sort=False).size()
    out = {}
    for c in fits.index:
        out[f"porian2024:{c}"] = (f"Porian et al. 2024, {fits.loc[c, 'config_label']}: {int(counts[c])} IsoFLOP "
                                  f"points ({porian_short(c)})")
    runs = _read("muennighoff2023_runs")
    sizes = {"": int(runs["kept_by_notebook_filter"].sum()), "curated": int(runs["in_curated_fit_set"].sum()),
             "all": len(runs)}
    for key, label in MUENNIGHOFF_SUBSETS.items():
        out[_canonical("muennighoff2023", key or None)] = \
            f"Muennighoff et al. 2023, {sizes[key]} runs on repeated C4 data ({label})"
    for name in _gadre_names():
        set_name, _, part = name.split(":", 1)[1].partition("/")
        out[name] = f"Gadre et al. 2024, {GADRE_SETS[set_name]}: {len(load(name))} runs ({GADRE_PARTS[part]})"
    return out

