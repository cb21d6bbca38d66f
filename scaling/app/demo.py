"""The end-to-end demo behind ``scaling demo`` and ``make demo``: a real scaling study on
the built-in corpus, from nothing to a report.

:func:`run_demo` composes the toolkit's own pieces, in four stages:

1. the ``demo`` sweep exactly as ``python -m sweeps -m experiment=demo`` runs it
   (``sweeps/conf/experiment/demo.yaml``: each model size at its own token budget, WSD
   runs with cooldown branches at 1/8, 1/4 and 1/2 of each budget, so 4 token budgets
   per size, one run per core at a time), trained through :func:`sweeps.run_experiment`;
   finished runs are found by their configs and reused, so a second call trains nothing
   and starts no training process;
2. the joint law with bootstrap intervals, by default the candidate with the lowest
   backtest error (``law="auto"``: Chinchilla Approach 3, Hoffmann et al. 2022, eq. 2,
   Gadre et al. 2024 or Kaplan et al. 2020's L(N, D)), and each model's own stable-phase
   curve L(D) = E + B / D^beta (:func:`analysis.extrapolation.extrapolate.run_study`);
3. the compute-matched extrapolation of the smaller models against the largest, from the
   joint law and from each model's own curve, and sanity checks of the fitted law
   (:func:`analysis.reporting.overview.law_checks`);
4. the report, its figures, the fit as JSON and the extrapolation as CSV
   (:func:`analysis.reporting.report.build_report`, as ``scaling report`` writes them).

Everything is printed as it happens; the last lines name the report and the figures.
This module sits on the composition-root side: it drives the sweeps (Hydra, torch in the
launched processes) and the analysis, which never imports either (docs/architecture.md).
Its defaults live in :mod:`scaling.defaults`, so ``scaling --help`` does not import it.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

from hydra.errors import HydraException
from omegaconf.errors import OmegaConfBaseException

import sweeps
from analysis.common.errors import ConfigError, InputError
from analysis.laws import get_law
from analysis.selection.checks import checks_text
from analysis.common.records import check_output, writing_output
from analysis.reporting.report import build_report
from analysis.extrapolation.study import run_study
from analysis.extrapolation.specs import model_names
from analysis.common.text import model_label, sci, si
from scaling.config import PRESETS
from scaling.defaults import DEMO_BOOTSTRAP, DEMO_OUT, DEMO_REPORT_SUBDIR, DEMO_SWEEP_SUBDIR
from sweeps.index import build_index
from sweeps.launch import _is_sweep, compose, plan, run_experiment

__all__ = ["run_demo", "DemoResult", "DEFAULT_OUT", "DEFAULT_BOOTSTRAP", "SWEEP_SUBDIR",
           "REPORT_SUBDIR", "parse_grid", "grid_overrides", "format_tokens"]

DEFAULT_OUT = DEMO_OUT
DEFAULT_BOOTSTRAP = DEMO_BOOTSTRAP
SWEEP_SUBDIR = DEMO_SWEEP_SUBDIR
REPORT_SUBDIR = DEMO_REPORT_SUBDIR
#: The notebooks of a source checkout (a pip install has none: they are not package data).
NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
#: Statuses after which a run will not change without being resubmitted.
_BROKEN = ("failed", "diverged")


@dataclass
class DemoResult:
    """What one demo run produced and where."""

    out_dir: Path
    sweep_dir: Path
    report_dir: Path
    study: object                     # analysis.extrapolation.extrapolate.Study
    checks: list                      # analysis.reporting.overview.Check
    written: dict[str, Path]          # file name -> path, report and figures
    trained: list[str] = field(default_factory=list)   # runs this call started or resumed
    reused: list[str] = field(default_factory=list)    # finished runs found and reused
    failed: list[str] = field(default_factory=list)    # runs that failed or diverged
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def report(self) -> Path:
        return self.written["report.md"]

    @property
    def figures(self) -> list[Path]:
        return [p for name, p in self.written.items() if name.endswith(".png")]


def _shown(path: Path) -> str:
    """A path as the user should type it: relative to the working directory when inside it."""
    path = Path(path).resolve()
    try:
        return str(path.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _indent(text: str, pad: str = "    ") -> str:
    return "\n".join(pad + line if line else line for line in text.splitlines())


def run_demo(out_dir: str | os.PathLike = DEFAULT_OUT, overrides: Sequence[str] = (), experiment: str = "demo",
             grid: Optional[Sequence[tuple[str, float]]] = None, launcher: Optional[str] = None,
             lanes: Optional[int] = None, bootstrap: int = DEFAULT_BOOTSTRAP, seed: int = 0,
             resample: str = "auto", n_jobs: Optional[int] = None, env: Optional[dict] = None, law: str = "auto",
             echo: Callable[[str], None] = lambda s: print(s, flush=True)) -> DemoResult:
    """Run the demo study into ``out_dir`` (sweep in ``runs/``, report in ``report/``).

    The sweep is the experiment preset's own multirun, through its own launcher (the demo:
    joblib, one run per core, one torch thread each), so ``python -m sweeps -m
    experiment=demo`` trains the same runs into the same run directories. ``overrides``
    are Hydra overrides of the experiment (``model=nano,micro,tiny``, ``tokens=2e5``,
    ``++sweep.tokens_by_model.nano=2e6``); ``grid`` is a shorthand for the last kind,
    (model preset, tokens) pairs that become ``model=`` and ``sweep.tokens_by_model``
    overrides (:func:`grid_overrides`). ``launcher`` replaces the experiment's launcher,
    and ``lanes`` sets the joblib launcher's number of workers. ``bootstrap`` refits give
    the intervals (0: asymptotic ones only), drawing ``resample`` as
    :func:`analysis.fitting.fit.fit_law` takes it (``auto``: whole runs when there are enough runs
    per model size, else points, and the fit's report says which and why); ``n_jobs``
    bounds the bootstrap's processes; ``env`` adds environment variables for the training
    processes. ``law`` is the joint law, as :func:`analysis.extrapolation.study.run_study` takes it
    (``auto``: the law with a loss floor that best predicts larger sizes from smaller ones,
    ties going to fewer parameters, and the output says which and why). ``echo`` receives every line of progress and results.

    Runs that failed are reported and left out of the fit; the study goes on when the
    remaining points still allow a fit.
    """
    if bootstrap < 0:
        raise InputError("must be 0 or more", field="bootstrap", fix="e.g. --bootstrap 300")
    if lanes is not None and lanes < 1:
        raise InputError("must be 1 or more", field="lanes", fix="e.g. --lanes 2")
    if law != "auto":  # before anything trains: a misspelt law would otherwise fail after the sweep
        get_law(law).check_joint()
    t_start = time.perf_counter()
    out = Path(out_dir).expanduser()
    sweep_dir, report_dir = out / SWEEP_SUBDIR, out / REPORT_SUBDIR
    check_output(sweep_dir, "out_dir", directory=True)
    seconds: dict[str, float] = {}
    overrides = list(overrides) + (grid_overrides(grid) if grid is not None else [])
    root = [f"sweep.root={sweep_dir.resolve()}"]

    echo(f"scaling demo: the {experiment!r} scaling study, from training to a report, in {_shown(out)}")
    jobs = _plan(experiment, overrides + root)
    if grid is not None:
        asked = {m: float(t) for m, t in grid}
        # Budgets are rounded to whole batches; anything further off was never applied.
        ignored = sorted({_model_of(j) for j in jobs if abs(j.tokens - asked.get(_model_of(j), j.tokens))
                          > 0.1 * asked.get(_model_of(j), j.tokens)})
        if ignored:
            raise InputError(f"the budgets of {', '.join(ignored)} were not applied: experiment {experiment!r} "
                             "does not take its tokens from sweep.tokens_by_model", field="--grid",
                             fix="give model= and tokens= overrides instead")
    if len({j.params for j in jobs}) < 2:
        # found here, not after training: a joint law needs two model sizes or more
        raise InputError(f"the sweep has one model size ({si(jobs[0].params)} parameters), and a scaling law "
                         "needs two or more", field="--grid" if grid is not None else "overrides",
                         fix="add a second size, e.g. --grid pico=2e6,nano=1e6")
    if lanes is not None:
        if _launcher_of(experiment, overrides, launcher) != "joblib":
            raise InputError("sets the joblib launcher's workers, and this sweep uses another launcher",
                             field="lanes", fix="drop --lanes, or use --launcher joblib")
        overrides.append(f"hydra.launcher.n_jobs={lanes}")
    todo = [j for j in jobs if j.action != "skip"]
    done = [j for j in jobs if j.action == "skip" and j.status == "completed"]
    sizes = sorted({j.params for j in jobs})
    tokens = sorted({j.tokens for j in jobs})
    branches = max(len(j.branches) for j in jobs)
    echo(f"[1/4] Sweep: {len(sizes)} model sizes ({si(sizes[0])} .. {si(sizes[-1])} parameters, "
         f"{sizes[-1] / sizes[0]:.0f}x), one run each to "
         + (f"{si(tokens[0])} .. {si(tokens[-1])}" if len(tokens) > 1 else si(tokens[0])) + " tokens"
         + (f" with {branches} cooldown branches ({branches + 1} token budgets per size)" if branches else "")
         + f" -> {_shown(sweep_dir)}")
    t0 = time.perf_counter()
    if todo:
        echo(f"    {len(todo)} run(s) to train ({sci(sum(j.flops or 0.0 for j in todo))} FLOPs, detailed count), "
             f"{len(done)} finished already and reused; training progress follows")
        kind = _launcher_of(experiment, overrides, launcher)
        if kind == "joblib":
            # As sweeps.job gives each joblib worker its share of the cores.
            cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
            n = lanes or cores
            workers = f"{min(n, len(todo))} at a time, {max(1, cores // n)} torch thread(s) each"
        else:
            workers = f"through the {kind} launcher"
        echo(f"    runs start in this order, {workers}: "
             + ", ".join(f"{_model_of(j)} to {si(j.tokens)} tokens" for j in todo))
        run_experiment(experiment, sweep_dir, overrides=overrides, launcher=launcher, env=env)
    else:
        echo(f"    all {len(jobs)} runs finished already: reusing them, nothing to train")
    index = build_index(sweep_dir)
    finals = index[index["point"] == "final"]
    others = sorted(set(finals["run"].astype(str)) - {j.run_dir.name for j in jobs})
    if others:
        echo(f"    note: {len(others)} other run(s) in {_shown(sweep_dir)} are part of the study too: "
             + ", ".join(others))
    failed = sorted(finals.loc[finals["status"].isin(_BROKEN), "run"].astype(str))
    for _, row in finals[finals["status"].isin(_BROKEN)].iterrows():
        echo(f"    run {row['run']} {row['status']}: {row['error']}")
    seconds["sweep"] = time.perf_counter() - t0
    echo(f"    sweep done in {seconds['sweep']:.0f} s: {int((finals['status'] == 'completed').sum())} of "
         f"{len(finals)} runs completed, {int(index['loss'].notna().sum())} (N, D, loss) points")

    t0 = time.perf_counter()
    own = "and each model's own curve L(D) = E + B/D^beta on its stable phase"
    if law == "auto":
        echo(f"[2/4] Choosing the joint law by backtest at distance (--law auto: each candidate with a floor fitted "
             f"to the smaller sizes and scored on the larger ones), fitting it with {bootstrap} bootstrap refits, "
             f"{own}")
    elif law == "chinchilla":
        echo(f"[2/4] Fitting Chinchilla Approach 3, L = E + A/N^alpha + B/D^beta (Hoffmann et al. 2022, eq. 2), "
             f"with {bootstrap} bootstrap refits, {own}")
    else:
        echo(f"[2/4] Fitting {law} with {bootstrap} bootstrap refits, {own}")
    study = run_study(sweep_dir, law=law, bootstrap=bootstrap, seed=seed, n_jobs=n_jobs, curves=True,
                      resample=resample)
    if study.checked is not None and study.checked.choice is not None:
        echo(f"    {study.checked.choice.reason}")
    if study.checked is not None and study.checked.short_runs.get("note"):
        echo(f"    {study.checked.short_runs['note']}")
    checks = study.checks
    # failed and warned checks stand above every number (the full list follows the answers)
    problems = [c for c in checks if c.status != "ok"]
    if problems:
        echo("    Checks that did not pass (failures first):")
        echo(_indent(checks_text(problems), "      "))
    echo(_indent(study.fit.report()))
    if study.curve_fits:
        echo("    Each model's own run (stable phase, L(D) = E + B/D^beta):")
        names = model_names(study.points)
        for n, c in sorted(study.curve_fits.items()):
            echo(f"      {model_label(n, names.get(n), 'N='):>14}  E={c.params['E']:.4g}  B={c.params['B']:.4g}  "
                 f"beta={c.params['beta']:.4g}  ({c.n_points} points)")
    for note in study.notes:
        echo(f"    note: {note}")
    seconds["fit"] = time.perf_counter() - t0

    echo("[3/4] Compute-matched extrapolation: each smaller model trained on the largest model's compute "
         "(joint law; 'own curve': that model's run alone)")
    failed_checks = [c for c in checks if c.status == "fail"]
    if failed_checks:
        echo("    These answers fail a check (above, and in the list below):")
        echo(_indent(checks_text(failed_checks), "      "))
    echo(_indent(study.result.table()))
    echo("    Sanity checks of the table and the fitted law (failures first):")
    echo(_indent(checks_text(checks), "      "))

    t0 = time.perf_counter()
    echo(f"[4/4] Writing the report and figures to {_shown(report_dir)}")
    with writing_output("out_dir", report_dir):
        written = build_report(None, report_dir, study=study, title=f"Scaling study: the {experiment} sweep")
    seconds["report"] = time.perf_counter() - t0
    seconds["total"] = time.perf_counter() - t_start

    figures = [name for name in written if name.endswith(".png")]
    names = "01_loss_vs_tokens.ipynb, 02_fit_scaling_laws.ipynb, 03_undertraining.ipynb"
    if NOTEBOOKS.is_dir():
        echo(f"Notebooks: notebooks/{names} (parameter sweep_dir = {str(sweep_dir.resolve())!r})")
    else:  # installed with pip: the notebooks come with the source checkout, not the package
        echo(f"Notebooks: notebooks/ of the source repository ({names}; not installed by pip), with parameter "
             f"sweep_dir = {str(sweep_dir.resolve())!r}")
    echo(f"Done in {seconds['total'] / 60:.1f} min (sweep {seconds['sweep']:.0f} s: {len(todo)} run(s) trained, "
         f"{len(done)} reused; analysis {seconds['fit'] + seconds['report']:.0f} s)"
         + (f"; {len(failed)} run(s) failed: {', '.join(failed)}" if failed else ""))
    echo(f"Report:  {_shown(written['report.md'])} (and report.html; fit.json, extrapolation.csv beside it)")
    echo(f"Figures: {', '.join(_shown(written[name]) for name in figures)}")
    return DemoResult(out_dir=out, sweep_dir=sweep_dir, report_dir=report_dir, study=study, checks=checks,
                      written=written, trained=[j.run_dir.name for j in todo],
                      reused=[j.run_dir.name for j in done], failed=failed, seconds=seconds)


def format_tokens(t: float) -> str:
    """A token count as a Hydra override value: 32768, 8e6."""
    if float(t).is_integer() and t < 1e5:
        return str(int(t))
    return f"{t:.6g}".replace("e+0", "e").replace("e+", "e")


def parse_grid(text: str) -> tuple[tuple[str, float], ...]:
    """``"nano=8e6,mini=1e6"`` -> ``(("nano", 8e6), ("mini", 1e6))``, checked against the presets."""

    out = []
    for item in [x.strip() for x in str(text).split(",") if x.strip()]:
        model, _, tokens = item.partition("=")
        try:
            value = float(tokens)
        except ValueError:
            value = -1.0
        if model not in PRESETS or not value > 0:
            raise InputError(f"cannot read {item!r}", field="--grid",
                             fix="list MODEL=TOKENS pairs such as nano=8e6,mini=1e6 with models from "
                                 + ", ".join(PRESETS))
        out.append((model, value))
    if not out:
        raise InputError("no runs given", field="--grid", fix="e.g. --grid nano=8e6,mini=1e6")
    return tuple(out)


def grid_overrides(grid: Sequence[tuple[str, float]]) -> list[str]:
    """(model, tokens) pairs as Hydra overrides of an experiment: the models to sweep, in
    this order, and each one's budget in ``sweep.tokens_by_model`` (added when the
    experiment has no entry for it)."""
    if not grid:
        raise InputError("no runs in the grid", field="grid", fix="e.g. --grid nano=8e6,mini=1e6")
    return ["model=" + ",".join(m for m, _ in grid)] + [
        f"++sweep.tokens_by_model.{m}={format_tokens(t)}" for m, t in grid]


def _model_of(job) -> str:
    """The model preset of a planned job, from its run directory's readable name."""
    return job.run_dir.name.split(",", 1)[0].split("=", 1)[1]


