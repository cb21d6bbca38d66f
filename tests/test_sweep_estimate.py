"""`scaling sweep --dry-run` estimates each run's training time from a tokens/s measured
on this machine: a timed probe of the run's shape, or a run of the same shape already in
the sweep directory; shapes too large to probe quickly are scaled by FLOPs."""
import json

import pytest

from analysis.common import records
from scaling.app.cli import main as cli_main
from sweeps import estimate as E
from sweeps.launch import plan

#: A 1 MB slice of the built-in corpus, as the demo test uses.
DATA = ["data.max_bytes=1000000", "data.val_frac=0.1", "data.val_tokens=4096"]
NANO = ["model=nano", "tokens=1e5", *DATA]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One real run of the demo's nano shape in a sweep directory (the demo's launcher, so
    the same threads as a planned run)."""
    out = tmp_path_factory.mktemp("estimate") / "sweep"
    assert cli_main(["sweep", "--out", str(out), "demo", *NANO]) == 0
    (run_dir,) = records.find_run_dirs(out)
    return out, records.read_summary(run_dir)


def _dry(capsys, out, *over):
    assert cli_main(["sweep", "--dry-run", "--json", "--out", str(out), "demo", *over]) == 0
    return json.loads(capsys.readouterr().out)


def test_the_probe_measures_about_what_training_does(trained, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(E, "_PROBED", {})
    _, s = trained
    (row,) = _dry(capsys, tmp_path / "fresh", *NANO)["runs"]
    assert row["estimate_from"] == "probe" and row["seconds"] == pytest.approx(row["tokens"] / row["tokens_per_s"])
    # the probe times bare optimizer steps; training adds data loading and logging and runs
    # on a shared machine: the same order of magnitude is what an estimate promises
    assert s["tokens_per_s"] / 3 < row["tokens_per_s"] < s["tokens_per_s"] * 3, (row, s["tokens_per_s"])


def test_a_run_of_the_same_shape_in_the_sweep_gives_its_measured_throughput(trained, capsys):
    out, s = trained
    plan_ = _dry(capsys, out, "model=nano", "tokens=1e5,2e5", *DATA)
    done, new = sorted(plan_["runs"], key=lambda r: r["tokens"])
    assert done["action"] == "skip" and done["seconds"] is None  # nothing to train, nothing to estimate
    assert new["estimate_from"] == "sweep" and new["tokens_per_s"] == s["tokens_per_s"]
    assert new["seconds"] == pytest.approx(new["tokens"] / s["tokens_per_s"], rel=1e-12)
    assert cli_main(["sweep", "--dry-run", "--out", str(out), "demo", "model=nano", "tokens=1e5,2e5", *DATA]) == 0
    text = capsys.readouterr().out
    assert "from runs of the same shape in the sweep directory" in text and E.duration(new["seconds"]) in text


def test_a_shape_too_large_to_probe_is_scaled_by_flops(tmp_path, monkeypatch):
    monkeypatch.setattr(E, "_PROBED", {})
    monkeypatch.setattr(E, "PROBE_MAX_STEP_SECONDS", 0.0)  # only the smallest shape is probed
    jobs = plan("demo", ["model=nano,mini", "tokens=1e5", f"sweep.root={tmp_path}"])
    E.estimate_times(jobs)
    nano, mini = sorted(jobs, key=lambda j: j.params)
    assert (nano.estimate_from, mini.estimate_from) == ("probe", "probe, scaled")
    # the same FLOP/s on the detailed count (Hoffmann et al. 2022, App. F)
    assert mini.tokens_per_s * mini.plan.flops_per_token == pytest.approx(
        nano.tokens_per_s * nano.plan.flops_per_token, rel=1e-12)
    assert len(E._PROBED) == 1


def test_a_second_dry_run_in_one_process_reuses_the_probe(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(E, "_PROBED", {})
    calls = []
    real = E.probe_tokens_per_s
    monkeypatch.setattr(E, "probe_tokens_per_s", lambda *a: calls.append(1) or real(*a))
    first = _dry(capsys, tmp_path / "s", *NANO)
    second = _dry(capsys, tmp_path / "s", *NANO)
    assert first == second and len(calls) == 1


def test_durations_read_in_the_unit_that_fits():
    assert [E.duration(x) for x in (None, 3.25, 42, 100, 5400, 200000)] == ["", "3.2 s", "42 s", "1.7 min",
                                                                             "1.5 h", "2.3 d"]


def test_a_resumed_run_is_timed_for_the_tokens_it_has_left(trained, tmp_path, capsys):
    import shutil

    out, s = trained
    copy = tmp_path / "sweep"
    shutil.copytree(out, copy)
    (run_dir,) = records.find_run_dirs(copy)
    half = dict(s, status="resumable", tokens_trained=s["tokens"] // 2, final_val_loss=None)
    records.atomic_write_json(run_dir / records.SUMMARY_FILE, half)
    (row,) = _dry(capsys, copy, *NANO)["runs"]
    assert row["action"] == "resume" and row["estimate_from"] == "sweep"
    assert row["seconds"] == pytest.approx((s["tokens"] - s["tokens"] // 2) / s["tokens_per_s"], rel=1e-12)


def test_no_estimate_skips_the_probe_and_the_time_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(E, "probe_tokens_per_s", lambda *a: pytest.fail("--no-estimate must not probe"))
    assert cli_main(["sweep", "--dry-run", "--no-estimate", "--out", str(tmp_path / "s"), "demo", *NANO]) == 0
    out = capsys.readouterr().out
    assert "1 to train" in out and "time:" not in out
