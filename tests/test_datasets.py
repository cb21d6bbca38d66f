"""analysis.data.datasets: the shipped public ladders, their names, descriptions and licences,
and `scaling datasets` / `scaling fit NAME` with no user files."""
import csv
import fnmatch
import io
import json
from collections import Counter
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from analysis.data import datasets
from analysis.data.loading import load_points
from analysis.common.errors import InputError, TableError
from scaling.app.cli import main

ROOT = Path(__file__).resolve().parents[1]
CONFIG = "porian2024:rw/tuned/short/const/standard/val"


def _csv_rows(stem):
    """The shipped CSV read with the csv module alone: a reference independent of the loaders."""
    text = resources.files("analysis.data.datasets").joinpath(f"{stem}.csv").read_text(encoding="utf-8")
    return list(csv.DictReader(io.StringIO(text)))


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


# ---------------------------------------------------------------------- names and row counts

def test_porian_names_are_the_fifteen_configurations_field_by_field():
    iso = _csv_rows("porian2024_isoflop")
    configs = Counter(r["config_id"] for r in iso)
    names = [n for n in datasets.list_datasets() if n.startswith("porian2024:")]
    assert len(names) == 15 == len(configs)
    assert {n.split(":", 1)[1] for n in names} == set(configs)
    # the documented field order: DATASET/HPARAMS/WARMUP/DECAY/COUNT/LOSS, each from the CSV's own columns
    first = {}
    for r in iso:
        first.setdefault(r["config_id"], r)
    for cid, r in first.items():
        dataset = {"RefinedWeb": "rw", "OpenWebText2": "owt2"}[r["dataset"]]
        assert cid.split("/") == [dataset, r["hparams"], r["warmup"], r["decay"], r["param_count"], r["loss_split"]]
    assert datasets.PORIAN_FIELDS == ("DATASET", "HPARAMS", "WARMUP", "DECAY", "COUNT", "LOSS")


def test_porian_loaders_return_every_row_with_the_csv_values():
    iso = _csv_rows("porian2024_isoflop")
    counts = Counter(r["config_id"] for r in iso)
    assert sum(counts.values()) == 1745
    for cid, count in counts.items():
        df = datasets.load(f"porian2024:{cid}")
        assert len(df) == count
        ref = [r for r in iso if r["config_id"] == cid]
        np.testing.assert_array_equal(df["params"], [float(r["n_params"]) for r in ref])
        np.testing.assert_array_equal(df["loss"], [float(r["loss"]) for r in ref])
        np.testing.assert_array_equal(df["tokens"], [float(r["tokens"]) for r in ref])
        # the configuration's own FLOP count, C = 6ND in its N convention
        np.testing.assert_allclose(df["flops"], 6 * df["params"] * df["tokens"], rtol=1e-9)
        assert list(df.columns[:5]) == ["params", "tokens", "loss", "flops", "run"]
        assert set(np.unique(df["budget"])) <= {1e17 * 2.0 ** k for k in range(-3, 9)}


def test_porian_run_ids_follow_the_schedule():
    # cosine to the budget: one run per (N, C); constant lr and long cosine: one curve per model
    chin = datasets.load("porian2024:rw/base/short/chinchilla/standard/val")
    assert chin["run"].nunique() == len(chin)
    const = datasets.load(CONFIG)
    assert const["run"].nunique() == const["model_id"].nunique()


def test_muennighoff_subsets_match_the_csv_flags():
    rows = _csv_rows("muennighoff2023_runs")
    assert len(rows) == 317
    flag = {k: sum(r[k] == "True" for r in rows) for k in ("kept_by_notebook_filter", "in_curated_fit_set")}
    assert flag["in_curated_fit_set"] == 182 and flag["kept_by_notebook_filter"] == 296
    assert len(datasets.load("muennighoff2023:all")) == 317
    assert len(datasets.load("muennighoff2023")) == flag["kept_by_notebook_filter"]
    cur = datasets.load("muennighoff2023:curated")
    assert len(cur) == 182
    assert set(cur["run"]) == {r["run_name"] for r in rows if r["in_curated_fit_set"] == "True"}
    np.testing.assert_allclose(cur["flops"], 6 * cur["params"] * cur["tokens"], rtol=1e-12)


