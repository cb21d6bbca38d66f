"""The run-record layer: atomic writes, torn lines, resume truncation, the points table."""
import json
import os

import pytest

from analysis.common import records
from analysis.common.errors import RecordError


def _summary(**kw):
    s = {"schema_version": 1, "run_name": "r", "status": "completed", "params": 1000,
         "params_nonembedding": 800, "tokens": 5000, "tokens_trained": 5000, "flops": 3.1e7,
         "flops_6n": 2.4e7, "final_val_loss": 3.2, "config_hash": "abc"}
    s.update(kw)
    return s


def test_atomic_write_leaves_no_temp_and_replaces(tmp_path):
    p = tmp_path / "a.json"
    records.atomic_write_json(p, {"x": 1})
    records.atomic_write_json(p, {"x": float("nan")})
    assert json.loads(p.read_text()) == {"x": None}
    assert os.listdir(tmp_path) == ["a.json"]


def test_torn_last_line_is_skipped_but_corrupt_middle_is_an_error(tmp_path):
    p = tmp_path / "m.jsonl"
    p.write_text('{"a": 1}\n{"a": 2}\n{"a": ')
    with pytest.warns(UserWarning, match="torn"):
        assert [r["a"] for r in records.iter_jsonl(p)] == [1, 2]
    p.write_text('{"a": 1}\n{"a"\n{"a": 3}\n')
    with pytest.raises(RecordError, match="line 2"):
        list(records.iter_jsonl(p))


def test_truncate_drops_rows_after_resume_point_and_torn_tail(tmp_path):
    p = tmp_path / "m.jsonl"
    with records.JsonlAppender(p) as w:
        for s in range(1, 6):
            w.append({"step": s})
    with open(p, "a") as f:
        f.write('{"step": 6')
    assert records.truncate_jsonl(p, lambda r: r["step"] <= 3) == 3
    assert [r["step"] for r in records.iter_jsonl(p)] == [1, 2, 3]


def test_points_table_has_final_and_branch_points_and_skips_diverged(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    records.atomic_write_json(a / records.SUMMARY_FILE, _summary(run_name="a"))
    with records.JsonlAppender(a / records.BRANCHES_FILE) as w:
        w.append({"tokens": 2000, "step": 4, "fork_step": 3, "flops_6n": 1e7, "flops": 1.2e7, "val_loss": 3.5})
    records.atomic_write_json(b / records.SUMMARY_FILE, _summary(run_name="b", status="running", final_val_loss=None))
    records.atomic_write_json(c / records.SUMMARY_FILE, _summary(run_name="c", status="diverged", error="nan at step 3"))
    with pytest.warns(UserWarning, match="diverged"):
        df = records.points_table(tmp_path)
    assert list(df["point"]) == ["branch@2000", "final"]
    assert list(df["loss"]) == [3.5, 3.2]
    assert set(df["run"]) == {"a"}


def test_summary_missing_field_names_it(tmp_path):
    s = _summary()
    del s["config_hash"]
    records.atomic_write_json(tmp_path / records.SUMMARY_FILE, s)
    with pytest.raises(RecordError, match="config_hash"):
        records.read_summary(tmp_path)


def test_atomic_write_gives_ordinary_permissions(tmp_path):
    mask = os.umask(0o022)
    try:
        records.atomic_write_text(tmp_path / "r.md", "x")
    finally:
        os.umask(mask)
    assert (tmp_path / "r.md").stat().st_mode & 0o777 == 0o644
