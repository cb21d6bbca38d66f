"""Soak test: a sweep of many tiny runs, killed at random and resubmitted until it finishes.

``python -m scaling.app.soak`` (or ``make soak``) launches the sweep the way a researcher
does (``python -m sweeps -m ...`` with the joblib launcher, two jobs side by side) and
interrupts it at random moments with one of three faults:

``kill``       SIGKILL to every process of the sweep (a node dies, an OOM killer fires)
``term``       SIGTERM to every process (SLURM pre-emption: runs checkpoint and stop)
``kill-job``   SIGKILL to one training job only (its sweep then fails around it)

After each fault it waits for every process to be gone, notes how far each unfinished
run had logged and which checkpoint it will resume from, and resubmits the same command.
When a submission finishes on its own, the result is checked:

* every run is ``completed`` and trained to completion exactly once (no training
  attempt after the one that completed it);
* each run's ``metrics.jsonl`` holds every step exactly once, its ``branches.jsonl``
  every cooldown branch exactly once (lost and duplicated steps: 0);
* no fault cost more than one checkpoint interval of steps;
* the sweep index ``runs.csv`` lists exactly the run directories, with their statuses
  and losses;
* a sample of runs, retrained here without interruption, gives the same losses bit for bit.

The summary is printed as a table and written as JSON (``--result``); the exit status is
0 when every check passes, 1 otherwise. Figures of a recorded soak are in
``docs/reliability.md``.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import random
import signal
import subprocess
import sys
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

from omegaconf import OmegaConf

from analysis.common import records as R
from analysis.common.text import format_table
from scaling.config import to_train_config
from scaling.train.run import train
from sweeps.index import INDEX_CSV, build_index
from sweeps.job import LOCK_FILE, is_locked, read_attempts
from scaling import checkpoint as ckpt

log = logging.getLogger("scaling.app.soak")

#: Each run: a ~41k-parameter model, 1,024-token steps on a 40-file slice of the built-in
#: corpus, a WSD schedule with one cooldown branch, a checkpoint every CKPT_STEPS steps;
#: a few seconds of training, so most faults land while runs train.
CKPT_STEPS = 20
BATCH = 1024
# device=cpu: the uninterrupted references are compared bit for bit, which CUDA's
# default (non-deterministic) kernels would not allow.
RUN_KEYS = ["device=cpu", "model=nano", "arch.d_model=32", "arch.n_heads=2", "budget=tokens", "seq_len=64",
            f"batch_tokens={BATCH}", "threads=1", "data.max_files=40", "data.val_frac=0.2",
            "data.val_tokens=4096", "log_every=1", "eval_count=3", "optim.lr=1e-2", "progress=none",
            "schedule.kind=wsd", f"schedule.branches=[{40 * BATCH}]", f"ckpt_every_tokens={CKPT_STEPS * BATCH}"]
#: Budgets in steps; with the seeds they make the grid of runs.
STEPS = (150, 200, 250, 300, 400, 500)
FAULTS = ("kill", "term", "kill-job")
FAULT_WEIGHTS = (0.5, 0.3, 0.2)


def grid_overrides(n_runs: int) -> list[str]:
    """Sweep overrides for ``n_runs`` runs: budgets x seeds (rounded up to whole seeds)."""
    seeds = max(1, -(-n_runs // len(STEPS)))
    tokens = ",".join(str(s * BATCH) for s in STEPS)
    return RUN_KEYS + [f"tokens={tokens}", "seed=" + ",".join(str(i) for i in range(seeds))]


def sweep_command(out: Path, n_runs: int, jobs: int) -> list[str]:
    return [sys.executable, "-m", "sweeps", "-m", f"sweep.root={out}", "hydra/launcher=joblib",
            f"hydra.launcher.n_jobs={jobs}", "sweep.index_parquet=false", *grid_overrides(n_runs)]


# --------------------------------------------------------------------------- processes

def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def _wait_group(proc: subprocess.Popen, out: Path, timeout: float) -> bool:
    """Wait for the sweep process to exit and no job to hold a run, then SIGKILL whatever of
    its process group is left (idle launcher workers orphaned by a dead parent, as a
    scheduler would at the end of the job). True if a job had to be killed at the timeout."""
    deadline = time.monotonic() + timeout
    forced = False
    while True:
        proc.poll()
        if proc.returncode is not None and not _locked_runs(out):
            break
        if time.monotonic() > deadline:
            log.info("jobs still running %.0f s after the fault; killing them", timeout)
            forced = True
            break
        time.sleep(0.05)
    if _group_alive(proc.pid):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    while _group_alive(proc.pid):
        time.sleep(0.05)
    return forced


def _locked_runs(out: Path) -> dict[Path, int]:
    """Run directories a live job holds, with that job's pid (from the lock file)."""
    held = {}
    for lock in out.glob(f"*/{LOCK_FILE}"):
        run = lock.parent
        if is_locked(run):
            try:
                held[run] = int(lock.read_text().split()[1])
            except (OSError, IndexError, ValueError):
                continue
    return held


