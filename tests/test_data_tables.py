"""Observation tables: reading, column mapping, bad-row policy, and refusals with one-line errors."""
import json
import warnings

import numpy as np
import pandas as pd
import pytest

from analysis.data.loading import describe_points, load_points, parse_columns, table_notes
from analysis.common.errors import InputError, TableError
from analysis.fitting.fit import fit_law
from analysis.common.records import SCHEMA_VERSION, atomic_write_json


def _table():
    n = np.array([1e8, 2e8, 4e8, 1e8, 2e8, 4e8])
    d = np.array([2e9, 4e9, 8e9, 8e9, 2e9, 4e9])
    return pd.DataFrame({"params": n, "tokens": d, "loss": 2.0 + 400 / n ** 0.34 + 400 / d ** 0.28})


def test_replication_spellings_are_recognised_and_tokens_derived(tmp_path):
    # The Chinchilla replication's table has Model Size and Training FLOP, no tokens.
    t = _table()
    path = tmp_path / "svg_extracted_data.csv"
    pd.DataFrame({"Model Size": t["params"], "Training FLOP": 6 * t["params"] * t["tokens"],
                  "loss": t["loss"]}).to_csv(path, index=False)
    df = load_points(path)
    assert list(df.columns[:4]) == ["params", "tokens", "loss", "flops"]
    np.testing.assert_allclose(df["tokens"], t["tokens"], rtol=1e-12)
    assert any("tokens computed as flops / (6 * params)" in n for n in table_notes(df))


def test_explicit_mapping_and_flops_computed_as_6nd(tmp_path):
    t = _table()
    path = tmp_path / "points.parquet"
    t.rename(columns={"params": "n_total", "tokens": "seen", "loss": "xent"}).to_parquet(path)
    df = load_points(path, columns="params=n_total,tokens=seen,loss=xent")
    np.testing.assert_allclose(df["flops"], 6 * t["params"] * t["tokens"])
    assert "flops computed as 6 * params * tokens (no FLOP column given)" in table_notes(df)
    # a dict written source -> canonical means the same
    df2 = load_points(path, columns={"n_total": "params", "seen": "tokens", "xent": "loss"})
    pd.testing.assert_frame_equal(df, df2)


@pytest.mark.parametrize("column,value,reason", [
    ("loss", np.nan, "a missing or non-finite loss"),
    ("tokens", -5e9, "a non-positive tokens"),
    ("params", 0.0, "a non-positive params"),
])
def test_bad_rows_are_refused_by_default_and_dropped_with_omit(column, value, reason):
    t = _table()
    t.loc[2, column] = value
    with pytest.raises(TableError) as err:
        load_points(t)
    msg = str(err.value)
    assert msg.startswith(f"{column}: 1 row(s) with {reason} (rows 3)") and "--on-bad-rows omit" in msg
    assert "\n" not in msg
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        df = load_points(t, policy="omit")
    assert len(df) == len(t) - 1 and any(reason in str(x.message) for x in w)
    assert any("dropped 1 bad row(s)" in n for n in table_notes(df))


def test_duplicate_rows_are_reported():
    t = pd.concat([_table(), _table().iloc[[0]]], ignore_index=True)
    with pytest.raises(TableError, match=r"1 row\(s\) with the same params/tokens/flops/loss as an earlier row \(rows 7\)"):
        load_points(t.assign(flops=6 * t["params"] * t["tokens"]))
    with pytest.warns(UserWarning, match="dropped 1 bad row"):
        assert len(load_points(t, policy="omit")) == 6


def test_missing_columns_name_what_the_table_has():
    with pytest.raises(TableError, match=r"columns: missing column\(s\) tokens .*the table has: params, loss"):
        load_points(pd.DataFrame({"params": [1e8], "loss": [3.0]}))
    with pytest.raises(TableError, match="--columns maps params to 'Size'"):
        load_points(_table(), columns={"params": "Size"})
    with pytest.raises(InputError, match="policy"):
        load_points(_table(), policy="drop")
    with pytest.raises(InputError, match="bad column mapping"):
        parse_columns("params")


def test_one_model_size_cannot_fit_a_law_in_n():
    t = _table().assign(params=1e8)
    with pytest.raises(TableError, match="params: only one distinct model size"):
        fit_law(load_points(t), "chinchilla")
    with pytest.raises(TableError, match="tokens: only one distinct token budget"):
        fit_law(load_points(_table().assign(tokens=1e9)), "kaplan_d")


def test_sweep_directory_reads_final_and_branch_points(tmp_path):
    for i, (n, d, loss) in enumerate([(1e6, 2e7, 4.1), (2e6, 4e7, 3.8)]):
        run = tmp_path / f"run{i}"
        run.mkdir()
        atomic_write_json(run / "summary.json", {
            "schema_version": SCHEMA_VERSION, "run_name": f"r{i}", "status": "completed", "params": n,
            "params_nonembedding": n * 0.8, "tokens": d, "tokens_trained": d, "flops": 6.5 * n * d,
            "flops_6n": 4.8 * n * d, "final_val_loss": loss, "config_hash": "x"})
        (run / "branches.jsonl").write_text(json.dumps(
            {"tokens": d / 2, "step": 5, "fork_step": 4, "flops_6n": 2.4 * n * d, "flops": 3.25 * n * d,
             "val_loss": loss + 0.2}) + "\n")
    df = load_points(tmp_path)
    assert len(df) == 4 and set(df["point"]) == {"final", f"branch@{1e7}", f"branch@{2e7}"}
    assert df["run"].nunique() == 2 and "params_nonembedding" in df.columns
    # the records' own FLOP count is kept, not replaced by 6ND
    np.testing.assert_allclose(df["flops"] / (df["params"] * df["tokens"]), 6.5)
    info = describe_points(df)
    assert info["n_sizes"] == 2 and info["n_runs"] == 2


def test_sweep_index_keeps_only_final_losses(tmp_path):
    # A runs.csv lists every run; failed and running runs have no final loss yet.
    index = pd.DataFrame({
        "run": ["a", "a", "b", "c", "d", "d"],
        "point": ["branch@1000", "final", "final", "final", "branch@500", "final"],
        # branch rows carry their run's status, as in sweeps/index.py
        "status": ["completed", "completed", "failed", "running", "diverged", "diverged"],
        "params": [1e5, 1e5, 2e5, 3e5, 4e5, 4e5],
        "tokens": [1000, 4000, 4000, 4000, 500, 4000],
        "loss": [3.1, 2.9, None, None, 3.3, None],
    })
    path = tmp_path / "runs.csv"
    index.to_csv(path, index=False)
    with pytest.warns(UserWarning, match="diverged run"):
        df = load_points(path)
    # only a's points: b failed, c has no loss yet, and d diverged (its branch goes too)
    assert sorted(zip(df["run"], df["tokens"])) == [("a", 1000), ("a", 4000)]
    index.loc[4:5, "status"] = "running"
    index.to_csv(path, index=False)
    df = load_points(path)
    assert sorted(zip(df["run"], df["tokens"])) == [("a", 1000), ("a", 4000), ("d", 500)]
    assert any("unfinished" in n for n in df.attrs["notes"])
