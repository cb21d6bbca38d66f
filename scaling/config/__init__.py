"""Configuration of one training run, and its resolution into concrete numbers.

``from scaling.config import ...`` gives every name of the four modules:

- :mod:`~scaling.config.schema`: the typed :class:`TrainConfig` (an OmegaConf/Hydra
  structured config) and its conversions from overrides, dicts and Hydra configs.
- :mod:`~scaling.config.ladder`: the model :data:`PRESETS` table (the only place model
  sizes are written down), shapes for a target size, and a config's concrete
  :class:`ModelArgs` (the class itself lives in :mod:`scaling.shapes`, below both this
  package and :mod:`scaling.flops`).
- :mod:`~scaling.config.identity`: the config hash and run name that identify a run.
- :mod:`~scaling.config.plan`: :func:`resolve`, the one place a config is validated, and
  its :class:`Plan` (steps, batch split, schedule points) that the trainer executes.

This package imports neither torch nor numpy, so sweeps can build and validate configs
cheaply.
"""
from __future__ import annotations

from scaling.shapes import ModelArgs

from .identity import HASH_ADDED_FIELDS, config_diff, config_hash, default_run_name
from .ladder import BYTE_VOCAB, PRESETS, Preset, model_args, shape_for_params, swiglu_hidden
from .plan import Plan, check_settings, resolve
from .schema import (FLOP_COUNTS, CooldownShape, DataConfig, ModelConfig, Logger, OnNonFinite, OptimConfig, Progress,
                     ScheduleConfig, ScheduleKind, Tokenizer, TrainConfig, from_overrides, to_dict,
                     to_train_config, to_yaml)

__all__ = ["TrainConfig", "ModelConfig", "DataConfig", "OptimConfig", "ScheduleConfig", "ScheduleKind",
           "CooldownShape", "Tokenizer", "OnNonFinite", "Progress", "Logger", "FLOP_COUNTS", "from_overrides",
           "to_train_config", "to_dict", "to_yaml", "Preset", "PRESETS", "BYTE_VOCAB", "ModelArgs", "model_args",
           "shape_for_params", "swiglu_hidden", "HASH_ADDED_FIELDS", "config_hash", "config_diff",
           "default_run_name", "Plan", "check_settings", "resolve"]