def test_muennighoff_reference_constants_reproduce_the_tables_own_predictions():
    # describe() quotes the C4 base constants; with them E + A/N^a + B/D^b must give the
    # table's loss_pred_chinchilla_c4_base column, computed by the table's authors' notebook parse.
    ref = datasets.describe("muennighoff2023").reference
    runs = datasets.table("muennighoff2023_runs")
    pred = ref["E"] + ref["A"] / runs["params"] ** ref["alpha"] + ref["B"] / runs["tokens"] ** ref["beta"]
    np.testing.assert_allclose(pred, runs["loss_pred_chinchilla_c4_base"], rtol=1e-6)


# ---------------------------------------------------------------------- load_points and descriptions

def test_load_points_accepts_a_dataset_name():
    df = load_points(CONFIG)
    assert len(df) == 121 and df.attrs["dataset"] == CONFIG and df.attrs["loss_noise_sd"] == 0.002
    assert load_points("porian2024:owt2/tuned/short/const/standard/val").attrs["loss_noise_sd"] == 0.01
    with pytest.raises(TableError, match="missing or non-finite loss"):
        load_points("muennighoff2023:all")
    with pytest.warns(UserWarning, match="dropped 9 bad row"):
        assert len(load_points("muennighoff2023:all", policy="omit")) == 308


@pytest.mark.parametrize("name, fix", [
    ("porian2024", "porian2024:rw/tuned/short/const/standard/val"),
    ("porian2024:", "porian2024:rw/tuned/short/const/standard/val"),
    ("porian2024:rw/tuned/short/const/standard", "did you mean porian2024:rw/tuned/short/const/standard/val"),
    ("porian2024:bogus", "porian2024:DATASET/HPARAMS/WARMUP/DECAY/COUNT/LOSS"),
    ("muennighoff2023:foo", "muennighoff2023:curated"),
    ("muenighoff2023", "did you mean muennighoff2023"),
    ("nosuchset", "scaling datasets"),
])
def test_bad_names_give_one_line_naming_the_fix(name, fix):
    with pytest.raises(InputError) as e:
        datasets.load(name)
    msg = str(e.value)
    assert "\n" not in msg and "fix:" in msg and fix in msg
    if name != "nosuchset":  # load_points reads a name that is no file as a dataset name
        with pytest.raises(InputError, match="fix:"):
            load_points(name)


def test_a_file_with_a_dataset_like_name_is_still_a_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("porian2024").write_text("params,tokens,loss\n1e6,2e7,4.0\n2e6,4e7,3.8\n")
    assert len(load_points("porian2024")) == 2


def test_describe_says_what_the_loss_means_source_licence_and_caveats():
    fam = datasets.describe("porian2024")
    assert len(fam.configurations) == 15 and "porian2024:DATASET/HPARAMS" in str(fam)
    mid = datasets.describe("porian2024:rw/base/long/kaplan/standard/val")
    assert "mid-schedule" in mid.loss and "validation loss" in mid.loss
    assert "mid-schedule" in mid.caveats[0]
    assert mid.licence == "MIT" and "2406.19146" in mid.citation and "formll" in mid.source
    assert mid.reference["a"] == pytest.approx(float(_csv_rows("porian2024_fits")[1]["a_exponent_N"]))
    assert "smoothed" in datasets.describe("porian2024:rw/base/long/kaplan/kaplan/train").loss
    late = datasets.describe("porian2024:rw/base/short/chinchilla/attention/train")
    assert "late-schedule" in late.loss
    end = datasets.describe("porian2024:rw/base/short/chinchilla/standard/val")
    assert "at the end of a run" in end.loss and "mid-schedule" not in end.loss
    mu = datasets.describe("muennighoff2023:curated")
    assert mu.rows == 182 and mu.licence == "Apache-2.0" and "C4 validation" in mu.loss
    assert "2305.16264" in mu.citation and any("unique_tokens" in c for c in mu.caveats)
    json.dumps(mu.to_dict())


# ---------------------------------------------------------------------- licences and packaging

def test_licences_are_shipped_beside_the_tables():
    assert "Permission is hereby granted, free of charge" in datasets.licence_text("porian2024")  # MIT
    assert "Apache License" in datasets.licence_text("muennighoff2023")
    for fam in ("porian2024", "muennighoff2023"):
        assert datasets.describe(fam).licence_file == f"{fam}.LICENSE"


