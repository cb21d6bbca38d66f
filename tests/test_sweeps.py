"""Sweep configs, run naming, the resubmission policy and the index: no training here.

Everything runs in this process through Hydra's compose API; the multiruns that train
live in test_sweeps_runs.py.
"""
from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import pytest
from hydra.errors import HydraException
from omegaconf.errors import OmegaConfBaseException

import sweeps
from analysis.common import records as R
from scaling import config as C
from sweeps import job as J
from sweeps.index import INDEX_COLUMNS, build_index, read_index, status_counts, write_index
from sweeps.launch import compose, job_overrides, plan
from sweeps.naming import run_name, split_job_config

# --------------------------------------------------------------------------- hand counts

def hand_nonembedding(d: int, layers: int) -> int:
    """Non-embedding parameters of our LLaMA block, counted by hand (MHA, SwiGLU, RMSNorm)."""
    ffn = 64 * math.ceil(math.ceil(8 * d / 3) / 64)
    per_layer = 4 * d * d + 3 * d * ffn + 2 * d  # QKV + output, gate/up/down, two norm gains
    return layers * per_layer + d  # + final norm


def hand_total(d: int, layers: int, vocab: int = 256) -> int:
    return hand_nonembedding(d, layers) + vocab * d  # tied embedding


# --------------------------------------------------------------------------- composition

@pytest.mark.parametrize("name", sweeps.experiments())
def test_every_experiment_composes(name):
    cfg = compose(name, return_hydra_config=True)
    assert cfg.sweep.name == name
    assert cfg.hydra.sweeper.params, f"{name} defines no grid"
    tc, _ = split_job_config(compose(name, _data_for(name)))
    assert isinstance(tc, C.TrainConfig)


def _data_for(name):
    # GPU ladders train on real shards, which the preset leaves for the user to name.
    gpu = ("llama_ladder", "data_constrained_gpu")
    return ["data.source=/data/shards", "data.vocab_size=50257"] if name in gpu else []


def test_experiments_are_the_shipped_presets():
    assert sweeps.experiments() == ["data_constrained", "data_constrained_gpu", "demo", "isoflop", "llama_ladder",
                                    "overtrain"]


def _model_options(overrides=()) -> list:
    """The options of the ``model`` group as Hydra lists them (``--help``, tab completion)."""
    from hydra import initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    with initialize_config_module(config_module="sweeps.conf", version_base="1.3"):
        loader = GlobalHydra.instance().config_loader()
        return loader.get_group_options("model", overrides=list(overrides))


def test_model_group_holds_exactly_the_preset_table():
    assert sorted(_model_options()) == sorted([*C.PRESETS, "auto"])
    # the table is the only copy: no preset is written again as a file
    assert [p.name for p in (sweeps.CONF_DIR / "model").iterdir()] == ["auto.yaml"]


@pytest.mark.parametrize("name", list(C.PRESETS))
def test_every_preset_composes_to_its_row_of_the_table(name):
    cfg = compose(None, [f"model={name}"])
    assert cfg.model == name and cfg.model_params is None
    tc, _ = split_job_config(cfg)
    shape = C.resolve(tc, 256).model
    assert (shape.d_model, shape.n_layers, shape.n_heads) == (C.PRESETS[name].d_model, C.PRESETS[name].n_layers,
                                                              C.PRESETS[name].n_heads)


def _user_conf(tmp_path) -> Path:
    """A user's config directory with one preset of their own: nano, 96 wide."""
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "wide_nano.yaml").write_text("# @package _global_\nmodel: nano\nmodel_params: null\n"
                                                       "arch:\n  d_model: 96\n  n_heads: 3\n")
    return tmp_path


def test_user_yaml_presets_join_the_group_through_the_search_path(tmp_path):
    conf = _user_conf(tmp_path)
    search = f"hydra.searchpath=[file://{conf}]"
    assert sorted(_model_options([search])) == sorted([*C.PRESETS, "auto", "wide_nano"])
    cfg = compose(None, [search, "model=wide_nano"])
    assert (cfg.model, cfg.arch.d_model, cfg.arch.n_heads) == ("nano", 96, 3)
    # the shipped presets are still there beside it, and a dry-run plan reads both
    jobs = plan("demo", [search, "model=wide_nano,micro", "tokens=1e6", f"sweep.root={tmp_path / 'runs'}"])
    assert [j.params_nonembedding for j in jobs] == [hand_nonembedding(96, 2), hand_nonembedding(96, 3)]


