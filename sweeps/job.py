"""One sweep job: decide from the run directory what to do, then do it without raising.

Resubmission policy, by the status in the run's ``summary.json``:

=================  ==========================================================
no summary         start the run
``running``        resume it (``resume=auto``: from its newest valid checkpoint)
``resumable``      resume it (it was pre-empted and saved a checkpoint)
``failed``         retry it, resuming from its checkpoint if it has one
                   (``sweep.retry_failed=false`` leaves it alone)
``diverged``       leave it: the same config diverges again
                   (``sweep.retry_diverged=true`` retries it)
``completed``      skip it: no training, nothing rewritten
=================  ==========================================================

A job never raises for a failed run. It records ``status: failed`` and the one-line
error in the run's ``summary.json`` and returns, so Hydra goes on with the other jobs
and the index is still written at the end. Each decision is appended to the run's
``attempts.jsonl`` (time, host, pid, action, outcome), so resubmissions leave a trail.

A run directory is locked (``flock`` on ``.lock``) while a job works in it; a second
job for the same run, e.g. from a sweep resubmitted while the first is still going,
finds the lock held and leaves the run alone. The kernel drops the lock when the
process dies, however it dies.
"""
# Deferred imports: scaling.train.run (torch) is imported inside the try that trains, so that the
# processes that only plan, name or index runs (Hydra's launching process resolving
# ${sweep_run:}, `scaling sweep --dry-run`, the index) never load torch, and a trainer that fails
# to import is recorded as a failed run like any other error; the scaling.config, scaling.flops
# and .naming imports in _stub_summary gain nothing (.naming, imported at the top, loads them)
# and may move up.
from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

from analysis.common import records as R
from analysis.common.errors import ConfigError, DivergenceError, ToolkitError

from .naming import HASH_CHARS, readable_name, split_job_config

log = logging.getLogger("sweeps")

ATTEMPTS_FILE = "attempts.jsonl"
LOCK_FILE = ".lock"


# --------------------------------------------------------------------------- naming


def job_identity(cfg: Any) -> tuple:
    """(run directory, TrainConfig or None, sweep options, naming error or None) of a job config.

    A config that cannot be turned into a training config still gets a stable directory
    (``invalid,...-<hash of the raw config>``), so its failure is recorded and shows in
    the index instead of stopping the sweep.
    """
    root = _sweep_root(cfg)
    try:
        tc, sweep = split_job_config(cfg)
    except ToolkitError as e:
        return root / _invalid_name(cfg), None, _raw_sweep(cfg), e
    from .naming import run_name

    return root / run_name(tc), tc, sweep, None


def run_dir_name(cfg: Any) -> str:
    """The run directory's name for a job config; never raises (Hydra calls it for the subdir)."""
    return job_identity(cfg)[0].name


def _sweep_root(cfg: Any) -> Path:
    root = _raw_sweep(cfg).get("root") or "runs/sweep"
    return Path(os.path.abspath(os.path.expanduser(str(root))))


def _raw_sweep(cfg: Any) -> dict:
    from omegaconf import DictConfig, OmegaConf

    node = cfg.get("sweep") if hasattr(cfg, "get") else None
    if node is None:
        return {}
    if isinstance(node, DictConfig):
        return OmegaConf.to_container(node, resolve=True)
    return dict(node)


def _invalid_name(cfg: Any) -> str:
    import hashlib

    from omegaconf import DictConfig, OmegaConf

    data = OmegaConf.to_container(cfg, resolve=False) if isinstance(cfg, DictConfig) else dict(cfg)
    data.pop("hydra", None)
    data.pop("sweep", None)
    digest = hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()
    return f"invalid,model={data.get('model')}-{digest[:HASH_CHARS]}"


# --------------------------------------------------------------------------- the job


def task(cfg: Any) -> dict:
    """Hydra's task function for one job (see :mod:`sweeps.app`)."""
    return run_job(cfg)


def run_job(cfg: Any) -> dict:
    """Run, resume, retry or skip one sweep job; returns a small result dict, never raises
    for a failed run (only for interrupts such as KeyboardInterrupt or SystemExit)."""
    rank, world = _distributed_env()
    run_dir, tc, sweep, name_error = job_identity(cfg)
    if rank != 0:
        return _run_other_rank(run_dir, tc)
    share = _share_decision if world > 1 else (lambda run_dir, train: None)
    run_dir.mkdir(parents=True, exist_ok=True)
    name = run_dir.name
    if name_error is not None:
        share(run_dir, False)
        log.error("%s: %s", name, name_error)
        record_failure(run_dir, name, None, name_error)
        _attempt(run_dir, action="start", outcome="failed", error=str(name_error))
        return _result(run_dir, "failed", action="start", error=str(name_error))

    lock = RunLock(run_dir)
    if not lock.acquire():
        share(run_dir, False)
        log.warning("%s: another process is working on this run; leaving it alone", name)
        return _result(run_dir, "busy", action="skip")
    try:
        return _run_locked(run_dir, tc, sweep, share)
    finally:
        lock.release()


