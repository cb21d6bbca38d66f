"""The training loop end to end on tiny models and a small slice of the built-in corpus:
loss falls, the record is complete, WSD branches leave the main run untouched, bad
configs fail with one line naming the field, and one run leaves no state behind."""
import logging
import math
import random
import re
import shutil
import signal

import numpy as np
import pytest
import torch

from analysis.common import records
from analysis.common.errors import ConfigError, DataError, DivergenceError, ToolkitError
from analysis.common.schedules import lr_factor
from scaling import checkpoint as ckpt
from scaling.app.cli import main as cli_main
from scaling.config import (CooldownShape, ScheduleKind, TrainConfig, from_overrides, resolve,
                            to_train_config)
from scaling.train.run import train
from trainer_testing import losses, poison, run, tiny_overrides

def test_loss_falls_on_the_builtin_corpus_and_record_is_complete(cache, tmp_path):
    s = run(cache, tmp_path / "r", "tokens=61440")  # 60 steps
    assert s["status"] == "completed"
    rows = records.read_metrics(tmp_path / "r")
    assert [r["step"] for r in rows] == list(range(1, 61))
    vals = [r["val_loss"] for r in rows if "val_loss" in r]
    assert vals[0] > 4.0 and vals[-1] < vals[0] - 1.5  # from near ln 256 = 5.5 to well below
    assert s["final_val_loss"] == vals[-1]
    # budget and FLOPs exactly as planned
    assert s["tokens_trained"] == s["tokens"] == 60 * 1024 == rows[-1]["tokens"]
    assert rows[-1]["flops_6n"] == 6 * s["params_nonembedding"] * 61440
    assert rows[-1]["flops"] == s["flops"] == s["flops_per_token"] * 61440
    assert "mfu" not in rows[-1]  # no known peak on a CPU
    # the run-record format documents every key the trainer writes, and nothing required is missing
    assert set(s) <= set(records.SUMMARY_FIELDS), set(s) - set(records.SUMMARY_FIELDS)
    assert {k for k, (req, _) in records.SUMMARY_FIELDS.items() if req} <= set(s)
    for r in rows:
        assert set(r) <= set(records.METRIC_FIELDS), set(r) - set(records.METRIC_FIELDS)
    # summary and config read back
    assert records.read_summary(tmp_path / "r")["config_hash"] == s["config_hash"]
    from omegaconf import OmegaConf

    back = to_train_config(OmegaConf.load(tmp_path / "r" / records.CONFIG_FILE))
    assert back == from_overrides(tiny_overrides(cache, tmp_path / "r", "tokens=61440"))
    assert ckpt.list_checkpoints(tmp_path / "r")  # the final checkpoint


def test_rerunning_a_completed_run_returns_its_summary(cache, tmp_path):
    s1 = run(cache, tmp_path / "r", "tokens=4096")
    mtime = (tmp_path / "r" / records.METRICS_FILE).stat().st_mtime_ns
    s2 = run(cache, tmp_path / "r", "tokens=4096")
    assert s2 == s1 and (tmp_path / "r" / records.METRICS_FILE).stat().st_mtime_ns == mtime
    with pytest.raises(ConfigError, match="^out: .*different configuration"):
        run(cache, tmp_path / "r", "tokens=8192")
    with pytest.raises(ConfigError, match="^out: .*already holds a run"):
        run(cache, tmp_path / "r", "tokens=4096", "resume=never")


def test_wsd_branches_leave_the_main_run_unchanged(cache, tmp_path):
    plain = run(cache, tmp_path / "plain", "tokens=40960", "schedule.kind=wsd")
    branched = run(cache, tmp_path / "br", "tokens=40960", "schedule.kind=wsd", "schedule.branches=[10240,20480]")
    assert losses(tmp_path / "br") == losses(tmp_path / "plain")  # bit for bit
    assert losses(tmp_path / "br", "lr") == losses(tmp_path / "plain", "lr")
    assert branched["final_val_loss"] == plain["final_val_loss"]
    rows = records.read_branches(tmp_path / "br")
    # budget 10 steps -> cooldown 20% = 2 steps from step 8; 20 steps -> 4 from 16
    assert [(b["fork_step"], b["step"], b["tokens"]) for b in rows] == [(8, 10, 10240), (16, 20, 20480)]
    assert all(b["val_loss"] < 5.0 for b in rows)
    assert all(set(b) <= set(records.BRANCH_FIELDS) for b in rows)
    pts = records.points_table(tmp_path / "br")
    assert sorted(pts["tokens"]) == [10240, 20480, 40960]


