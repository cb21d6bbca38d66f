"""Running and planning sweeps from Python.

:func:`run_experiment` launches ``python -m sweeps -m experiment=NAME ...`` in a child
process (the same command a researcher types, so the same Hydra machinery, launchers
and callbacks run) and returns the sweep index. :func:`plan` expands a multirun into its
jobs without running anything: each job's training config, run directory and what a
submission would do with it (start, resume, retry or skip), plus its size and cost.
"""
# Deferred imports: scaling.data.corpus and scaling.data.shards (numpy) are imported where a plan reads the
# corpus, which keeps numpy out of `python -m sweeps` and `scaling sweep` until then; .job,
# .naming, .index, scaling.config and scaling.flops are light, deferred for no gain, and may move
# up.
from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, List, Optional, Sequence

from analysis.common.errors import ConfigError, InputError

#: Launcher presets (``hydra/launcher=NAME``).
LAUNCHERS = ("basic", "joblib", "submitit_local", "submitit_slurm")

#: Exit status of ``python -m sweeps`` when the sweep ran but some runs failed or diverged.
EXIT_RUNS_FAILED = 3

#: A warnings filter for joblib's resource tracker (a process the joblib launcher starts,
#: which inherits the environment). When Ctrl-C stops the workers between creating a
#: semaphore and unregistering it, the tracker unlinks it at shutdown, as it should, and
#: prints two "leaked semlock" warnings: nothing was lost, and the interrupt's one line
#: must stay one line.
QUIET_RESOURCE_TRACKER = "ignore:resource_tracker:UserWarning:joblib.externals.loky.backend.resource_tracker"


def quiet_resource_tracker(environ) -> None:
    """Add :data:`QUIET_RESOURCE_TRACKER` to ``environ['PYTHONWARNINGS']``, keeping the user's filters."""
    have = [w for w in environ.get("PYTHONWARNINGS", "").split(",") if w]
    if QUIET_RESOURCE_TRACKER not in have:
        environ["PYTHONWARNINGS"] = ",".join(have + [QUIET_RESOURCE_TRACKER])


def compose(experiment: Optional[str] = None, overrides: Sequence[str] = (), return_hydra_config: bool = False):
    """The composed config of one job (Hydra's compose API), as ``python -m sweeps`` would see it.

    Sweep overrides (``a=1,2``) are not expanded here; see :func:`plan`. Hydra's own
    errors (unknown key, unknown group option) propagate with Hydra's message.
    """
    # The schemas and resolvers this needs are registered already: importing this module
    # ran sweeps/__init__.py first (an `import sweeps` here was an import cycle).
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module

    ov = ([f"experiment={experiment}"] if experiment else []) + list(overrides)
    with initialize_config_module(config_module="sweeps.conf", version_base="1.3"):
        return hydra_compose(config_name="config", overrides=ov, return_hydra_config=return_hydra_config)


@dataclass
class PlannedRun:
    """One job of a multirun, resolved but not run."""

    overrides: List[str]
    run_dir: Path
    status: Optional[str]     # the status recorded in the run directory, None if new
    action: str               # what a submission does: start, resume, retry or skip
    params: Optional[int] = None
    params_nonembedding: Optional[int] = None
    tokens: Optional[int] = None
    flops: Optional[float] = None
    branches: tuple = ()
    error: Optional[str] = None  # the config does not resolve: the job would fail with this
    config: Any = None           # the TrainConfig and its Plan, where it resolved
    plan: Any = None
    train_tokens: Optional[int] = None  # the corpus's training split (an upper bound unless epochs_exact)
    epochs: Optional[float] = None      # tokens / train_tokens
    epochs_exact: bool = True
    warnings: List[str] = field(default_factory=list)  # scaling.data.corpus.data_warnings
    # filled in by sweeps.estimate.estimate_times
    tokens_per_s: Optional[float] = None
    seconds: Optional[float] = None
    estimate_from: Optional[str] = None
    lanes: int = 1  # jobs the launcher runs side by side

    def to_dict(self) -> dict:
        return {"run": self.run_dir.name, "status": self.status or "new", "action": self.action,
                "params": self.params, "params_nonembedding": self.params_nonembedding, "tokens": self.tokens,
                "flops": self.flops, "branches": len(self.branches), "error": self.error,
                "overrides": " ".join(self.overrides), "run_dir": str(self.run_dir),
                "epochs": self.epochs, "warnings": list(self.warnings), "tokens_per_s": self.tokens_per_s,
                "seconds": self.seconds, "estimate_from": self.estimate_from}