def _run_locked(run_dir: Path, tc, sweep: dict, share) -> dict:
    name = run_dir.name
    summary, status, action = next_action(run_dir, sweep)
    share(run_dir, action != "skip")
    if action == "skip":
        log.info("%s: %s earlier; skipped", name, status)
        _attempt(run_dir, action="skip", outcome=status)
        return _result(run_dir, status, action="skip", summary=summary)

    log.info("%s: %s", name, {"start": "starting", "resume": f"resuming ({status})",
                              "retry": "retrying (failed earlier)"}[action])
    tc.run_name = name
    tc.out = str(run_dir)
    _set_threads(tc)
    _attempt(run_dir, action=action, outcome="started")
    t0 = time.perf_counter()
    requeue = _no_requeue
    try:
        from scaling.train.run import train

        with checkpoint_before_requeue() as requeue:
            summary = train(tc, run_dir)
        outcome, error = (summary or {}).get("status", "completed"), None
    except DivergenceError as e:
        outcome, error = "diverged", str(e)
        record_failure(run_dir, name, tc, e, status="diverged")
    except Exception as e:  # a failed run must not stop the others
        outcome, error = "failed", one_line(e)
        record_failure(run_dir, name, tc, e)
    seconds = time.perf_counter() - t0
    if error:
        log.error("%s: %s: %s", name, outcome, error)
    else:
        log.info("%s: %s in %.1f s", name, outcome, seconds)
    _attempt(run_dir, action=action, outcome=outcome, error=error, seconds=round(seconds, 3))
    requeue()
    return _result(run_dir, outcome, action=action, error=error, summary=_read_summary_or_none(run_dir))


def _run_other_rank(run_dir: Path, tc) -> dict:
    """A non-zero rank of a multi-process SLURM job: train alongside rank 0, record nothing.

    Rank 0 alone decides (lock, status, retry policy) and keeps the attempts log and the
    summary, as the trainer writes records from rank 0 only. The others wait for its
    decision, since a rank that trains while rank 0 does not would wait forever for the
    process group; they must not raise either, or submitit fails the whole array task.
    """
    if not _wait_for_decision(run_dir) or tc is None:
        return _result(run_dir, "skipped", action="skip")
    tc.run_name, tc.out = run_dir.name, str(run_dir)
    try:
        from scaling.train.run import train

        with checkpoint_before_requeue() as requeue:
            train(tc, run_dir)
        requeue()
        return _result(run_dir, "completed", action="train")
    except Exception as e:  # rank 0 records the failure
        return _result(run_dir, "failed", action="train", error=one_line(e))


def _decision_file(run_dir: Path) -> Path:
    # One file per SLURM job and restart: a requeued job decides afresh.
    key = "-".join(os.environ.get(k, "0") for k in ("SLURM_JOB_ID", "SLURM_ARRAY_TASK_ID", "SLURM_RESTART_COUNT",
                                                     "TORCHELASTIC_RUN_ID"))
    return Path(run_dir) / f".rank0-{key}.json"


def _share_decision(run_dir: Path, train: bool) -> None:
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    R.atomic_write_json(_decision_file(run_dir), {"train": bool(train), "pid": os.getpid()})


def _wait_for_decision(run_dir: Path, timeout: float = 900.0) -> bool:
    """Rank 0's decision for this job (True: train); False if none comes within ``timeout``."""
    path = _decision_file(run_dir)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            try:
                return bool(json.loads(path.read_text())["train"])
            except (OSError, ValueError, KeyError):
                pass  # written atomically, so only a foreign file lands here
        time.sleep(0.2)
    log.error("%s: no decision from rank 0 within %.0f s; not training", run_dir.name, timeout)
    return False


def _no_requeue() -> None:
    pass


def decide(status: Optional[str], retry_failed: bool = True, retry_diverged: bool = False) -> str:
    """What a resubmitted job does with a run in ``status``: start, resume, retry or skip."""
    if status is None:
        return "start"
    if status in ("running", "resumable"):
        return "resume"
    if status == "failed":
        return "retry" if retry_failed else "skip"
    if status == "diverged":
        return "retry" if retry_diverged else "skip"
    return "skip"  # completed


