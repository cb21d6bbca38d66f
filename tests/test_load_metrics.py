"""analysis.common.records.load_metrics: every logged row of a sweep's runs in one frame, checked
against the runs' own metrics.jsonl files read line by line."""
import json

import numpy as np
import pandas as pd
import pytest

from analysis.common import records
from analysis.common.errors import RecordError
from scaling.config import from_overrides
from scaling.train.run import train
from trainer_testing import tiny_overrides


@pytest.fixture(scope="module")
def sweep(cache, tmp_path_factory):
    """Two real runs of different sizes and lengths under one directory."""
    root = tmp_path_factory.mktemp("sweep")
    train(from_overrides(tiny_overrides(cache, root / "small", "tokens=8192", "log_every=2")))
    train(from_overrides(tiny_overrides(cache, root / "wide", "tokens=12288", "log_every=3", "arch.d_model=48")))
    return root


def test_one_frame_holds_every_row_of_every_run(sweep):
    df = records.load_metrics(sweep)
    assert list(df.columns[:len(records.RUN_COLUMNS)]) == list(records.RUN_COLUMNS)
    for name in ("small", "wide"):
        run_dir = sweep / name
        want = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line]
        summary = json.loads((run_dir / "summary.json").read_text())
        got = df[df["run_dir"] == str(run_dir)]
        assert len(got) == len(want) and got["step"].tolist() == [r["step"] for r in want]
        assert (got["run"] == summary["run_name"]).all() and (got["model"] == summary["model"]["preset"]).all()
        assert (got["params"] == summary["params"]).all() and (got["status"] == "completed").all()
        for key in ("tokens", "train_loss", "lr", "wall_time"):
            np.testing.assert_array_equal(got[key].to_numpy(float), [r[key] for r in want])
        vals = [r.get("val_loss", np.nan) for r in want]
        np.testing.assert_array_equal(got["val_loss"].to_numpy(float), vals)
    assert df.groupby("run")["params"].nunique().eq(1).all() and df["params"].nunique() == 2


def test_an_unreadable_run_is_an_error_or_skipped_when_asked(sweep, tmp_path):
    import shutil

    root = tmp_path / "s"
    shutil.copytree(sweep, root)
    (root / "wide" / "summary.json").write_text('{"run_name": ')
    with pytest.raises(RecordError, match="summary.json"):
        records.load_metrics(root)
    with pytest.warns(UserWarning, match="cannot be read"):
        df = records.load_metrics(root, skip_unreadable=True)
    assert set(df["run_dir"]) == {str(root / "small")} and len(df.attrs["skipped_runs"]) == 1


def test_a_directory_without_runs_gives_an_empty_frame_with_the_columns(tmp_path):
    df = records.load_metrics(tmp_path)
    assert isinstance(df, pd.DataFrame) and df.empty and {"run", "model", "step", "train_loss"} <= set(df.columns)
