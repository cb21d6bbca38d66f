"""Every command's ``--json`` against the documented schema (docs/json.md, docs/json-schema.json),
"never" cases included. ``train`` and ``demo`` are checked where their tests already run them
(test_cli_consistency.py, test_demo_consistency.py)."""
import json
from pathlib import Path

import jsonschema
import pytest

from cli_testing import POINTS, assert_json_schema
from scaling.app.cli import main

ROOT = Path(__file__).resolve().parents[1]
DEMO_RUNS = str(ROOT / "docs" / "data" / "demo_runs")


def _json(capsys, argv):
    capsys.readouterr()
    assert main([str(a) for a in argv]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.fixture(scope="module")
def points(tmp_path_factory):
    path = tmp_path_factory.mktemp("schema") / "points.csv"
    path.write_text(POINTS)
    return path


def test_the_schema_is_valid_json_schema_and_names_every_command():
    from scaling.app.cli import COMMANDS

    schema = json.loads((ROOT / "docs" / "json-schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    with_json = {"fit", "extrapolate", "plot", "report", "demo", "validate", "curve", "runs", "sweep", "train", "datasets"}
    assert with_json <= set(COMMANDS)
    assert {c.split("_")[0] for c in schema["commands"]} == with_json


def test_fit_json_with_predictions_and_a_saved_fit(points, capsys, tmp_path):
    d = _json(capsys, ["fit", points, "--law", "chinchilla", "--json", "--quiet", "--predict", "3e7:1e9,1e9:2e10",
                       "--bootstrap", "8", "--jobs", "1", "-o", tmp_path / "fit.json"])
    assert_json_schema(d, "fit")
    assert d["law"]["name"] == "chinchilla" and d["law"]["bootstrap_draws"] == 8
    assert [(p["params"], p["tokens"]) for p in d["predictions"]] == [(3e7, 1e9), (1e9, 2e10)]
    auto = _json(capsys, ["fit", points, "--json", "--quiet"])
    assert_json_schema(auto, "fit")
    assert auto["choice"]["law_name"] == auto["law"]["name"] and "backtest" not in auto["choice"]
    with pytest.raises(jsonschema.ValidationError):  # the old shape is refused: law as a bare name
        assert_json_schema({**d, "law": "chinchilla"}, "fit")


def test_extrapolate_json_single_several_targets_and_never(points, capsys):
    one = _json(capsys, ["extrapolate", points, "--json", "--quiet"])
    assert_json_schema(one, "extrapolate")
    # a loss below every smaller model's floor: each answer is "never", not null
    low = _json(capsys, ["extrapolate", points, "--law", "chinchilla", "--target", "1.75", "--json", "--quiet",
                         "--no-curves"])
    assert_json_schema(low, "extrapolate")
    assert low["models"] and all(m["tokens_to_match"] == "never" and not m["reachable"] for m in low["models"])
    both = _json(capsys, ["extrapolate", points, "--law", "chinchilla", "--target", "largest,1.75", "--json",
                          "--quiet"])
    assert_json_schema(both, "extrapolate")
    assert len(both["targets"]) == 2 and both["targets"][0]["target"]["loss"] != 1.75
    assert both["targets"][1]["models"][0]["tokens_to_match"] == "never"
    with pytest.raises(jsonschema.ValidationError):  # "never" encoded as null is refused
        bad = json.loads(json.dumps(low))
        bad["models"][0]["tokens_to_match"] = None
        assert_json_schema(bad, "extrapolate")


def test_published_llama_json_follows_the_schema(capsys):
    d = _json(capsys, ["extrapolate", "--published", "llama", "--json"])
    assert_json_schema(d, "extrapolate")
    assert any(m["tokens_to_match"] == "never" for law in d["laws"] for m in law["models"])


def test_plot_report_runs_curve_validate_datasets_sweep(capsys, tmp_path):
    assert_json_schema(_json(capsys, ["plot", DEMO_RUNS, "--json", "-o", tmp_path / "p.png"]), "plot")
    assert_json_schema(_json(capsys, ["report", DEMO_RUNS, "--json", "-o", tmp_path / "report"]), "report")
    assert_json_schema(_json(capsys, ["runs", DEMO_RUNS, "--json"]), "runs")
    run = sorted(Path(DEMO_RUNS).iterdir())[0] / "metrics.jsonl"
    assert_json_schema(_json(capsys, ["curve", "fit", run, "--json", "-o", tmp_path / "c.json"]), "curve_fit")
    assert_json_schema(_json(capsys, ["curve", "predict", tmp_path / "c.json", run, "--json"]), "curve_predict")
    v = _json(capsys, ["validate", "gadre2024:rpj", "--allow-repeats", "--json"])
    assert_json_schema(v, "validate")
    assert_json_schema(_json(capsys, ["datasets", "--json"]), "datasets")
    assert_json_schema(_json(capsys, ["datasets", "gadre2024:rpj", "--json"]), "datasets")
    assert_json_schema(_json(capsys, ["sweep", "demo", "--dry-run", "--no-estimate", "--json",
                                      "--out", tmp_path / "sweep"]), "sweep")