def _training_started(out: Path, since: float) -> bool:
    return any(p.stat().st_mtime > since for p in out.glob("*/metrics.jsonl"))


# --------------------------------------------------------------------------- records

def _logged_steps(run: Path) -> list[int]:
    """Steps of the complete rows of a run's metrics.jsonl (a torn last line is not a step)."""
    path = run / "metrics.jsonl"
    if not path.exists():
        return []
    steps = []
    for line in path.read_text().split("\n"):
        try:
            steps.append(int(json.loads(line)["step"]))
        except (ValueError, KeyError, TypeError):
            continue
    return steps


def _resume_step(run: Path) -> int:
    """The step a resubmitted job will resume from: its newest checkpoint that verifies."""

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # damaged ones are skipped; that is what is measured here
        found = ckpt.latest_valid(run)
    return int(found[1]["step"]) if found else 0


def _status(run: Path) -> Optional[str]:
    try:
        return json.loads((run / "summary.json").read_text())["status"]
    except (OSError, ValueError, KeyError):
        return None


def after_fault(out: Path) -> list[dict]:
    """For each unfinished run: the last step logged and the step it will resume from."""
    rows = []
    for run in sorted(p for p in out.iterdir() if p.is_dir() and (p / "summary.json").exists()):
        status = _status(run)
        if status == "completed":
            continue
        steps = _logged_steps(run)
        logged = max(steps, default=0)
        resume = _resume_step(run)
        rows.append({"run": run.name, "status": status, "logged": logged, "resume": resume,
                     "redone": max(0, logged - resume)})
    return rows


# --------------------------------------------------------------------------- checks

def check_runs(out: Path, n_expected: int) -> dict:
    """Exactly-once checks on every run, and the index against the run directories."""
    import pandas as pd

    problems: list[str] = []
    runs = R.find_run_dirs(out)
    lost = duplicated = 0
    completions = resumes = 0
    for run in runs:
        s = R.read_summary(run)
        if s["status"] != "completed":
            problems.append(f"{run.name}: status {s['status']}")
            continue
        steps = [r["step"] for r in R.read_metrics(run)]
        want = list(range(1, s["steps"] + 1))
        lost += len(set(want) - set(steps))
        duplicated += len(steps) - len(set(steps))
        if steps != want:
            problems.append(f"{run.name}: metrics steps are not 1..{s['steps']} exactly once")
        branches = [(b["fork_step"], b["step"]) for b in R.read_branches(run)]
        if len(branches) != len(set(branches)) or len(branches) != len(s.get("branches") or []):
            problems.append(f"{run.name}: branches {branches} do not match the summary's")
        attempts = read_attempts(run)
        trained = [a for a in attempts if a.get("action") != "skip"]
        done = [i for i, a in enumerate(attempts) if a.get("action") != "skip" and a.get("outcome") == "completed"]
        # A kill between the trainer's final summary and the attempt's own row leaves the
        # completing attempt without an outcome; the next submission then skips the run.
        completions += len(done) or 1
        resumes += sum(1 for a in trained if a.get("action") == "resume" and a.get("outcome") == "started")
        if len(done) > 1:
            problems.append(f"{run.name}: trained to completion {len(done)} times")
        if done and any(a.get("action") != "skip" for a in attempts[done[0] + 1:]):
            problems.append(f"{run.name}: trained again after completing")
    if len(runs) != n_expected:
        problems.append(f"{len(runs)} run directories, expected {n_expected}")

    # the index the last submission wrote, against the records
    index_ok = False
    csv = out / INDEX_CSV
    if not csv.exists():
        problems.append("no runs.csv")
    else:
        written = pd.read_csv(csv)
        rebuilt = build_index(out)
        finals = written[written["point"] == "final"]
        same_runs = sorted(finals["run"]) == sorted(r.name for r in runs)
        key = ["run", "point", "status", "tokens", "loss"]
        same_rows = (written[key].sort_values(["run", "point"]).reset_index(drop=True)
                     .equals(rebuilt[key].sort_values(["run", "point"]).reset_index(drop=True)))
        losses_ok = all(abs(row["loss"] - R.read_summary(out / row["run_dir"])["final_val_loss"]) == 0
                        for _, row in finals.iterrows())
        index_ok = same_runs and same_rows and losses_ok
        if not index_ok:
            problems.append(f"runs.csv does not match the run directories (runs {same_runs}, rows {same_rows}, "
                            f"losses {losses_ok})")
    return {"runs": len(runs), "lost_steps": lost, "duplicated_steps": duplicated, "completions": completions,
            "resumed_attempts": resumes, "index_matches": index_ok, "problems": problems}