def _launcher_of(experiment: str, overrides: list[str], launcher: Optional[str]) -> str:
    """The launcher a multirun of ``experiment`` uses: ``launcher``, else the experiment's."""
    if launcher:
        return launcher

    cfg = compose(experiment, [o for o in overrides if not _is_sweep(o)], return_hydra_config=True)
    cls = str(cfg.hydra.launcher.get("_target_", "")).rsplit(".", 1)[-1]
    return {"JoblibLauncher": "joblib", "SlurmLauncher": "submitit_slurm",
            "LocalLauncher": "submitit_local"}.get(cls, "basic")


def _plan(experiment: str, overrides: list[str]):
    """The sweep's jobs (sweeps.launch.plan), Hydra's errors turned into one line."""

    if experiment not in sweeps.experiments():
        raise InputError(f"unknown experiment {experiment!r}", field="experiment",
                         fix="use one of " + ", ".join(sweeps.experiments()))
    try:
        jobs = plan(experiment, overrides)
    except (HydraException, OmegaConfBaseException) as e:
        raise ConfigError(str(e).strip().splitlines()[0], field="overrides",
                          fix="check the key against `python -m sweeps --cfg job`") from None
    bad = [j for j in jobs if j.error]
    if bad:
        raise ConfigError(f"{bad[0].run_dir.name}: {bad[0].error}", field="overrides",
                          fix="see `scaling sweep --dry-run " + experiment + "` for every run's problem")
    if not jobs:
        raise ConfigError("the sweep has no runs", field="overrides", fix="check the grid overrides")
    return jobs