def test_package_data_globs_cover_every_data_file():
    tomllib = pytest.importorskip("tomllib")
    globs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["analysis"]
    data = [p.name for p in (ROOT / "analysis" / "data" / "datasets").iterdir()
            if p.is_file() and p.suffix not in (".py", ".pyc")]
    assert len(data) == 10  # seven tables and three licences
    for name in data:
        assert any(fnmatch.fnmatch(f"data/datasets/{name}", g) for g in globs), name
    for stem in datasets.TABLES:
        assert not datasets.table(stem).empty


# ---------------------------------------------------------------------- the CLI

def test_scaling_datasets_lists_and_describes(capsys):
    code, out, _ = run(capsys, "datasets", "--json")
    assert code == 0
    names = [d["name"] for d in json.loads(out)]
    assert len(names) == 30 and CONFIG in names and "muennighoff2023:curated" in names and "gadre2024:rpj/paper" in names
    code, out, _ = run(capsys, "datasets")
    assert code == 0 and CONFIG in out and "DATASET/HPARAMS/WARMUP/DECAY/COUNT/LOSS" in out
    code, out, _ = run(capsys, "datasets", CONFIG)
    assert code == 0 and "constant-learning-rate" in out and "licence: MIT" in out
    code, out, _ = run(capsys, "datasets", "muennighoff2023", "--json")
    assert code == 0 and json.loads(out)["rows"] == 296


def test_scaling_datasets_bad_name_is_one_line_exit_2(capsys):
    code, out, err = run(capsys, "datasets", "porian2024:rw/tuned")
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1 and "fix:" in err


def test_scaling_fit_runs_on_a_shipped_configuration(capsys):
    code, out, _ = run(capsys, "fit", CONFIG, "--law", "chinchilla", "--json", "--quiet")
    assert code == 0
    d = json.loads(out)
    assert d["law"]["name"] == "chinchilla" and d["n_points"] + d["short_runs"]["set_aside"] == 121
    # the fit keeps the points at 20 tokens per parameter or more, or at the largest size's
    # longest run if that is shorter (here it is): count them by hand
    table = datasets.load(CONFIG)
    tpp = table["tokens"] / table["params"]
    threshold = min(20.0, tpp[table["params"] == table["params"].max()].max())
    assert threshold < 20 and d["short_runs"]["min_tokens_per_param"] == pytest.approx(threshold)
    assert d["n_points"] == int((tpp >= threshold * (1 - 1e-9)).sum())
    code, out, _ = run(capsys, "fit", CONFIG, "--json", "--quiet")
    d = json.loads(out)
    # auto chose by backtest, and says so
    assert code == 0 and d["choice"]["reason"].startswith(f"auto: {d['law']['name']}") and d["backtest"]["rows"]
    code, out, _ = run(capsys, "fit", "porian2024:rw/base/short/chinchilla/standard/val", "--law", "approach2",
                       "--json", "--quiet")
    assert code == 0 and json.loads(out)["n_budgets"] >= 10


def test_gadre2024_tables_and_protocols():
    # Gadre et al. 2024: 104 runs; per training set the four small sizes at M = 5..640 (c4
    # lacks one), a 1B at M = 20 and one longer M, a 7B at M = 20 (shared/datasets README).
    runs = datasets.table("gadre2024_runs")
    assert len(runs) == 104
    for short, full, n in (("c4", "c4_original", 34), ("rpj", "rpj", 35), ("rw", "rw_original", 35)):
        every = datasets.load(f"gadre2024:{short}")
        assert len(every) == n == int((runs["dataset"] == full).sum())
        paper, small, targets = (datasets.load(f"gadre2024:{short}/{p}") for p in ("paper", "small", "targets"))
        assert len(small) + len(targets) == n and len(targets) == 3 and small["params"].max() < 1e9
        # the paper's five: the four small sizes at M = 20, and the smallest at M = 320
        assert sorted(zip(paper["params"], paper["multiplier"])) == sorted(
            [(p, 20.0) for p in np.unique(small["params"])] + [(small["params"].min(), 320.0)])
        np.testing.assert_allclose(every["flops"], 6 * every["params"] * every["tokens"])
    seven = datasets.load("gadre2024:rpj/targets").query("params > 5e9")
    assert float(seven["loss"].iloc[0]) == float(runs.query("dataset == 'rpj' and params > 5e9")["loss"].iloc[0])
    assert "C4 validation" in datasets.describe("gadre2024:rw/small").loss


def test_gadre2024_names_are_checked():
    with pytest.raises(InputError, match="did you mean gadre2024:rpj/paper"):
        datasets.load("gadre2024:rpj/papr")