def job_overrides(experiment: Optional[str] = None, overrides: Sequence[str] = ()) -> List[List[str]]:
    """The override lists of every job of a multirun, in Hydra's order.

    As Hydra's basic sweeper does: the experiment's ``hydra.sweeper.params`` first, then
    the command line, a key on the command line replacing the same key's params.
    """
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    base = compose(experiment, [o for o in overrides if not _is_sweep(o)], return_hydra_config=True)
    params = [f"{k}={v}" for k, v in (base.hydra.sweeper.get("params") or {}).items()]
    parsed = OverridesParser.create().parse_overrides(params + list(overrides))
    (batch,) = BasicSweeper.split_arguments(parsed, None)
    head = [f"experiment={experiment}"] if experiment else []
    return [head + job for job in batch]


def _is_sweep(override: str) -> bool:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return OverridesParser.create().parse_override(override).is_sweep_override()


def plan(experiment: Optional[str] = None, overrides: Sequence[str] = ()) -> List[PlannedRun]:
    """Every job of a multirun with its run directory, its recorded status and what a
    submission would do, its exact size, tokens and FLOPs. Nothing is trained or written."""
    from analysis.common.errors import ToolkitError
    from scaling import config as C

    from scaling.data.corpus import data_warnings

    from .job import job_identity, launcher_threads, next_action
    from .naming import vocab_size

    out = []
    corpora: dict = {}  # data config -> (train tokens, exact): one look at each corpus
    for ov in job_overrides(experiment, overrides):
        cfg = compose(None, ov, return_hydra_config=True)  # the launcher decides a job's threads
        run_dir, tc, sweep, err = job_identity(cfg)
        _, status, action = next_action(run_dir, sweep)
        pr = PlannedRun(overrides=ov, run_dir=run_dir, status=status, action=action,
                        error=str(err) if err else None)
        if tc is not None:
            try:
                from scaling import flops as F

                p = C.resolve(tc, vocab_size(tc))
                pr.params = F.count_params(p.model)
                pr.params_nonembedding = F.nonembedding_params(p.model)
                pr.tokens = p.tokens
                pr.flops = p.flops_per_token * p.tokens
                pr.branches = p.branches
                threads, pr.lanes = launcher_threads(cfg.hydra)
                if tc.threads is None:  # as the job will set them (sweeps.job._set_threads)
                    tc.threads = threads
                pr.config, pr.plan = tc, p
                pr.train_tokens, pr.epochs_exact = _train_tokens(tc.data, corpora)
                pr.epochs = p.tokens / pr.train_tokens if pr.train_tokens else None
                pr.warnings = data_warnings(p.model, p.tokens, pr.train_tokens, tc.data, pr.epochs_exact)
            except ToolkitError as e:
                pr.error = str(e)
        out.append(pr)
    return out


def _train_tokens(data, seen: dict) -> tuple:
    import json

    from scaling.config import to_dict
    from scaling.data.corpus import train_tokens_estimate

    key = json.dumps(to_dict(data), sort_keys=True)
    if key not in seen:
        _check_source(data)  # a missing corpus fails the dry run as it would fail the run
        seen[key] = train_tokens_estimate(data)
    return seen[key]


def _check_source(data) -> None:
    """The DataError a run would meet first for ``data.source`` (missing, or no documents in
    it); the estimate alone turns that into an unknown size."""
    from scaling.data.corpus import list_documents
    from scaling.data.shards import shard_paths

    if data.source == "stdlib" or shard_paths(data.source):
        return
    list_documents(data)


