"""Hydra sweeps over model size and token budget.

``python -m sweeps -m experiment=demo`` trains every run of an experiment preset
(``sweeps/conf/experiment/*.yaml``); rerunning the same command after a crash skips
finished runs, resumes interrupted ones and starts missing ones, because each run's
directory is a pure function of its configuration. The sweep index (``runs.csv``) is
written when the multirun ends. From Python::

    import sweeps
    index = sweeps.run_experiment("demo", "demo_out/runs")      # a pandas DataFrame
    index = sweeps.build_index("demo_out/runs")                  # read it again later

See ``docs/sweeps.md``. Importing this package is cheap (no torch); it registers the
config schemas and the ``sweep_run`` resolver that names run directories, so that every
process a launcher starts can compose and place its job.
"""
# Deferred imports: launch, index and naming load on first use of their names (PEP 562) and job
# when Hydra first resolves ${sweep_run:}, which keeps `import sweeps` (in every Hydra process
# and in the CLI) only about 12 ms lighter, since those modules defer their own torch and pandas
# imports; schema is imported inside _register, which runs at import anyway.
from __future__ import annotations

__all__ = ["run_experiment", "compose", "build_index", "write_index", "read_index", "experiments",
           "run_name", "CONF_DIR"]

from pathlib import Path

#: The config directory of the Hydra app (config.yaml, groups, experiments, launchers).
CONF_DIR = Path(__file__).resolve().parent / "conf"


def _register() -> None:
    from omegaconf import OmegaConf

    from .schema import register

    register()

    def sweep_run(*, _root_):
        from .job import run_dir_name

        return run_dir_name(_root_)

    def sweep_label(*, _root_):
        from .job import run_dir_name

        return run_dir_name(_root_).rsplit("-", 1)[0]

    OmegaConf.register_new_resolver("sweep_run", sweep_run, replace=True, use_cache=False)
    OmegaConf.register_new_resolver("sweep_label", sweep_label, replace=True, use_cache=False)
    # ${mul:16,${data.unique_tokens}}: a budget as a multiple of another key (epochs over U)
    OmegaConf.register_new_resolver("mul", lambda a, b: float(a) * float(b), replace=True)


_register()


def experiments() -> list[str]:
    """Names of the experiment presets shipped in ``conf/experiment``."""
    return sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml"))


def __getattr__(name: str):
    # Lazy: keep `import sweeps` light for the CLI and the Hydra workers.
    if name in ("run_experiment", "compose"):
        from . import launch

        return getattr(launch, name)
    if name in ("build_index", "write_index", "read_index"):
        from . import index

        return getattr(index, name)
    if name == "run_name":
        from .naming import run_name

        return run_name
    raise AttributeError(f"module 'sweeps' has no attribute {name!r}")