def next_action(run_dir: Path, sweep: dict) -> tuple[Optional[dict], Optional[str], str]:
    """(summary or None, status or None, action) for the run in ``run_dir`` under the
    sweep's retry policy: what a (re)submission does, and what a dry run reports."""
    summary = _read_summary_or_none(run_dir)
    status = summary.get("status") if summary else None
    action = decide(status, retry_failed=bool(sweep.get("retry_failed", True)),
                    retry_diverged=bool(sweep.get("retry_diverged", False)))
    return summary, status, action


# --------------------------------------------------------------------------- records


def one_line(e: BaseException) -> str:
    """An exception as one line: ToolkitErrors as they are, others prefixed with their type."""
    text = str(e) if isinstance(e, ToolkitError) else f"{type(e).__name__}: {e}"
    return " ".join(text.split()) or type(e).__name__


def record_failure(run_dir: Path, name: str, tc, error: BaseException, status: str = "failed") -> dict:
    """Mark a run ``failed`` (or ``diverged``) with its one-line error, atomically.

    Keeps whatever the trainer already wrote to ``summary.json`` (sizes, tokens trained,
    branches); when the run failed before writing one, the summary is built from the
    config so the index can still place the run.
    """
    summary = _read_summary_or_none(run_dir) or _stub_summary(name, tc)
    if summary.get("status") == "diverged":
        status = "diverged"  # the trainer's own verdict stands
    summary["status"] = status
    summary["error"] = one_line(error)
    summary.setdefault("run_name", name)
    R.atomic_write_json(Path(run_dir) / R.SUMMARY_FILE, summary)
    return summary


def _stub_summary(name: str, tc) -> dict:
    """A summary with every required field, filled from the config where it resolves."""
    s = {k: None for k, (req, _) in R.SUMMARY_FIELDS.items() if req}
    s.update(schema_version=R.SCHEMA_VERSION, run_name=name, status="failed", tokens_trained=0,
             flops=0.0, flops_6n=0.0, config_hash=None)
    if tc is None:
        return s
    from scaling import config as C
    from scaling import flops as F

    from .naming import model_args, vocab_size

    s["config_hash"] = C.config_hash(tc)
    try:
        args = model_args(tc)
        s["params"] = F.count_params(args)
        s["params_nonembedding"] = F.nonembedding_params(args)
        s["model"] = {"preset": args.preset, "d_model": args.d_model, "n_layers": args.n_layers,
                      "n_heads": args.n_heads, "vocab_size": args.vocab_size, "seq_len": args.seq_len}
        s["tokens"] = C.resolve(tc, vocab_size(tc)).tokens
    except ToolkitError:
        pass  # the config itself is what failed; the error says why
    return s


def _read_summary_or_none(run_dir: Path) -> Optional[dict]:
    path = Path(run_dir) / R.SUMMARY_FILE
    if not path.exists():
        return None
    try:
        s = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None  # atomic writes make this a foreign file; treat the run as not started
    return s if isinstance(s, dict) else None


def _attempt(run_dir: Path, **row) -> None:
    row = {"time": datetime.now(timezone.utc).isoformat(timespec="seconds"), "host": socket.gethostname(),
           "pid": os.getpid(), **_launch_info(), **row}
    with R.JsonlAppender(Path(run_dir) / ATTEMPTS_FILE, fsync=False) as f:
        f.append(row)


def read_attempts(run_dir: Path) -> list:
    """The rows of a run's ``attempts.jsonl`` (empty when it has none)."""
    path = Path(run_dir) / ATTEMPTS_FILE
    return list(R.iter_jsonl(path, warn_torn=False)) if path.exists() else []


def _result(run_dir: Path, status: str, action: str, error: Optional[str] = None,
            summary: Optional[dict] = None) -> dict:
    summary = summary or {}
    return {"run_dir": str(run_dir), "run_name": run_dir.name, "status": status, "action": action,
            "error": error or summary.get("error"), "final_val_loss": summary.get("final_val_loss")}


# --------------------------------------------------------------------------- environment


def _hydra_cfg():
    try:
        from hydra.core.hydra_config import HydraConfig

        return HydraConfig.get() if HydraConfig.initialized() else None
    except Exception:
        return None


def _launch_info() -> dict:
    info = {}
    hc = _hydra_cfg()
    if hc is not None:
        info["launcher"] = hc.runtime.choices.get("hydra/launcher")
        try:
            info["job_num"] = int(hc.job.num)
        except (TypeError, ValueError, AttributeError):
            pass
    if os.environ.get("SLURM_JOB_ID"):
        info["slurm_job_id"] = os.environ["SLURM_JOB_ID"]
    return info