def check_reference(out: Path, sample: int, rng: random.Random, work: Path) -> dict:
    """Retrain ``sample`` runs here, uninterrupted, and compare losses bit for bit."""
    runs = R.find_run_dirs(out)
    picked = rng.sample(runs, min(sample, len(runs)))
    results = []
    for run in picked:
        cfg = to_train_config(OmegaConf.load(run / R.CONFIG_FILE))
        ref = work / run.name
        cfg.out = str(ref)
        cfg.data.cache_dir = str(out / ".token_cache")  # not part of the config hash
        train(cfg)
        same = ([r["train_loss"] for r in R.read_metrics(run)] == [r["train_loss"] for r in R.read_metrics(ref)]
                and R.read_summary(run)["final_val_loss"] == R.read_summary(ref)["final_val_loss"]
                and [b["val_loss"] for b in R.read_branches(run)] == [b["val_loss"] for b in R.read_branches(ref)])
        results.append({"run": run.name, "identical": same})
        log.info("reference %s: %s", run.name, "identical" if same else "DIFFERENT")
    return {"checked": len(results), "identical": sum(r["identical"] for r in results), "runs": results}


# --------------------------------------------------------------------------- the soak

def soak(out: Path, n_runs: int = 30, kills: int = 30, seed: int = 0, jobs: int = 2, sample: int = 4,
         min_delay: float = 0.3, max_delay: float = 3.0, max_submissions: Optional[int] = None) -> dict:
    """Run the soak in ``out`` (which must not hold another soak) and return its result."""
    rng = random.Random(seed)
    out.mkdir(parents=True, exist_ok=True)
    n_expected = len(STEPS) * max(1, -(-n_runs // len(STEPS)))
    cmd = sweep_command(out, n_runs, jobs)
    env = dict(os.environ, SCALING_CACHE=str(out / ".token_cache"))
    repo = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (repo, env.get("PYTHONPATH")) if p)
    max_submissions = max_submissions or kills + 20
    faults: list[dict] = []
    submissions = 0
    t0 = time.time()
    finished = False
    sweep_log = open(out / "soak_sweep.log", "a")
    try:
        while submissions < max_submissions:
            submissions += 1
            start = time.time()
            proc = subprocess.Popen(cmd, env=env, stdout=sweep_log, stderr=subprocess.STDOUT,
                                    start_new_session=True)
            fault = None
            if len(faults) < kills:
                fault = rng.choices(FAULTS, FAULT_WEIGHTS)[0]
                # most faults land while runs train; some anywhere (start-up, index writing)
                anywhere = rng.random() < 0.2
                delay = rng.uniform(min_delay, max_delay) + (rng.uniform(0, 6) if anywhere else 0)
                armed = None
                while proc.poll() is None:
                    now = time.time()
                    if armed is None and (anywhere or _training_started(out, start)):
                        armed = now + delay
                    if armed is not None and now >= armed:
                        break
                    time.sleep(0.02)
            else:  # every fault has been injected: let this submission finish
                proc.wait()
            if proc.poll() is not None:  # it finished before the fault came
                _wait_group(proc, out, 60)
                log.info("submission %d: sweep exited with %s after %.1f s", submissions, proc.returncode,
                         time.time() - start)
                if proc.returncode == 0 and all(_status(r) == "completed" for r in _run_dirs(out)) \
                        and len(_run_dirs(out)) == n_expected:
                    finished = True
                    break
                continue
            victim = None
            if fault == "kill-job":
                held = _locked_runs(out)
                if held:
                    victim, pid = rng.choice(sorted(held.items()))
                    os.kill(pid, signal.SIGKILL)
                else:
                    fault = "kill"
            if fault == "kill":
                os.killpg(proc.pid, signal.SIGKILL)
            elif fault == "term":
                os.killpg(proc.pid, signal.SIGTERM)
            at = time.time() - start
            forced = _wait_group(proc, out, 60)
            state = after_fault(out)
            faults.append({"submission": submissions, "fault": fault, "after_s": round(at, 2),
                           "victim": victim.name if victim else None, "forced": forced, "unfinished": state})
            busy = [r for r in state if r["logged"] > r["resume"]]
            log.info("submission %d: %s after %.1f s; %d runs unfinished, %d lose steps (max %d)", submissions,
                     fault, at, len(state), len(busy), max((r["redone"] for r in state), default=0))
    finally:
        sweep_log.close()
    wall = time.time() - t0

    checks = check_runs(out, n_expected)
    ref = check_reference(out, sample, rng, out / ".reference") if finished else {"checked": 0, "identical": 0}
    redone = [r["redone"] for f in faults for r in f["unfinished"]]
    by_kind = {k: sum(1 for f in faults if f["fault"] == k) for k in FAULTS}
    # a fault "caught" a run when that run had logged steps and was not finished
    caught = [f for f in faults if any(r["logged"] > 0 for r in f["unfinished"])]
    result = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "seed": seed, "jobs": jobs, "ckpt_every_steps": CKPT_STEPS,
        "runs": checks["runs"], "submissions": submissions, "faults": len(faults), "faults_by_kind": by_kind,
        "faults_mid_run": len(caught), "runs_interrupted": sum(len(f["unfinished"]) for f in caught),
        "resumed_attempts": checks["resumed_attempts"], "completions": checks["completions"],
        "steps_redone_total": int(sum(redone)), "steps_redone_max": int(max(redone, default=0)),
        "steps_redone_max_after_term": int(max((r["redone"] for f in faults if f["fault"] == "term"
                                                for r in f["unfinished"]), default=0)),
        "lost_steps": checks["lost_steps"], "duplicated_steps": checks["duplicated_steps"],
        "index_matches": checks["index_matches"], "reference": ref, "finished": finished,
        "wall_s": round(wall, 1), "problems": checks["problems"], "fault_log": faults,
    }
    problems = list(checks["problems"])
    if not finished:
        problems.append(f"the sweep did not finish within {max_submissions} submissions")
    if result["steps_redone_max"] > CKPT_STEPS:
        problems.append(f"a fault cost {result['steps_redone_max']} steps, more than one checkpoint interval")
    if ref["checked"] and ref["identical"] != ref["checked"]:
        problems.append("a resumed run differs from its uninterrupted reference")
    result["problems"] = problems
    result["passed"] = not problems
    return result


