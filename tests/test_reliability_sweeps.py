"""A run that diverges inside a sweep: marked ``diverged`` in the run record and in the
sweep index, left alone on resubmission, and excluded (with a warning) by the analysis
that reads the sweep, end to end through the sweep's own job function."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from analysis.common import records as R
from analysis.data.loading import load_points
from scaling.train.diagnostics import DIVERGED_FILE
from sweeps import job as J
from sweeps.index import INDEX_CSV, write_index
from sweeps.launch import compose
from trainer_testing import poison

TINY = ["budget=tokens", "seq_len=32", "batch_tokens=512", "data.max_bytes=1000000", "data.val_frac=0.1",
        "data.val_tokens=2048", "eval_count=1", "progress=none", "threads=1", "optim.lr=1e-2"]


def _job(root, cache, model, tokens):
    return compose(None, [f"sweep.root={root}", f"model={model}", f"tokens={tokens}",
                          f"data.cache_dir={cache}", *TINY])


def test_diverged_run_is_marked_in_the_index_and_excluded_from_analysis(tmp_path, monkeypatch):
    root, cache = tmp_path / "sweep", tmp_path / "cache"
    done = [J.run_job(_job(root, cache, "nano", t)) for t in (2048, 4096)]
    assert [r["status"] for r in done] == ["completed", "completed"]
    with monkeypatch.context() as m:
        poison(m, range(3, 100))  # the micro run's loss turns NaN at its third step
        bad = J.run_job(_job(root, cache, "micro", 4096))
    assert bad["status"] == "diverged" and "non-finite loss at step 3" in bad["error"]

    info = write_index(root, parquet=False)
    assert info["counts"] == {"completed": 2, "diverged": 1}
    index = pd.read_csv(root / INDEX_CSV)
    row = index[index["status"] == "diverged"].iloc[0]
    assert row["run"] == bad["run_name"] and "step 3" in row["error"] and pd.isna(row["loss"])
    # the diagnostic record sits in the run's directory
    diag = json.loads((root / row["run_dir"] / DIVERGED_FILE).read_text())
    assert diag["step"] == 3 and diag["what"] == "loss"
    # resubmitting the sweep leaves it alone (the same config would diverge again)
    again = J.run_job(_job(root, cache, "micro", 4096))
    assert again["action"] == "skip" and again["status"] == "diverged"
    assert [a["action"] for a in J.read_attempts(root / row["run_dir"])] == ["start", "start", "skip"]

    # analysis: the diverged run contributes no point and says so
    with pytest.warns(UserWarning, match=r"run diverged .*step 3.*excluded from analysis"):
        pts = load_points(root)
    assert set(pts["run"]) == {r["run_name"] for r in done}
    assert sorted(pts["tokens"]) == [2048, 4096]
    completed = {R.read_summary(root / r["run_name"])["final_val_loss"] for r in done}
    assert set(pts["loss"]) == completed
