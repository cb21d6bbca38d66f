"""A run's identity: the config hash that names its directory, and its readable name.

A resubmitted sweep finds its finished runs again only if their names do not change, so
the hash covers exactly what a run computes and stays put when fields are added
(:data:`HASH_ADDED_FIELDS`).

Imports neither torch nor numpy.
"""
from __future__ import annotations

import copy
import hashlib
import json
from typing import TYPE_CHECKING, Any, List

from .schema import TrainConfig, to_dict
from analysis.common.text import si

if TYPE_CHECKING:
    from .plan import Plan


#: Fields that say where and how a run executes, not what it computes: they are left
#: out of the config hash, so a run resumed on another device, or with another
#: micro-batch, kernel choice or activation checkpointing (which recomputes the same
#: values), still matches.
_HASH_EXCLUDED = ("out", "run_name", "progress", "device", "threads", "resume", "log_every",
                  "ckpt_every_tokens", "keep_checkpoints", "save_final", "peak_flops", "micro_batch",
                  "kernels", "compile", "activation_checkpointing", "logger")


#: Fields added to TrainConfig after sweeps already existed, each with the value that
#: computes what runs did before the field existed. A field at that value is left out of
#: the hash, so adding a field does not rename (and so retrain) every finished run of a
#: resubmitted sweep. Register every new field here: {"optim.new_knob": old_behaviour}.
HASH_ADDED_FIELDS: dict[str, Any] = {"optim.z_loss": 0.0, "data.unique_tokens": None, "data.unique_fraction": None,
                                     "data.unique_tokens_per_param": None}


def _hashed(d: dict) -> dict:
    """The part of a config dict the hash covers (a copy; ``d`` is left as it is)."""
    d = copy.deepcopy({k: v for k, v in d.items() if k not in _HASH_EXCLUDED})
    if isinstance(d.get("data"), dict):
        d["data"].pop("cache_dir", None)
    for key, old in HASH_ADDED_FIELDS.items():
        *parents, leaf = key.split(".")
        node = d
        for p in parents:
            node = node.get(p) if isinstance(node, dict) else None
        if isinstance(node, dict) and leaf in node and node[leaf] == old:
            del node[leaf]
    return d


def config_hash(cfg: TrainConfig) -> str:
    """Short stable hash of what the run computes; identical configs share it."""
    return hashlib.sha256(json.dumps(_hashed(to_dict(cfg)), sort_keys=True).encode()).hexdigest()[:16]


def config_diff(saved: dict, cfg: TrainConfig) -> List[tuple]:
    """``(dotted key, saved value, cfg's value)`` for each hashed key where a saved config
    dict (e.g. a checkpoint's) and ``cfg`` differ, so a mismatch can name its field."""

    def flat(d: dict, prefix: str = "") -> dict:
        out = {}
        for k, v in d.items():
            if isinstance(v, dict):
                out.update(flat(v, f"{prefix}{k}."))
            else:
                out[f"{prefix}{k}"] = v
        return out

    a, b = flat(_hashed(saved)), flat(_hashed(to_dict(cfg)))
    return [(k, a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


def default_run_name(cfg: TrainConfig, plan: Plan) -> str:
    """The readable name of a run outside a sweep (``runs/<name>``): preset and tokens."""

    return f"model={plan.model.preset},tokens={si(plan.tokens)}"