def _set_threads(tc) -> None:
    """Split the CPU cores between jobs that share a machine, unless ``threads`` is set.

    joblib runs ``n_jobs`` trainings side by side; torch would give each of them every
    core, and oversubscribed cores make all of them slower.
    """
    if tc.threads is not None:
        return
    hc = _hydra_cfg()
    if hc is None:
        return
    threads, _ = launcher_threads(hc)
    if threads is not None:
        tc.threads = threads


def launcher_threads(hc) -> tuple[Optional[int], int]:
    """(torch threads per job, jobs side by side on this machine) under the launcher of a
    Hydra config ``hc``: joblib splits the cores between its ``n_jobs``; submitit gives each
    job ``cpus_per_task``; otherwise (None, 1), one job after another with torch's default."""
    launcher = hc.runtime.choices.get("hydra/launcher")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if launcher == "joblib":
        n_jobs = int(hc.launcher.get("n_jobs") or 1)
        n_jobs = cores if n_jobs < 0 else n_jobs
        return max(1, cores // max(1, n_jobs)), max(1, n_jobs)
    if launcher and launcher.startswith("submitit"):
        cpt = hc.launcher.get("cpus_per_task")
        if cpt:
            return max(1, int(cpt)), 1
    return None, 1


@contextlib.contextmanager
def checkpoint_before_requeue():
    """Under SLURM through submitit: on the time-limit signal, checkpoint first, then requeue.

    submitit answers its signal (USR2, ``signal_delay_s`` before the limit) by requeueing
    the job and exiting at once, which would lose the work since the last periodic
    checkpoint. Inside this block the signal becomes the trainer's own stop request
    (SIGTERM: checkpoint at the end of the current step, status ``resumable``); the
    yielded callable then runs submitit's handler, to requeue, once the caller has
    recorded the outcome. Elsewhere the block and the callable do nothing.
    """
    pending: list = []
    previous = None
    sig = None
    if os.environ.get("SUBMITIT_EXECUTOR") == "slurm":
        sig = getattr(signal, "SIG" + os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2"), signal.SIGUSR2)
        previous = signal.getsignal(sig)

        def on_time_limit(signum, frame):
            if not pending:
                log.warning("time limit near: checkpointing before submitit requeues the job")
                os.kill(os.getpid(), signal.SIGTERM)
            pending.append((signum, frame))

        signal.signal(sig, on_time_limit)

    def requeue() -> None:
        if pending and callable(previous):
            previous(*pending[0])  # submitit: requeue (rank 0 only) and exit

    try:
        yield requeue
    finally:
        if sig is not None:
            signal.signal(sig, previous)


def _distributed_env() -> tuple:
    """(rank, world size) of this process; under a multi-task submitit job, also export
    torchrun's variables.

    SLURM starts one process per task (``tasks_per_node`` = GPUs); the trainer joins a
    process group from RANK / WORLD_SIZE / MASTER_ADDR / MASTER_PORT / LOCAL_RANK as
    torchrun sets them, so they are derived here from submitit's job environment.
    """
    if "SUBMITIT_EXECUTOR" not in os.environ:  # set by submitit in the jobs it starts
        return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    import submitit

    try:
        env = submitit.JobEnvironment()
        tasks, rank = int(env.num_tasks), int(env.global_rank)
    except Exception:  # not inside a submitit job after all
        return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    if tasks > 1:
        # MASTER_PORT, when the user set it, is read by submitit and written back unchanged.
        submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False, overwrite=True)
    return rank, tasks


class RunLock:
    """An exclusive, non-blocking ``flock`` on ``RUN_DIR/.lock`` held while a job works there."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / LOCK_FILE
        self._fd: Optional[int] = None

    def acquire(self, note: bool = True) -> bool:
        """Take the lock if no live process holds it; ``note`` writes host and pid into the file."""
        import fcntl

        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        if note:
            os.ftruncate(fd, 0)
            os.write(fd, f"{socket.gethostname()} {os.getpid()}\n".encode())
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            import fcntl

            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def is_locked(run_dir: Path) -> bool:
    """True when a live process holds the run's lock (checked without taking it for long)."""
    path = Path(run_dir) / LOCK_FILE
    if not path.exists():
        return False
    lock = RunLock(run_dir)
    if lock.acquire(note=False):
        lock.release()
        return False
    return True