def test_a_branch_equals_the_standalone_run_of_its_budget(cache, tmp_path):
    """A branch forked at 8 and cooled down to 10 steps is the 10-step WSD run: same
    weights at the fork, same lr from there on, same batches, so the same loss exactly."""
    warm = "schedule.warmup_tokens=2048"
    run(cache, tmp_path / "main", "tokens=20480", "schedule.kind=wsd", warm, "schedule.branches=[10240]")
    alone = run(cache, tmp_path / "alone", "tokens=10240", "schedule.kind=wsd", warm)
    (b,) = records.read_branches(tmp_path / "main")
    assert (b["fork_step"], b["step"]) == (8, 10)
    assert b["val_loss"] == alone["final_val_loss"]
    assert b["train_loss"] == losses(tmp_path / "alone")[-1]


def test_lr_schedules_by_hand():
    # warmup 10 steps to the peak, then each shape to final_frac = 0.1 at step 110
    assert lr_factor(5, 10, 10, 110, ScheduleKind.cosine, 0.1) == 0.5
    assert lr_factor(10, 10, 10, 110, ScheduleKind.cosine, 0.1) == 1.0
    assert lr_factor(60, 10, 10, 110, ScheduleKind.cosine, 0.1) == pytest.approx(0.1 + 0.9 * 0.5)
    assert lr_factor(110, 10, 10, 110, ScheduleKind.cosine, 0.1) == pytest.approx(0.1)
    assert lr_factor(80, 10, 10, 110, ScheduleKind.constant, 0.1) == 1.0
    # WSD: stable until 90, then 1 - sqrt over 20 steps
    assert lr_factor(90, 10, 90, 110, ScheduleKind.wsd, 0.1) == 1.0
    assert lr_factor(95, 10, 90, 110, ScheduleKind.wsd, 0.1, CooldownShape.sqrt) == pytest.approx(0.1 + 0.9 * 0.5)
    assert lr_factor(95, 10, 90, 110, ScheduleKind.wsd, 0.1, CooldownShape.linear) == pytest.approx(0.1 + 0.9 * 0.75)
    assert lr_factor(110, 10, 90, 110, ScheduleKind.wsd, 0.0, CooldownShape.cosine) == pytest.approx(0.0)


def test_budgets_resolve_by_hand():
    cfg = TrainConfig(model="nano", seq_len=64, batch_tokens=1024)
    cfg.tokens = 10_000  # 9.77 steps -> 10
    assert resolve(cfg, 256).tokens == 10240
    cfg.tokens, cfg.tokens_per_param = None, 1.0  # 123,200 params (see test_model) -> 120.3 -> 120 steps
    assert resolve(cfg, 256).tokens == 120 * 1024
    cfg.tokens_per_param, cfg.flops = None, 6 * 106816 * 1024 * 50  # 6N x 50 steps of 1024 tokens
    assert resolve(cfg, 256).total_steps == 50
    cfg.flop_count = "detailed"  # per token at T=64: 3 x (32768 + 2 x 107264 + 32768), see test_model
    per_token = 3 * (32768 + 2 * (24576 + 8192 + 384 + 8192 + 8192 + 73728) + 32768)
    cfg.flops = per_token * 1024 * 30
    assert resolve(cfg, 256).flops_per_token == per_token and resolve(cfg, 256).total_steps == 30


@pytest.mark.parametrize("overrides, field", [
    (["tokens=100"], "tokens"),                                  # smaller than one batch
    (["model=gigantic", "tokens=1e6"], "model"),                 # unknown preset
    (["tokenz=1e6"], "tokenz"),                                  # typo in a key
    (["tokens=1e6", "tokens_per_param=20"], "tokens"),           # two budgets
    ([], "tokens"),                                              # no budget
    (["tokens=1e6", "micro_batch=5"], "micro_batch"),            # does not divide the batch
    (["tokens=1e6", "schedule.branches=[1e5]"], "schedule.branches"),  # branches need wsd
    (["tokens=1e6", "schedule.kind=wsd", "schedule.branches=[2e6]"], "schedule.branches"),
    (["tokens=1e6", "batch_tokens=1000"], "batch_tokens"),       # not a multiple of seq_len
    (["tokens=1e6", "seq_len=abc"], "seq_len"),                  # wrong type
    (["tokens=1e6", "device=tpu"], "device"),
    (["tokens=1e6", "optim.z_loss=-1"], "optim.z_loss"),
])
def test_bad_configs_fail_with_one_line_naming_the_field(cache, tmp_path, overrides, field):
    with pytest.raises(ToolkitError) as e:
        train(from_overrides(tiny_overrides(cache, tmp_path / "r", *overrides)))
    msg = str(e.value)
    assert e.value.field == field and msg.startswith(f"{field}: ") and "\n" not in msg
    assert not (tmp_path / "r" / records.METRICS_FILE).exists()