def _run_dirs(out: Path) -> list[Path]:
    return [p for p in out.iterdir() if p.is_dir() and (p / "summary.json").exists()]


def summary_table(r: dict) -> str:
    rows = [
        ("runs", r["runs"]), ("submissions", r["submissions"]),
        ("faults", f"{r['faults']} ({', '.join(f'{v} {k}' for k, v in r['faults_by_kind'].items())})"),
        ("faults that caught runs mid-training", f"{r['faults_mid_run']} ({r['runs_interrupted']} runs)"),
        ("resumed attempts", r["resumed_attempts"]), ("completions", r["completions"]),
        ("steps redone (total / max per fault)", f"{r['steps_redone_total']} / {r['steps_redone_max']} "
                                                 f"(interval {r['ckpt_every_steps']})"),
        ("steps redone after SIGTERM (max)", r["steps_redone_max_after_term"]),
        ("lost steps", r["lost_steps"]), ("duplicated steps", r["duplicated_steps"]),
        ("index matches run directories", "yes" if r["index_matches"] else "NO"),
        ("uninterrupted references identical", f"{r['reference']['identical']} / {r['reference']['checked']}"),
        ("wall time", f"{r['wall_s']:.0f} s"), ("result", "PASS" if r["passed"] else "FAIL"),
    ]
    return format_table([{"check": k, "value": str(v)} for k, v in rows], ["check", "value"], formats={"check": str, "value": str})


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m scaling.app.soak", description=__doc__.split("\n\n")[0],
        epilog="example:\n  python -m scaling.app.soak --runs 30 --kills 30 --seed 0 --out runs/soak",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=30, help="runs in the sweep, rounded up to whole seeds of "
                                                        f"{len(STEPS)} budgets (default 30)")
    p.add_argument("--kills", type=int, default=30, help="faults to inject before letting it finish (default 30)")
    p.add_argument("--seed", type=int, default=0, help="seed of the fault schedule and the reference sample")
    p.add_argument("--jobs", type=int, default=2, help="jobs side by side (joblib launcher, default 2)")
    p.add_argument("--sample", type=int, default=4, help="runs retrained uninterrupted for comparison (default 4)")
    p.add_argument("--out", default=None, help="soak directory, new or empty (default runs/soak-<UTC time>)")
    p.add_argument("--result", default=None, help="JSON result file (default OUT/soak.json)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    out = Path(args.out or f"runs/soak-{datetime.now(timezone.utc):%Y%m%d-%H%M%S}").resolve()
    if out.exists() and any(out.iterdir()):
        print(f"python -m scaling.app.soak: error: --out: {out} is not empty (fix: choose a new directory)",
              file=sys.stderr)
        return 2
    if args.runs < 1 or args.kills < 0 or args.jobs < 1:
        print("python -m scaling.app.soak: error: --runs and --jobs must be >= 1, --kills >= 0", file=sys.stderr)
        return 2
    result = soak(out, n_runs=args.runs, kills=args.kills, seed=args.seed, jobs=args.jobs, sample=args.sample)
    path = Path(args.result) if args.result else out / "soak.json"
    R.atomic_write_json(path, result)
    print(summary_table(result))
    for problem in result["problems"]:
        print(f"problem: {problem}")
    print(f"result: {path}")
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
