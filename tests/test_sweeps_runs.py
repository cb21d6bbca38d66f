"""Real multiruns on CPU: every launcher, resubmission, a killed run, a failing run.

Each test launches its sweep as a user would (``python -m sweeps -m ...`` in a child
process, or ``scaling sweep`` and ``run_experiment``, which start that child themselves), on
a 2 x 2 grid of tiny models (a few optimizer steps each) over a 1 MB subset of the built-in
corpus.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from analysis.common import records as R
from scaling.app.cli import main as cli_main
from sweeps.index import read_index
from sweeps.job import read_attempts
from sweeps.launch import EXIT_RUNS_FAILED, run_experiment

#: A tiny model and data set: each run takes a fraction of a second after start-up.
TINY = ["budget=tokens", "seq_len=32", "batch_tokens=512", "data.max_bytes=1000000", "data.val_frac=0.1",
        "data.val_tokens=2048", "eval_count=1", "progress=none", "threads=1"]
GRID = ["model=nano,micro", "tokens=2048,4096"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """One token cache for the module: the corpus subset is tokenized once."""
    return {"SCALING_CACHE": str(tmp_path_factory.mktemp("token_cache"))}


def _files(run_dir: Path) -> dict:
    """mtime of every file a training writes in a run directory (not the sweep's bookkeeping)."""
    return {str(p.relative_to(run_dir)): p.stat().st_mtime_ns for p in sorted(run_dir.rglob("*"))
            if p.is_file() and p.name not in ("attempts.jsonl", ".lock") and ".hydra" not in p.parts
            and not p.name.endswith(".log") and not p.name.startswith(".rank0-")}


def _run_dirs(root: Path) -> list[Path]:
    return R.find_run_dirs(root)


@pytest.mark.parametrize("launcher, extra", [
    ("basic", []),
    ("joblib", ["hydra.launcher.n_jobs=2"]),
    ("submitit_local", ["hydra.launcher.timeout_min=10"]),
])
def test_tiny_multirun_completes_and_writes_the_index(tmp_path, cache, launcher, extra):
    df = run_experiment(None, tmp_path, overrides=GRID + TINY + extra, launcher=launcher, quiet=True, env=cache)
    assert len(df) == 4 and set(df["status"]) == {"completed"}
    assert sorted(zip(df["params"], df["tokens"])) == sorted(
        (p, t) for p in set(df["params"]) for t in (2048, 4096))
    assert len(set(df["params"])) == 2
    assert (tmp_path / "runs.csv").exists() and (tmp_path / "runs.parquet").exists()
    for run_dir in _run_dirs(tmp_path):
        s = R.read_summary(run_dir)
        assert s["status"] == "completed" and s["final_val_loss"] > 0
        assert s["run_name"] == run_dir.name  # the run's name is its directory's
        (attempt,) = [a for a in read_attempts(run_dir) if a["outcome"] != "started"]
        assert attempt["action"] == "start" and attempt["launcher"] == launcher


def test_rerunning_the_same_multirun_trains_nothing(tmp_path, cache, capsys, monkeypatch):
    # The demo preset with its grid replaced by a tiny one (and no branches: 4-8 steps).
    overrides = GRID + TINY + ["sweep.branch_fracs=[]"]
    run_experiment("demo", tmp_path, overrides=overrides, launcher="basic", quiet=True, env=cache)
    before = {d.name: _files(d) for d in _run_dirs(tmp_path)}
    assert len(before) == 4 and all(any(k.startswith("checkpoints/") for k in f) for f in before.values())
    # Resubmit through the CLI, called in this process (it starts the sweep's child itself):
    # the same runs, found again by their configs.
    for k, v in cache.items():
        monkeypatch.setenv(k, v)
    capsys.readouterr()
    rc = cli_main(["sweep", "--out", str(tmp_path), "--launcher", "basic", "demo"] + overrides)
    got = capsys.readouterr()
    assert rc == 0, got.err[-2000:]
    assert "4 runs: 4 completed" in got.out
    df = read_index(tmp_path / "runs.csv")
    assert set(df["status"]) == {"completed"} and len(df) == 4
    after = {d.name: _files(d) for d in _run_dirs(tmp_path)}
    assert after == before  # no record, metric row or checkpoint was rewritten
    for d in _run_dirs(tmp_path):
        assert [a["action"] for a in read_attempts(d)] == ["start", "start", "skip"]


def test_killed_run_resumes_alone_on_resubmission(tmp_path, cache):
    # The second job is long and checkpoints every 5 steps; the sweep is killed (SIGKILL,
    # no chance to clean up) as soon as that job has written its first checkpoint.
    overrides = ["model=nano", "tokens=2048,61440", "ckpt_every_tokens=2560", "log_every=1"] + TINY
    cmd = [sys.executable, "-m", "sweeps", "-m", f"sweep.root={tmp_path}"] + overrides
    env = {**os.environ, **cache}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    victim = None
    deadline = time.time() + 120
    try:
        while time.time() < deadline and proc.poll() is None:
            victim = next((d for d in tmp_path.glob("model=nano,tokens=61.4k-*")
                           if list(d.glob("checkpoints/step_*.json"))), None)
            if victim is not None:
                break
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert victim is not None, "the long run never checkpointed (or finished before it could be killed)"
    (short,) = [d for d in _run_dirs(tmp_path) if d != victim]
    assert R.read_summary(short)["status"] == "completed"
    assert R.read_summary(victim)["status"] == "running"
    killed_rows = R.read_metrics(victim)
    short_files = _files(short)

    from sweeps.index import build_index

    assert set(build_index(tmp_path)["status"]) == {"completed", "interrupted"}

    df = run_experiment(None, tmp_path, overrides=overrides, quiet=True, env=cache)
    assert set(df["status"]) == {"completed"}
    assert _files(short) == short_files
    assert [a["action"] for a in read_attempts(short)] == ["start", "start", "skip"]
    assert [(a["action"], a["outcome"]) for a in read_attempts(victim)] == [
        ("start", "started"), ("resume", "started"), ("resume", "completed")]
    rows = R.read_metrics(victim)
    assert [r["step"] for r in rows] == list(range(1, 121))  # no step lost or repeated
    # Rows up to the resumed checkpoint are the very rows written before the kill (same
    # wall-clock stamps): the run continued from its checkpoint instead of starting over.
    kept = [r for r in killed_rows if r["step"] <= 5]
    assert kept and rows[:len(kept)] == kept


def test_a_failing_run_is_marked_failed_and_the_others_complete(tmp_path, cache, capsys):
    # tokens=100 is less than one 512-token batch: that job's training raises ConfigError.
    overrides = ["model=nano,micro", "tokens=100,2048"] + TINY
    cmd = [sys.executable, "-m", "sweeps", "-m", f"sweep.root={tmp_path}"] + overrides
    proc = subprocess.run(cmd, env={**os.environ, **cache}, capture_output=True, text=True)
    assert proc.returncode == EXIT_RUNS_FAILED, proc.stderr[-2000:]
    assert "sweep finished with 2 failed of 4 runs" in proc.stderr
    capsys.readouterr()
    assert cli_main(["runs", str(tmp_path), "--json"]) == 0
    df = json.loads(capsys.readouterr().out)
    assert df["counts"] == {"completed": 2, "failed": 2}
    for row in df["rows"]:
        if row["status"] == "failed":
            assert row["run"].startswith(("model=nano,tokens=100-", "model=micro,tokens=100-"))
            assert row["error"].startswith("tokens: the budget (100 tokens) is smaller than one global batch")
        else:
            assert row["loss"] > 0
    # Resubmitting retries the failed runs (and only them).
    proc = subprocess.run(cmd, env={**os.environ, **cache}, capture_output=True, text=True)
    assert proc.returncode == EXIT_RUNS_FAILED
    for d in _run_dirs(tmp_path):
        actions = [a["action"] for a in read_attempts(d)]
        assert actions[-1] == ("retry" if R.read_summary(d)["status"] == "failed" else "skip")


RANK_SCRIPT = """
import json, sys
from sweeps.launch import compose
from sweeps.job import run_job
print("RESULT " + json.dumps(run_job(compose(None, sys.argv[1:]))))
"""


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _slurm_job(tmp_path, cache, job_id: str) -> list[dict]:
    """One 2-task job as SLURM and submitit would start it (faked environment, gloo on CPU)."""
    port = str(_free_port())
    procs = []
    for rank in (0, 1):
        env = {**os.environ, **cache, "SUBMITIT_EXECUTOR": "slurm", "SLURM_JOB_ID": job_id, "SLURM_NTASKS": "2",
               "SLURM_JOB_NUM_NODES": "1", "SLURM_NODEID": "0", "SLURM_JOB_NODELIST": "localhost",
               "SLURM_PROCID": str(rank), "SLURM_LOCALID": str(rank), "MASTER_PORT": port}
        procs.append(subprocess.Popen([sys.executable, "-c", RANK_SCRIPT, f"sweep.root={tmp_path}", "model=nano",
                                       "tokens=4096", "device=cpu"] + TINY, env=env, text=True,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
    results = []
    for p in procs:
        out, _ = p.communicate(timeout=240)
        assert p.returncode == 0, out[-3000:]
        results.append(json.loads(out.split("RESULT ", 1)[1].splitlines()[0]))
    return results


def test_multi_task_slurm_job_trains_one_run_on_every_rank(tmp_path, cache):
    r0, r1 = _slurm_job(tmp_path, cache, "101")
    assert (r0["status"], r1["status"]) == ("completed", "completed")
    (run_dir,) = _run_dirs(tmp_path)
    s = R.read_summary(run_dir)
    assert s["status"] == "completed" and s["world_size"] == 2  # one data-parallel run over both tasks
    attempts = read_attempts(run_dir)
    assert [(a["action"], a["outcome"]) for a in attempts] == [("start", "started"), ("start", "completed")]
    assert attempts[0]["slurm_job_id"] == "101"
    files = _files(run_dir)
    # Resubmitted as a new job: rank 0 skips the finished run and the other rank follows it.
    r0, r1 = _slurm_job(tmp_path, cache, "102")
    assert (r0["action"], r1["action"]) == ("skip", "skip")
    assert _files(run_dir) == files