def test_empty_corpus_fails_naming_the_source(cache, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="^data.source: no documents"):
        run(cache, tmp_path / "r", "tokens=4096", f"data.source={tmp_path / 'empty'}")


def test_cli_trains_and_prints_the_record(cache, tmp_path, capsys):
    rc = cli_main(["train", *tiny_overrides(cache, tmp_path / "r", "tokens=2048")])
    out = capsys.readouterr().out
    assert rc == 0 and f"run record: {tmp_path / 'r'}" in out and "completed" in out
    rc = cli_main(["train", "model=nano", "tokens=1e6", "optim.lrr=1"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "optim.lrr" in err


def test_nonfinite_loss_stops_with_the_step_and_status_diverged(cache, tmp_path, monkeypatch):
    poison(monkeypatch, range(6, 100))  # one loss call per step, evaluation only at the end
    with pytest.raises(DivergenceError, match=r"^step: non-finite loss at step 6 "):
        run(cache, tmp_path / "r", "tokens=10240", "eval_count=1")
    s = records.read_summary(tmp_path / "r")
    assert s["status"] == "diverged" and "step 6" in s["error"]
    assert [r["step"] for r in records.read_metrics(tmp_path / "r")] == [1, 2, 3, 4, 5]


def test_nonfinite_loss_skip_mode_skips_the_update(cache, tmp_path, monkeypatch):
    poison(monkeypatch, {4, 5})
    s = run(cache, tmp_path / "r", "tokens=8192", "eval_count=1", "on_nonfinite=skip")
    assert s["status"] == "completed" and s["skipped_steps"] == 2
    assert math.isfinite(s["final_val_loss"])


def test_nonfinite_validation_loss_is_a_divergence(cache, tmp_path, monkeypatch):
    poison(monkeypatch, {9})  # 8 steps, then the final evaluation
    with pytest.raises(DivergenceError, match="validation loss"):
        run(cache, tmp_path / "r", "tokens=8192", "eval_count=1", "on_nonfinite=skip")


def test_train_leaves_no_state_behind(cache, tmp_path):
    torch.set_num_threads(2)
    threads, dtype = torch.get_num_threads(), torch.get_default_dtype()
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    expect = (random.random(), np.random.rand(), torch.rand(1).item())
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    handler = signal.getsignal(signal.SIGTERM)
    n_handlers = len(logging.getLogger("scaling").handlers)
    run(cache, tmp_path / "r", "tokens=2048", "threads=1", "progress=log")
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expect
    assert torch.get_num_threads() == threads and torch.get_default_dtype() == dtype
    assert signal.getsignal(signal.SIGTERM) is handler
    assert len(logging.getLogger("scaling").handlers) == n_handlers
    assert not torch.distributed.is_initialized()


def test_mfu_is_logged_when_the_peak_is_given(cache, tmp_path):
    s = run(cache, tmp_path / "r", "tokens=2048", "peak_flops=1e12")
    row = records.read_metrics(tmp_path / "r")[-1]
    from scaling import flops
    from scaling.config import model_args

    a = model_args(from_overrides(tiny_overrides(cache, tmp_path / "r", "tokens=2048")), 256)
    assert row["mfu"] == pytest.approx(flops.palm_flops_per_token(a) * row["tokens_per_s"] / 1e12)
    assert s["status"] == "completed"


def test_corrupt_newest_checkpoint_is_skipped(cache, tmp_path):
    run(cache, tmp_path / "r", "tokens=8192", "ckpt_every_tokens=2048", "keep_checkpoints=3")
    paths = ckpt.list_checkpoints(tmp_path / "r")
    assert [int(p.stem.split("_")[1]) for p in paths] == [4, 6, 8]
    raw = bytearray(paths[-1].read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    paths[-1].write_bytes(bytes(raw))
    with pytest.warns(UserWarning, match="sha256"):
        path, state = ckpt.latest_valid(tmp_path / "r")
    assert path == paths[-2] and state["step"] == 6


def test_trains_on_pretokenized_shards(tmp_path):
    from scaling.data.corpus import write_shard

    rng = np.random.default_rng(0)
    # a learnable stream: token t+1 follows t (mod 500), with random restarts
    seq = np.cumsum(rng.random(30000) < 0.02) * 37 + np.arange(30000)
    write_shard(tmp_path / "d_train.bin", seq[:25000] % 500, 500, "llm.c")
    write_shard(tmp_path / "d_val.bin", seq[25000:] % 500, 500, "llm.c")
    over = ["model=nano", "arch.d_model=32", "arch.n_heads=2", "seq_len=64", "batch_tokens=1024", "threads=1",
            "tokens=20480", "progress=none", "optim.lr=1e-2", "data.vocab_size=500", "data.val_tokens=2048",
            f"data.source={tmp_path}", f"out={tmp_path / 'r'}"]
    s = train(from_overrides(over))
    assert s["model"]["vocab_size"] == 500 and s["data"]["train_tokens"] == 25000
    vals = [r["val_loss"] for r in records.read_metrics(tmp_path / "r") if "val_loss" in r]
    assert vals[0] > math.log(500) - 0.5 and vals[-1] < vals[0] - 1.5  # the successor rule is being learnt
    with pytest.raises(ConfigError, match="^arch.vocab_size"):
        train(from_overrides(over + ["arch.vocab_size=400", f"out={tmp_path / 'r2'}"]))
    with pytest.raises(ConfigError, match="^data.vocab_size: .*exceeds what the shards' 16-bit tokens"):
        train(from_overrides(over + ["data.vocab_size=70000", f"out={tmp_path / 'r3'}"]))


def test_train_benchmark_prints_ours_against_the_reference(capsys):
    from scaling.app.bench.__main__ import main as bench_main

    rc = bench_main(["train", "--sizes", "nano", "--kernels", "eager", "--steps", "1", "--warmup", "0",
                     "--seq-len", "32", "--batch", "2", "--rounds", "1"])
    out = capsys.readouterr().out
    assert rc == 0
    lines = [ln for ln in out.splitlines() if ln.startswith("nano")]
    assert len(lines) == 2 and "nanoGPT-style eager" in lines[1]
    # the ratio column is filled in: "vs ref", a median over the rounds (its range when they differ)
    assert re.search(r" 1\.00x +- +\d+\.\d\dx( \(\d+\.\d\d-\d+\.\d\d\))? ", lines[0])
    assert bench_main(["train", "--sizes", "huge"]) == 2


@pytest.mark.slow
@pytest.mark.skipif(not (shutil.which("c++") or shutil.which("g++")), reason="torch.compile on CPU needs a C++ compiler")
@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")  # torch internals
def test_compile_matches_eager(cache, tmp_path):
    """torch.compile is a correctness path on CPU (~25 s to compile, little faster here)."""
    eager = run(cache, tmp_path / "eager", "tokens=8192")
    compiled = run(cache, tmp_path / "compiled", "tokens=8192", "compile=true")
    assert compiled["compile"] and not eager["compile"]
    assert losses(tmp_path / "compiled") == pytest.approx(losses(tmp_path / "eager"), rel=1e-5)
    assert compiled["final_val_loss"] == pytest.approx(eager["final_val_loss"], rel=1e-5)


def test_z_loss_from_the_config_reaches_the_training_loss(cache, tmp_path):
    """optim.z_loss adds PaLM's z_loss * mean(logsumexp^2) (Chowdhery et al. 2022, Sec. 5) to
    the training loss: with the same seed, the first step's reported loss grows by that term,
    which for a fresh model (logits near 0) is close to z_loss * (log V)^2. Validation stays
    plain cross-entropy, and the default (0) keeps the run names of before."""
    from scaling.config import config_hash

    z = 0.05
    plain = run(cache, tmp_path / "plain", "tokens=1024")
    run(cache, tmp_path / "z", "tokens=1024", f"optim.z_loss={z}")
    gap = losses(tmp_path / "z")[0] - losses(tmp_path / "plain")[0]
    assert gap == pytest.approx(z * math.log(plain["model"]["vocab_size"]) ** 2, rel=0.1)
    base = tiny_overrides(cache, tmp_path / "a", "tokens=1024")
    assert config_hash(from_overrides(base)) == config_hash(from_overrides(base + ["optim.z_loss=0"]))
    assert config_hash(from_overrides(base)) != config_hash(from_overrides(base + [f"optim.z_loss={z}"]))