#: Set in the child ``python -m sweeps`` that :func:`run_experiment` launches: on Ctrl-C the
#: caller prints its own one line, so the child prints none.
PARENT_REPORTS_INTERRUPT = "SWEEPS_PARENT_REPORTS_INTERRUPT"


def run_experiment(experiment: Optional[str], out_dir: Optional[str | os.PathLike] = None,
                   overrides: Iterable[str] = (), launcher: Optional[str] = None, quiet: bool = False,
                   check: bool = True, env: Optional[dict] = None, timeout: Optional[float] = None):
    """Run (or resume) an experiment preset as a multirun and return its index (DataFrame).

    Parameters
    ----------
    experiment:
        A preset in ``sweeps/conf/experiment`` (``demo``, ``isoflop``, ``overtrain``,
        ``llama_ladder``), or None for the bare config plus ``overrides``.
    out_dir:
        The sweep directory (``sweep.root``); default ``runs/<experiment>``.
    overrides:
        Hydra overrides, e.g. ``["model=nano,micro", "tokens=1e6"]``.
    launcher:
        ``basic`` (serial, one process), ``joblib`` (parallel processes on this machine),
        ``submitit_local`` or ``submitit_slurm``; None keeps the experiment's own choice
        (the demo runs two jobs side by side; the others default to ``basic``).
    quiet:
        Capture the child's output instead of passing it through (it is attached to the
        error if the launch fails).
    check:
        Raise :class:`~analysis.common.errors.ConfigError` if the sweep could not run at all
        (a config that does not compose); runs that failed are not an error here, they
        are in the index with ``status == "failed"``.

    Calling it again with the same arguments trains nothing new: finished runs are
    skipped, interrupted ones resumed (see :mod:`sweeps.job`).
    """
    from .index import read_index

    if launcher is not None and launcher not in LAUNCHERS:
        raise InputError(f"unknown launcher {launcher!r}", field="launcher", fix="use one of " + ", ".join(LAUNCHERS))
    overrides = list(overrides)
    cmd = [sys.executable, "-m", "sweeps", "-m"]
    if experiment:
        cmd.append(f"experiment={experiment}")
    if out_dir is not None:
        cmd.append(f"sweep.root={Path(out_dir).expanduser().resolve()}")
    if launcher is not None:
        cmd.append(f"hydra/launcher={launcher}")
    cmd += overrides
    child_env = {**os.environ, **(env or {}), PARENT_REPORTS_INTERRUPT: "1"}
    # The child must import this checkout's packages even when run from elsewhere.
    repo = str(Path(__file__).resolve().parents[1])
    child_env["PYTHONPATH"] = os.pathsep.join(p for p in (repo, child_env.get("PYTHONPATH")) if p)
    proc = subprocess.run(cmd, env=child_env, text=True, timeout=timeout,
                          stdout=subprocess.PIPE if quiet else None, stderr=subprocess.STDOUT if quiet else None)
    if proc.returncode not in (0, EXIT_RUNS_FAILED) and check:
        tail = (proc.stdout or "").strip().splitlines()[-1:] if quiet else []
        raise ConfigError(f"the sweep did not run (exit status {proc.returncode})"
                          + (f": {tail[0]}" if tail else ""), field="experiment",
                          fix="run `python -m sweeps -m " + " ".join(cmd[4:]) + "` to see Hydra's full message")
    return read_index(Path(out_dir) if out_dir is not None else sweep_root(experiment, overrides))


def sweep_root(experiment: Optional[str] = None, overrides: Sequence[str] = ()) -> Path:
    """The sweep directory (``sweep.root``) an experiment with these overrides writes to."""
    cfg = compose(experiment, [o for o in overrides if not _is_sweep(o)])
    return Path(os.path.abspath(os.path.expanduser(str(cfg.sweep.root))))