def test_user_yaml_presets_work_with_config_dir_on_the_command_line(tmp_path):
    import subprocess
    import sys

    conf = _user_conf(tmp_path)
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    for model, want in (("wide_nano", "d_model: 96"), ("micro", "d_model: null")):
        res = subprocess.run([sys.executable, "-m", "sweeps", "--config-dir", str(conf), f"model={model}",
                              "--cfg", "job"], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
        assert res.returncode == 0, res.stderr
        assert want in res.stdout and f"model: {model if model == 'micro' else 'nano'}" in res.stdout


@pytest.mark.parametrize("override, message", [
    ("tokenz=1", "Key 'tokenz' not in 'SweepJobConfig'"),
    ("optim.lrr=1e-3", "Key 'lrr' not in 'OptimConfig'"),
    ("schedule.cooldown=0.1", "Key 'cooldown' not in 'ScheduleConfig'"),
    ("sweep.retry=false", "Key 'retry' not in 'SweepOptions'"),
    ("seq_len=long", "Value 'long' of type 'str' could not be converted to Integer"),
    ("model=micr", "Could not find 'model/micr'"),
    ("experiment=dmeo", "Could not find 'experiment/dmeo'"),
    ("hydra/launcher=jobllib", "Could not find 'hydra/launcher/jobllib'"),
])
def test_typos_fail_with_hydras_message(override, message):
    with pytest.raises((HydraException, OmegaConfBaseException)) as e:
        compose("demo", [override])
    assert message in _messages(e.value)


def _messages(exc) -> str:
    """The exception's text and its causes', as Hydra prints them on the command line."""
    out = []
    while exc is not None:
        out.append(str(exc))
        exc = exc.__cause__
    return "\n".join(out)


@pytest.mark.parametrize("launcher, field", [("joblib", "n_jobz"), ("submitit_local", "timeout"),
                                             ("submitit_slurm", "partiton")])
def test_launcher_presets_keep_the_plugins_schema(launcher, field):
    with pytest.raises((HydraException, OmegaConfBaseException)) as e:
        compose(None, [f"hydra/launcher={launcher}", f"hydra.launcher.{field}=1"], return_hydra_config=True)
    assert f"Key '{field}' not in" in _messages(e.value)


def test_slurm_preset_has_cluster_fields_and_one_task_per_gpu():
    h = compose(None, ["hydra/launcher=submitit_slurm", "hydra.launcher.gpus_per_node=4",
                       "hydra.launcher.partition=gpu", "hydra.launcher.account=proj"],
                return_hydra_config=True).hydra.launcher
    assert h._target_.endswith("SlurmLauncher")
    assert (h.partition, h.account, h.gpus_per_node) == ("gpu", "proj", 4)
    assert h.tasks_per_node == 4  # DDP needs one process per GPU
    assert h.timeout_min > 0 and h.max_num_timeout > 0
    d = compose(None, ["hydra/launcher=submitit_slurm"], return_hydra_config=True).hydra.launcher
    assert d.partition is None and d.account is None and d.gpus_per_node == 1 and d.tasks_per_node == 1


def test_joblib_and_local_presets_compose():
    j = compose(None, ["hydra/launcher=joblib"], return_hydra_config=True).hydra.launcher
    assert j._target_.endswith("JoblibLauncher") and j.n_jobs == -1
    s = compose(None, ["hydra/launcher=submitit_local"], return_hydra_config=True).hydra.launcher
    assert s._target_.endswith("LocalLauncher")


def test_command_line_replaces_the_presets_grid():
    jobs = job_overrides("demo", ["model=nano,micro", "tokens=4096,8192"])
    assert sorted(tuple(j[1:]) for j in jobs) == sorted(
        (f"model={m}", f"tokens={t}") for m in ("nano", "micro") for t in (4096, 8192))
    assert len(job_overrides("demo")) == len(compose("demo", return_hydra_config=True)
                                             .hydra.sweeper.params.model.split(","))


# --------------------------------------------------------------------------- naming

def test_run_directory_is_a_pure_function_of_the_config():
    a = compose(None, ["model=micro", "budget=tokens", "tokens=2e7", "optim.lr=1e-3"])
    b = compose(None, ["optim.lr=0.001", "budget=tokens", "tokens=20000000", "model=micro"])
    assert run_name(split_job_config(a)[0]) == run_name(split_job_config(b)[0])
    name = run_name(split_job_config(a)[0])
    assert name.startswith("model=micro,tokens=20M-") and len(name.rsplit("-", 1)[1]) == 8
    # Where and how a run executes does not change its identity ...
    for ov in ("device=cpu", "threads=1", "progress=none", "log_every=5", "hydra/launcher=joblib",
               "sweep.retry_failed=false"):
        c = compose(None, ["model=micro", "budget=tokens", "tokens=2e7", "optim.lr=1e-3", ov])
        assert run_name(split_job_config(c)[0]) == name, ov
    # ... what it computes does.
    for ov in ("optim.lr=2e-3", "seed=1", "seq_len=128", "schedule=wsd", "data.max_bytes=1000"):
        c = compose(None, ["model=micro", "budget=tokens", "tokens=2e7", "optim.lr=1e-3", ov])
        assert run_name(split_job_config(c)[0]) != name, ov


def test_demo_run_names_are_stable_across_releases():
    """A resubmitted sweep finds its finished runs only if their names do not change. These
    names are the demo's as released; if this fails, a TrainConfig field was added or a
    default changed. A new field: register it in HASH_ADDED_FIELDS (scaling/config/identity.py) with the
    value that keeps the old behaviour. A changed default really changes what runs compute:
    update the names here and say so in the changelog."""
    # the demo's first design, at its budgets then (tests/data/first_demo_runs holds its records)
    first = {"nano": "8e6", "micro": "4e6", "tiny": "1e6", "mini": "1e6"}
    names = sorted(run_name(split_job_config(compose(None, ["experiment=demo", f"model={m}", f"tokens={t}"]))[0])
                   for m, t in first.items())
    assert names == ["model=micro,tokens=4M-ec125fd4", "model=mini,tokens=1M-313df2ac",
                     "model=nano,tokens=8M-cad7172b", "model=tiny,tokens=1M-5dfeab61"]
    # the demo as shipped: the names of its committed run records
    names = sorted(run_name(split_job_config(compose(None, ["experiment=demo", f"model={m}"]))[0])
                   for m in ("atto", "femto", "pico", "nano"))
    committed = Path(__file__).resolve().parents[1] / "docs" / "data" / "demo_runs"
    assert names == sorted(p.name for p in committed.iterdir() if p.is_dir())


def test_a_registered_new_field_at_its_old_value_leaves_the_hash_alone(monkeypatch):
    cfg = C.from_overrides(["model=micro", "tokens=2e7"])
    before = C.config_hash(cfg)
    # Pretend optim.grad_clip and seed were added later, with their current values as the old behaviour.
    monkeypatch.setattr(C.identity, "HASH_ADDED_FIELDS", {"optim.grad_clip": cfg.optim.grad_clip, "seed": cfg.seed})
    d = C.to_dict(cfg)
    older = {k: v for k, v in d.items() if k != "seed"} | {"optim": {k: v for k, v in d["optim"].items()
                                                                     if k != "grad_clip"}}
    assert C.identity._hashed(d) == C.identity._hashed(older)  # a config written before the fields existed
    assert "grad_clip" in d["optim"] and "seed" in d  # the caller's dict is untouched
    # at any other value the field counts
    assert C.config_hash(C.from_overrides(["model=micro", "tokens=2e7", "seed=7"])) != before
    other = C.from_overrides(["model=micro", "tokens=2e7", "optim.grad_clip=0.5"])
    assert C.config_hash(other) != C.config_hash(cfg)


def test_hydra_places_each_job_in_its_run_directory(tmp_path):
    cfg = compose("demo", ["model=tiny", f"sweep.root={tmp_path}"], return_hydra_config=True)
    expected = run_name(split_job_config(cfg)[0])
    assert cfg.hydra.sweep.dir == str(tmp_path)
    assert cfg.hydra.sweep.subdir == expected
    assert cfg.hydra.run.dir == f"{tmp_path}/{expected}"
    assert "${now:" not in str(cfg.hydra.sweep.dir)


def test_flops_budget_resolves_tokens_from_the_exact_parameter_count():
    jobs = plan(None, ["budget=flops", "flops=1e12", "model=nano,micro", "batch_tokens=4096", "seq_len=128"])
    shapes = {"nano": (64, 2), "micro": (96, 3)}
    for j in jobs:
        model = j.run_dir.name.split(",")[0].split("=")[1]
        n = hand_nonembedding(*shapes[model])
        assert j.params_nonembedding == n
        assert j.tokens == round(1e12 / (6 * n) / 4096) * 4096  # C = 6 N D (Kaplan et al. 2020)


def test_tokens_per_param_budget_counts_all_parameters():
    (j,) = plan(None, ["budget=tpp", "tokens_per_param=20", "model=micro", "batch_tokens=4096", "seq_len=128"])
    assert j.params == hand_total(96, 3)
    assert j.tokens == round(20 * hand_total(96, 3) / 4096) * 4096


def test_branches_per_parameter_and_as_fractions():
    tc, _ = split_job_config(compose(None, ["model=micro", "schedule=wsd", "budget=tpp", "tokens_per_param=100",
                                            "sweep.branch_tokens_per_param=[10,20]", "sweep.branch_fracs=[0.5]",
                                            "batch_tokens=4096", "seq_len=128"]))
    n = hand_total(96, 3)
    total = round(100 * n / 4096) * 4096
    assert tc.schedule.branches == pytest.approx(sorted([10 * n, 20 * n, 0.5 * total]), rel=1e-5)


def test_a_config_that_cannot_resolve_still_gets_a_stable_directory():
    bad = compose(None, ["model=auto", "sweep.isoflop_ratio=1"])  # a size ratio without a FLOP budget
    d1, tc, _, err = J.job_identity(bad)
    d2, *_ = J.job_identity(compose(None, ["sweep.isoflop_ratio=1", "model=auto"]))
    assert tc is None and "sweep.isoflop_ratio" in str(err)
    assert d1 == d2 and d1.name.startswith("invalid,")


# --------------------------------------------------------------------------- presets

def _budgets(job, batch):
    return sorted([end * batch for _, end in job.branches] + [job.tokens])


def test_demo_asks_the_llama_question_with_four_sizes_and_four_budgets_each(tmp_path):
    cfg = compose("demo")
    jobs = plan("demo", [f"sweep.root={tmp_path}"])
    params = sorted(j.params for j in jobs)
    assert len(set(params)) >= 4 and params[-1] / params[0] > 4.9  # 24.7k to 123k
    for j in jobs:
        assert j.error is None
        assert len(set(_budgets(j, cfg.batch_tokens))) >= 3
    # the LLaMA shape: the largest model at 10 or more tokens per parameter (LLaMA-65B saw
    # 21), and every smaller one trained on at least its compute (6ND)
    big = max(jobs, key=lambda j: j.params)
    assert big.tokens / big.params >= 10
    assert all(6 * j.params * j.tokens >= 6 * big.params * big.tokens for j in jobs)
    # no run repeats the built-in corpus's 11.5M training tokens
    assert max(j.tokens for j in jobs) < 11.5e6
    # The demo must fit in its time budget on 2 CPU cores: its total training FLOPs
    # (branch cooldowns included) are capped near what was measured to train in 200 s
    # there (README, "What you get").
    cooldown = sum(sum(end - fork for fork, end in j.branches) * cfg.batch_tokens * j.flops / j.tokens
                   for j in jobs)
    assert sum(j.flops for j in jobs) + cooldown < DEMO_FLOP_CAP


#: The demo trains 1.65e13 FLOPs (detailed count, cooldown branches included) in 200 s on
#: 2 CPU cores (README, "What you get"). A preset edit that grows it by more than a seventh
#: must be timed again.
DEMO_FLOP_CAP = 1.9e13


def test_demo_trains_each_size_to_its_own_budget():
    jobs = {j.run_dir.name.split(",")[0]: j for j in plan("demo")}
    # 9M, 9M, 11M, 2M tokens, each rounded to whole 2,048-token batches.
    assert {m: j.tokens for m, j in jobs.items()} == {
        "model=pico": 4395 * 2048, "model=femto": 4395 * 2048, "model=atto": 5371 * 2048, "model=nano": 977 * 2048}
    assert {m: round(j.tokens / j.params) for m, j in jobs.items()} == {
        "model=pico": 133, "model=femto": 219, "model=atto": 446, "model=nano": 16}
    # Longest first: on 2 workers pico runs beside femto, then atto and nano.
    assert list(jobs) == ["model=pico", "model=femto", "model=atto", "model=nano"]
    # One budget for every size still takes one override, and names the runs by it.
    assert {j.tokens for j in plan("demo", ["tokens=1e6"])} == {488 * 2048}
    # A size without a budget is refused with the field and the fix.
    (bad,) = plan("demo", ["model=small"])
    assert "sweep.tokens_by_model" in bad.error and "++sweep.tokens_by_model.small=" in bad.error
    (added,) = plan("demo", ["model=small", "++sweep.tokens_by_model.small=2e6"])
    assert added.error is None and added.tokens == 977 * 2048


def test_scaling_demo_trains_the_presets_own_runs(tmp_path, monkeypatch):
    """`scaling demo` launches `python -m sweeps -m experiment=demo` with no grid of its own:
    the runs it would train are the preset's, in the same run directories."""
    import scaling.app.demo
    from scaling.app.demo import run_demo

    calls = []

    class Launched(Exception):
        pass

    def fake_run_experiment(experiment, out_dir=None, overrides=(), launcher=None, **kw):
        calls.append((experiment, Path(out_dir), list(overrides), launcher))
        raise Launched

    # the demo imports run_experiment at its top: replace the name it calls
    monkeypatch.setattr(scaling.app.demo, "run_experiment", fake_run_experiment)
    with pytest.raises(Launched):
        run_demo(tmp_path / "demo_out", echo=lambda s: None)
    ((experiment, sweep_dir, overrides, launcher),) = calls
    # The preset as it is (no model=, tokens= or launcher of its own), into DIR/runs.
    assert experiment == "demo" and overrides == [] and launcher is None
    assert sweep_dir == tmp_path / "demo_out" / "runs"


def test_isoflop_grid_has_several_sizes_at_each_budget_and_spends_each_budget(tmp_path):
    jobs = plan("isoflop", [f"sweep.root={tmp_path}"])
    by_budget = {}
    for j in jobs:
        assert j.error is None
        budget = float(j.run_dir.name.split("flops=")[1].rsplit("-", 1)[0])
        by_budget.setdefault(budget, set()).add(j.params)
        batch = 16384
        # 6 N D equals the budget up to rounding D to whole batches (Hoffmann et al. 2022).
        assert abs(6 * j.params_nonembedding * j.tokens - budget) <= 6 * j.params_nonembedding * batch / 2 + 1
    assert len(by_budget) >= 3
    assert all(len(sizes) >= 3 for sizes in by_budget.values())


def test_overtrain_gives_every_size_5_to_320_tokens_per_parameter(tmp_path):
    cfg = compose("overtrain")
    jobs = plan("overtrain", [f"sweep.root={tmp_path}"])
    assert len({j.params for j in jobs}) >= 3
    for j in jobs:
        ratios = [b / j.params for b in _budgets(j, cfg.batch_tokens)]
        assert ratios == pytest.approx([5, 10, 20, 40, 80, 160, 320], rel=0.05)


def test_llama_ladder_spans_100m_to_1b_at_1x_to_10x_chinchilla(tmp_path):
    cfg = compose("llama_ladder", _data_for("llama_ladder"))
    jobs = plan("llama_ladder", _data_for("llama_ladder") + [f"sweep.root={tmp_path}"])
    assert 0.05e9 < min(j.params_nonembedding for j in jobs) <= 0.15e9
    assert 0.9e9 <= max(j.params_nonembedding for j in jobs) < 1.5e9
    for j in jobs:
        tc, _ = split_job_config(compose(None, j.overrides))
        ratios = [b / j.params for b in _budgets(j, tc.batch_tokens)]
        assert ratios == pytest.approx([20, 40, 100, 200], rel=0.02)
    assert cfg.data.source == "/data/shards"


def test_demo_scales_the_learning_rate_inversely_with_width():
    widths = {"nano": 64, "micro": 96, "tiny": 128, "mini": 192}
    for model, d in widths.items():
        tc, _ = split_job_config(compose("demo", [f"model={model}"]))
        assert tc.optim.lr == pytest.approx(3e-3 * 128 / d, rel=1e-3)  # muP's Adam rule (Yang et al. 2022)


def test_olmo_size_rules_follow_the_ladder_formula():
    tc, _ = split_job_config(compose(None, ["model=300m", "sweep.size_rules=olmo", "seq_len=2048"]))
    n = hand_nonembedding(1024, 24)
    assert tc.optim.lr == pytest.approx(0.0047 * (n / 108e6) ** (-1 / 3), rel=2e-3)
    seqs = tc.batch_tokens / 2048
    assert seqs == 2 ** round(math.log2(160 * (n / 108e6) ** (2 / 3)))


# --------------------------------------------------------------------------- the job

@pytest.mark.parametrize("status, retry_failed, retry_diverged, action", [
    (None, True, False, "start"), ("running", True, False, "resume"), ("resumable", True, False, "resume"),
    ("failed", True, False, "retry"), ("failed", False, False, "skip"), ("diverged", True, False, "skip"),
    ("diverged", True, True, "retry"), ("completed", True, True, "skip"),
])
def test_resubmission_policy(status, retry_failed, retry_diverged, action):
    assert J.decide(status, retry_failed, retry_diverged) == action


@pytest.fixture
def no_training(monkeypatch):
    """Make any call to the trainer fail the test."""
    import scaling.train.run

    def boom(*a, **k):
        raise AssertionError("training started")

    monkeypatch.setattr(scaling.train.run, "train", boom)


def _job_cfg(root, *extra):
    return compose(None, [f"sweep.root={root}", "model=nano", "budget=tokens", "tokens=4096",
                          "batch_tokens=512", "seq_len=32", *extra])


def _write_summary(run_dir, status, **extra):
    s = {k: None for k, (req, _) in R.SUMMARY_FIELDS.items() if req}
    s.update(schema_version=R.SCHEMA_VERSION, run_name=run_dir.name, status=status, params=1000,
             params_nonembedding=800, tokens=4096, tokens_trained=4096 if status == "completed" else 1024,
             flops=1e9, flops_6n=8e8, config_hash="x", final_val_loss=2.5 if status == "completed" else None,
             **extra)
    run_dir.mkdir(parents=True, exist_ok=True)
    R.atomic_write_json(run_dir / R.SUMMARY_FILE, s)
    return s


def test_completed_run_is_skipped_without_training(tmp_path, no_training):
    cfg = _job_cfg(tmp_path)
    run_dir = J.job_identity(cfg)[0]
    _write_summary(run_dir, "completed")
    before = (run_dir / R.SUMMARY_FILE).stat().st_mtime_ns
    res = J.run_job(cfg)
    assert res["status"] == "completed" and res["action"] == "skip" and res["final_val_loss"] == 2.5
    assert (run_dir / R.SUMMARY_FILE).stat().st_mtime_ns == before
    assert J.read_attempts(run_dir)[-1]["action"] == "skip"


def test_failed_run_is_left_alone_when_retries_are_off(tmp_path, no_training):
    cfg = _job_cfg(tmp_path, "sweep.retry_failed=false")
    run_dir = J.job_identity(cfg)[0]
    _write_summary(run_dir, "failed", error="DataError: gone")
    assert J.run_job(cfg)["action"] == "skip"


def test_a_run_locked_by_a_live_process_is_left_alone(tmp_path, no_training):
    cfg = _job_cfg(tmp_path)
    run_dir = J.job_identity(cfg)[0]
    run_dir.mkdir(parents=True)
    lock = J.RunLock(run_dir)
    assert lock.acquire()
    try:
        assert J.is_locked(run_dir)
        assert J.run_job(cfg)["status"] == "busy"
    finally:
        lock.release()
    assert not J.is_locked(run_dir)


def test_an_exception_in_training_is_recorded_not_raised(tmp_path, monkeypatch):
    import scaling.train.run

    def crash(cfg, out_dir):
        raise RuntimeError("CUDA error: an illegal memory access\nwas encountered")

    monkeypatch.setattr(scaling.train.run, "train", crash)
    cfg = _job_cfg(tmp_path)
    res = J.run_job(cfg)
    run_dir = Path(res["run_dir"])
    s = R.read_summary(run_dir)  # a complete summary, readable by the analysis side
    assert s["status"] == "failed" == res["status"]
    assert s["error"] == "RuntimeError: CUDA error: an illegal memory access was encountered"
    assert s["params"] == hand_total(64, 2) and s["tokens"] == 4096  # placed by its config
    assert [a["outcome"] for a in J.read_attempts(run_dir)] == ["started", "failed"]


def test_divergence_recorded_by_the_trainer_stays_diverged(tmp_path):
    run_dir = tmp_path / "r"
    _write_summary(run_dir, "diverged", error="non-finite loss at step 7")
    from analysis.common.errors import DivergenceError

    s = J.record_failure(run_dir, "r", None, DivergenceError("non-finite loss at step 7", field="optim.lr"))
    assert s["status"] == "diverged" and "step 7" in s["error"]


# --------------------------------------------------------------------------- the index

def _fake_sweep(root: Path) -> None:
    done = root / "model=nano,tokens=4.1k-aaaaaaaa"
    _write_summary(done, "completed", model={"preset": "nano"})
    with R.JsonlAppender(done / R.BRANCHES_FILE) as f:
        for t, loss in ((1024, 3.1), (2048, 2.9)):
            f.append({"tokens": t, "step": t // 512, "fork_step": t // 512 - 1, "flops_6n": 8e8 * t / 4096,
                      "flops": 1e9 * t / 4096, "val_loss": loss})
    _write_summary(root / "model=micro,tokens=4.1k-bbbbbbbb", "failed", error="DataError: no corpus")
    _write_summary(root / "model=tiny,tokens=4.1k-cccccccc", "running")  # killed: nobody holds its lock


def test_index_has_a_row_per_run_and_branch_with_status_counts(tmp_path):
    _fake_sweep(tmp_path)
    info = write_index(tmp_path)
    assert info["counts"] == {"completed": 1, "interrupted": 1, "failed": 1}
    assert info["runs"] == 3 and info["points"] == 5
    df = read_index(tmp_path / "runs.csv")
    assert tuple(df.columns) == INDEX_COLUMNS
    nano = df[df["run"].str.startswith("model=nano")]
    assert list(nano["point"]) == ["branch@1024", "branch@2048", "final"]
    assert list(nano["loss"]) == [3.1, 2.9, 2.5]
    assert list(nano["tokens_per_param"]) == pytest.approx([1.024, 2.048, 4.096])
    failed = df[df["status"] == "failed"].iloc[0]
    assert failed["error"] == "DataError: no corpus" and math.isnan(failed["loss"])
    assert set(df["run_dir"]) == {p.name for p in tmp_path.iterdir() if p.is_dir()}  # relative, portable
    pq = read_index(tmp_path / "runs.parquet")
    assert list(pq["run"]) == list(df["run"])
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_index_rebuilds_from_records_and_sees_a_live_lock(tmp_path):
    _fake_sweep(tmp_path)
    lock = J.RunLock(tmp_path / "model=tiny,tokens=4.1k-cccccccc")
    assert lock.acquire()
    try:
        assert status_counts(build_index(tmp_path)) == {"completed": 1, "running": 1, "failed": 1}
    finally:
        lock.release()


def test_scaling_runs_prints_the_table_and_counts(tmp_path, capsys):
    from scaling.app.cli import main

    _fake_sweep(tmp_path)
    assert main(["runs", str(tmp_path), "--reindex"]) == 0
    out = capsys.readouterr().out
    assert "3 runs: 1 completed, 1 interrupted, 1 failed" in out
    assert "model=nano,tokens=4.1k " in out and "branch@1024" in out and "DataError: no corpus" in out
    assert (tmp_path / "runs.csv").exists()
    assert main(["runs", str(tmp_path), "--json", "--status", "failed"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["counts"]["failed"] == 1 and [r["status"] for r in data["rows"]] == ["failed"]


def test_scaling_runs_bad_input_is_one_line(tmp_path, capsys):
    from scaling.app.cli import main

    assert main(["runs", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "no such file or directory" in err
    assert main(["runs", str(tmp_path)]) == 2  # an empty directory: no runs
    assert "no runs here" in capsys.readouterr().err
    _fake_sweep(tmp_path)
    assert main(["runs", str(tmp_path), "--status", "done"]) == 2
    assert "--status: unknown status 'done'" in capsys.readouterr().err


def test_scaling_sweep_dry_run_plans_without_training(tmp_path, capsys, no_training):
    from scaling.app.cli import main

    assert main(["sweep", "demo", "--dry-run", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "4 runs, 4 to train" in out and "model=atto" in out
    assert not any(tmp_path.iterdir())
    assert main(["sweep", "demo", "tokenz=1", "--dry-run"]) == 2
    assert "Could not override 'tokenz'" in capsys.readouterr().err


def test_slurm_preset_becomes_the_expected_sbatch_script(tmp_path, monkeypatch):
    """The preset's fields, through Hydra's submitit plugin, into submitit's sbatch file.

    No cluster here: a stub ``srun`` satisfies submitit's check, and the job array is
    captured instead of submitted.
    """
    import stat

    import submitit
    from hydra.core.utils import setup_globals
    from hydra.utils import instantiate
    from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "srun").chmod(stat.S_IRWXU)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    captured = {}

    def capture(executor, fn, *args):
        captured["executor"], captured["jobs"] = executor, list(zip(*args))
        return []

    monkeypatch.setattr(submitit.AutoExecutor, "map_array", capture)
    cfg = compose("demo", ["hydra/launcher=submitit_slurm", "hydra.launcher.partition=gpu",
                           "hydra.launcher.account=proj", "hydra.launcher.gpus_per_node=4",
                           "hydra.launcher.timeout_min=1440", f"sweep.root={tmp_path / 'sweep'}"],
                  return_hydra_config=True)
    setup_globals()
    launcher = instantiate(cfg.hydra.launcher)  # as Hydra builds it
    assert isinstance(launcher, SlurmLauncher)
    launcher.config, launcher.task_function = cfg, J.task
    launcher.launch([["model=nano"], ["model=micro"]], initial_job_idx=0)
    assert len(captured["jobs"]) == 2
    script = captured["executor"]._executor._make_submission_file_text("python -m sweeps", "uid")
    for line in ("#SBATCH --partition=gpu", "#SBATCH --account=proj", "#SBATCH --gpus-per-node=4",
                 "#SBATCH --ntasks-per-node=4", "#SBATCH --time=1440", "#SBATCH --cpus-per-task=8",
                 "#SBATCH --mem=64GB", "#SBATCH --signal=USR2@120"):
        assert line in script, line


def test_slurm_time_limit_checkpoints_before_submitit_requeues(tmp_path, monkeypatch):
    """submitit's USR2 handler (requeue and exit) must run only after the trainer has
    answered the stop request (SIGTERM) and the outcome is recorded."""
    import signal

    import scaling.train.run

    events = []
    monkeypatch.setenv("SUBMITIT_EXECUTOR", "slurm")
    submitit_handler = lambda signum, frame: events.append("submitit requeues")  # noqa: E731
    old_usr2 = signal.signal(signal.SIGUSR2, submitit_handler)

    def fake_train(cfg, out_dir):
        stop = []
        old_term = signal.signal(signal.SIGTERM, lambda s, f: stop.append(s))  # as the trainer does
        try:
            os.kill(os.getpid(), signal.SIGUSR2)  # SLURM: the time limit is near
            deadline = time.time() + 5
            while not stop and time.time() < deadline:
                time.sleep(0.01)
            events.append("trainer checkpointed" if stop else "no stop request")
        finally:
            signal.signal(signal.SIGTERM, old_term)
        return {"status": "resumable"}

    monkeypatch.setattr(scaling.train.run, "train", fake_train)
    try:
        res = J.run_job(_job_cfg(tmp_path))
        assert signal.getsignal(signal.SIGUSR2) is submitit_handler  # put back
    finally:
        signal.signal(signal.SIGUSR2, old_usr2)
    assert events == ["trainer checkpointed", "submitit requeues"]
    assert res["status"] == "resumable"
    assert J.read_attempts(Path(res["run_dir"]))[-1]["outcome"] == "resumable"


def test_the_data_constrained_grid_repeats_each_u_for_1_to_16_epochs():
    """9 runs (3 sizes x 3 values of U), each to 16 U tokens with branches at 1, 2, 4 and 8 U."""
    jobs = plan("data_constrained", [])
    assert len(jobs) == 9 and not [j for j in jobs if j.error]
    seen = set()
    for j in jobs:
        u = float(next(o.split("=", 1)[1] for o in j.overrides if o.startswith("data.unique_tokens=")))
        seen.add(u)
        assert j.tokens == pytest.approx(16 * u, rel=0.01)  # rounded to whole steps
        assert len(j.branches) == 4
        ends = [end * 2048 / u for _, end in sorted(j.branches)]  # (fork step, end step); 2,048-token steps
        assert ends == pytest.approx([1, 2, 4, 8], rel=0.05)
    assert sorted(seen) == [5e4, 1e5, 2e5]
