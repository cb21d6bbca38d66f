"""Structured-config schemas of a sweep job, registered in Hydra's ConfigStore.

The root schema is the trainer's :class:`scaling.config.TrainConfig` plus one ``sweep``
node of sweep-only options, so every training key keeps its name on the command line
(``tokens=2e6``, ``optim.lr=1e-3``) and a misspelt key fails with OmegaConf's
"Key ... is not in struct" message before any job starts (Hydra's structured-config
schema pattern: ``config.yaml`` lists ``sweep_schema`` first in its defaults list).

The ``model`` group's presets are stored here too, one per row of
:data:`scaling.config.PRESETS`, so the ladder is written down once: ``model=nano`` selects
a node ``{model: nano, model_params: null}`` at the top level, as a YAML file
``conf/model/nano.yaml`` with ``# @package _global_`` would. Only ``model=auto`` (a shape
from a target size, not a row of the table) is a file, and YAML presets in a config
directory the user adds (``--config-dir DIR``, or ``hydra.searchpath``) join the group
as usual. Give them new names: a file named like a preset would shadow it, and Hydra
warns that it is matched against the stored node (its deprecated automatic schema
matching).

The launcher presets in ``conf/hydra/launcher/`` shadow the plugins' own options of the
same name and extend copies of the plugins' dataclasses stored here under other names,
so a misspelt launcher field fails in the same way.

This module imports neither torch nor numpy.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional

from scaling.config import PRESETS, TrainConfig

#: Name of the root schema in the ConfigStore (referenced by ``conf/config.yaml``).
ROOT_SCHEMA = "sweep_schema"
#: The config group of the model presets.
MODEL_GROUP = "model"


@dataclass
class SweepOptions:
    """Options of the sweep itself; none of them enter the training config or its hash."""

    name: str = "sweep"                    # sweep name; experiments set their own
    root: str = "runs/${sweep.name}"       # sweep directory: one subdirectory per run, plus the index
    retry_failed: bool = True              # resubmitting re-runs runs marked failed (resuming from their checkpoint)
    retry_diverged: bool = False           # divergence is deterministic: retrying the same config diverges again
    # Per-size rules applied before the run's hash is taken: "none"; "olmo" for the OLMo
    # ladder's LR and batch-size rules (sweeps.naming.apply_size_rules); "inverse_width"
    # for LR = optim.lr x base_width / d_model (sweeps.naming.apply_inverse_width_lr).
    size_rules: str = "none"
    base_width: int = 128
    # WSD cooldown branches given relative to each model, resolved to schedule.branches
    # (absolute tokens) from the model's exact parameter count or the run's budget.
    branch_tokens_per_param: List[float] = field(default_factory=list)
    branch_fracs: List[float] = field(default_factory=list)
    # Token budget per model preset, for studies whose sizes train to different budgets
    # (the demo): a preset sets `tokens: ${sweep.tokens_by_model.${model}}`, so each job's
    # budget is resolved from its model before the run's hash is taken, and `tokens=...`
    # on the command line still sets one budget for every size.
    tokens_by_model: Dict[str, float] = field(default_factory=dict)
    # Warmup in tokens per parameter (OLMo's ladder warms up over about N tokens), resolved
    # to schedule.warmup_tokens; keeps early WSD branches after the warmup on every size.
    warmup_tokens_per_param: Optional[float] = None
    # IsoFLOP grids (Hoffmann et al. 2022, Approach 2): with model=auto, size each model
    # as isoflop_ratio x the compute-optimal N for its FLOP budget at isoflop_tpp tokens
    # per parameter, N_opt = sqrt(C / (6 * tpp)) from C = 6 N D and D = tpp * N.
    isoflop_ratio: Optional[float] = None
    isoflop_tpp: float = 20.0
    index_parquet: bool = True             # also write runs.parquet when pyarrow is installed


@dataclass
class SweepJobConfig(TrainConfig):
    """One job of a sweep: a full training config plus the ``sweep`` options."""

    sweep: SweepOptions = field(default_factory=SweepOptions)


def register() -> None:
    """Store the schemas in Hydra's ConfigStore (idempotent; cheap)."""
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    cs.store(name=ROOT_SCHEMA, node=SweepJobConfig, provider="sweeps")
    for name in PRESETS:
        cs.store(group=MODEL_GROUP, name=name, node=model_preset(name), package="_global_", provider="sweeps")
    _register_launcher_schemas(cs)


def model_preset(name: str) -> dict:
    """The ``model`` group option of a preset: its name (the trainer looks the shape up in
    PRESETS) and no target size, which only ``model=auto`` reads."""
    return {"model": name, "model_params": None}


def _register_launcher_schemas(cs) -> None:
    """Move the launcher plugins' schemas to names our presets can extend.

    Our presets are named like the plugins' options (``hydra/launcher=joblib``) and come
    first on the search path, so they hide the originals. A file and a ConfigStore entry
    of the same name would trigger Hydra's deprecated automatic schema matching, so the
    plugins' entries are moved to ``<name>_schema``, which each preset extends in its
    defaults list: the plugins' type checking stays, without the warning.
    """
    from hydra.core.plugins import Plugins

    Plugins.instance()  # discover plugins now: their ConfigStore entries must exist to be moved
    # ``cs.repo`` is the ConfigStore's own (undocumented) dict of entries. Hydra 1.3 has no
    # public way to remove or rename an entry (ConfigStore offers store, load, list and
    # get_type), and the fix its upgrade notes give for automatic schema matching, renaming
    # one of the two, would rename the presets users type (hydra/launcher=joblib) or the
    # plugins' own entries, which we do not control. pyproject.toml pins hydra-core below
    # 1.4; should a later Hydra keep its entries elsewhere, no ``<name>_schema`` is stored
    # and the launcher presets fail to compose (tests/test_sweeps.py).
    group = cs.repo.get("hydra", {}).get("launcher", {})
    for name in ("joblib", "submitit_local", "submitit_slurm"):
        entry = group.pop(f"{name}.yaml", None)
        if entry is not None:
            cs.store(group="hydra/launcher", name=f"{name}_schema", node=entry.node, package=entry.package,
                     provider=entry.provider)
