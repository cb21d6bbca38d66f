"""logger=tensorboard|wandb: the rows of metrics.jsonl, read back with each library's own
reader (TensorBoard's EventAccumulator, the records of a W&B offline run), at the same
steps; no extra host read, no change to the run's name, and both libraries optional."""
import glob
import json
import struct
import subprocess
import sys
import time

import numpy as np
import pytest

from analysis.common import records
from analysis.common.errors import ConfigError
from scaling.config import config_hash, from_overrides
from scaling.train.run import train
from trainer_testing import counted_run, tiny_overrides

#: 12 steps, a metric row every 3 and at the eval steps: a few rows, some with val_loss.
RUN = ("tokens=12288", "log_every=3", "eval_count=3")


def _scalars(rows: list[dict]) -> dict[str, list[tuple[int, float]]]:
    """metrics.jsonl as ``{column: [(step, value), ...]}``, the reference."""
    out: dict = {}
    for r in rows:
        for k, v in r.items():
            if k != "step" and isinstance(v, (int, float)):
                out.setdefault(k, []).append((r["step"], float(v)))
    return out


def test_tensorboard_events_hold_the_metric_rows(cache, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir = tmp_path / "r"
    s = train(from_overrides(tiny_overrides(cache, run_dir, *RUN, "logger=tensorboard")))
    assert s["status"] == "completed"
    expected = _scalars(records.read_metrics(run_dir))
    assert {"train_loss", "val_loss", "lr", "tokens", "tokens_per_s"} <= set(expected)
    acc = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0})
    acc.Reload()
    rows = records.read_metrics(run_dir)
    # the losses also against tokens and against training FLOPs (in units of 1e9)
    for k in ("train_loss", "val_loss"):
        at = [r for r in rows if k in r]
        assert [(e.step, e.value) for e in acc.Scalars(f"{k}/by_tokens")] == [
            (r["tokens"], pytest.approx(np.float32(r[k]))) for r in at]
        assert [e.step for e in acc.Scalars(f"{k}/by_gflops")] == [int(r["flops"] / 1e9) for r in at]
    by = {f"{k}/by_{x}" for k in ("train_loss", "val_loss") for x in ("tokens", "gflops")}
    assert sorted(set(acc.Tags()["scalars"]) - by) == sorted(expected)
    for key, want in expected.items():
        got = [(e.step, e.value) for e in acc.Scalars(key)]
        assert [g[0] for g in got] == [w[0] for w in want], key  # the log steps, each once
        # event files hold float32
        np.testing.assert_allclose([g[1] for g in got], np.float32([w[1] for w in want]), rtol=1e-6, err_msg=key)


def _wandb_records(path):
    """The protobuf records of a ``.wandb`` file (W&B's LevelDB-style log: a 7-byte file
    header, 32 KiB blocks, each record with a 7-byte header of CRC, length and type)."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = open(path, "rb").read()
    assert data[:4] == b":W&B"
    block, pos, parts, out = 32768, 7, b"", []
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if kind == 0:  # zeros pad the rest of a block (where the next record did not fit): skip to the next
            pos = (pos // block + 1) * block
            continue
        chunk, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
        parts = chunk if kind in (1, 2) else parts + chunk
        if kind in (1, 4):  # full, or the last piece of one
            rec = pb.Record()
            rec.ParseFromString(parts)
            out.append(rec)
    return out


def test_wandb_offline_run_holds_the_metric_rows(cache, tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.delenv("WANDB_MODE", raising=False)  # offline is the default: no network needed
    monkeypatch.setenv("WANDB_SILENT", "true")
    run_dir = tmp_path / "r"
    cfg = from_overrides(tiny_overrides(cache, run_dir, *RUN, "logger=wandb"))
    s = train(cfg)
    assert s["status"] == "completed"
    (path,) = glob.glob(str(run_dir / "wandb" / "offline-run-*" / f"run-{config_hash(cfg)}.wandb"))
    expected = _scalars(records.read_metrics(run_dir))

    def read():
        history, step_metric = {}, {}
        for rec in _wandb_records(path):
            if rec.WhichOneof("record_type") == "metric" and rec.metric.name:
                step_metric[rec.metric.name] = rec.metric.step_metric
            if rec.WhichOneof("record_type") == "history":
                items = {i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in rec.history.item}
                for k, v in items.items():
                    if not k.startswith("_"):  # W&B's own _step, _runtime, _timestamp
                        history.setdefault(k, []).append((rec.history.step.num, float(v)))
        return history, step_metric

    # W&B's service process writes the offline file; on a loaded machine its last records
    # can land a moment after finish() returns (seen once in a full suite): wait for them
    deadline = time.time() + 20
    history, step_metric = read()
    while history != expected and time.time() < deadline:
        time.sleep(0.5)
        history, step_metric = read()
    assert history == expected  # JSON keeps the float64 values exactly
    # the losses are charted against tokens by default
    assert step_metric.get("train_loss") == step_metric.get("val_loss") == "tokens"


def test_the_logger_leaves_the_run_name_and_host_reads_alone(cache, tmp_path, monkeypatch):
    pytest.importorskip("tensorboard")
    base = tiny_overrides(cache, tmp_path / "a", *RUN)
    assert config_hash(from_overrides(base)) == config_hash(from_overrides(base + ["logger=tensorboard"]))
    assert config_hash(from_overrides(base)) == config_hash(from_overrides(base + ["logger=wandb"]))
    plain, _, _ = counted_run(monkeypatch, base)
    logged, s, _ = counted_run(monkeypatch, tiny_overrides(cache, tmp_path / "b", *RUN, "logger=tensorboard"))
    assert s["status"] == "completed" and logged == plain


def test_a_missing_logger_package_is_one_line_naming_the_extra(cache, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # as if not installed: import raises ImportError
    run_dir = tmp_path / "r"
    with pytest.raises(ConfigError, match=r"logger=wandb needs the wandb package.*scaling-toolkit\[wandb\]") as e:
        train(from_overrides(tiny_overrides(cache, run_dir, *RUN, "logger=wandb")))
    assert e.value.field == "logger" and "\n" not in str(e.value)
    assert not run_dir.exists()  # nothing written before the refusal


def test_the_trainer_imports_neither_library():
    code = ("import sys, scaling.train.run, scaling.train.trainer, scaling.loggers, sweeps.job; "
            "print(sorted(m for m in ('tensorboard', 'wandb', 'torch.utils.tensorboard') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
