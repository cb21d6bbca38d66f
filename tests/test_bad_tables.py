"""A catalogue of bad tables, each given to `scaling fit` as a new user would: every one is
refused with its exact one-line message (exit 2), or fitted with a FAIL or WARN line above
the first number, and --strict turns each FAIL into exit status 1."""
import numpy as np
import pandas as pd
import pytest

from analysis import laws
from scaling.app.cli import main

P = {"E": 1.8172, "A": 482.01, "B": 2085.43, "alpha": 0.3478, "beta": 0.3658}


def grid(sizes=np.geomspace(2e7, 2e9, 5), tpp=(5, 10, 20, 40, 80), seed=0):
    rng = np.random.default_rng(seed)
    N = np.repeat(sizes, len(tpp))
    D = N * np.tile(np.asarray(tpp, float), len(sizes))
    return pd.DataFrame({"params": N, "tokens": D,
                         "loss": laws.chinchilla(N, D, **P) * np.exp(rng.normal(0, 0.003, len(N)))})


G = grid()

REFUSED = {
    "near_duplicates": (pd.concat([G, G.assign(loss=G["loss"] * (1 + 1e-9))]),
                        "rows: 50 rows repeat another row's params and tokens to within 1e-06 (rows 1, 2, 3, 4, 5, 6 "
                        "...): the same measurement twice would shrink every interval (fix: drop the copies, or pass "
                        "--allow-repeats (allow_repeats=True) if they are separate seeds)"),
    "one_size": (grid(sizes=[1e8]),
                 "params: only one distinct model size in the table; gadre2024 has a term in params that one model "
                 "size cannot determine (fix: add runs at 3 or more model sizes, or fit a law without that term)"),
    "nan_loss": (G.assign(loss=G["loss"].where(G.index != 3)),
                 "loss: 1 row(s) with a missing or non-finite loss (rows 4) (fix: clean the table, or drop such rows "
                 "with policy='omit' (--on-bad-rows omit))"),
    "negative_tokens": (G.assign(tokens=np.where(G.index == 2, -G["tokens"], G["tokens"])),
                        "tokens: 1 row(s) with a non-positive tokens (rows 3) (fix: clean the table, or drop such rows "
                        "with policy='omit' (--on-bad-rows omit))"),
    "no_loss_column": (G.drop(columns="loss"),
                       "columns: missing column(s) loss (fix: name them params, tokens, loss, or map yours with "
                       "--columns (e.g. --columns 'params=Model Size,tokens=Training Tokens,loss=loss'); the table "
                       "has: params, tokens)"),
    "exact_duplicates": (pd.concat([G, G.iloc[:2]]),
                         "rows: 2 row(s) with the same params/tokens/loss as an earlier row (rows 26, 27) (fix: clean "
                         "the table, or drop such rows with policy='omit' (--on-bad-rows omit))"),
    # five points would fall back to gadre2024's four parameters (tests/test_policy.py); four cannot
    "too_few_points": (grid(sizes=np.geomspace(2e7, 2e9, 4), tpp=(20,)),
                       "rows: 4 points cannot determine the 4 parameters of gadre2024 (fix: give more than 4 points)"),
}

# name -> (table, the check line that must stand above the numbers, whether it is a FAIL)
FLAGGED = {
    "rising_in_N": (G.assign(loss=laws.chinchilla(G["params"].max() ** 2 / G["params"], G["tokens"], **P)),
                    "[FAIL] loss falls with N", True),
    "rising_in_D": (G.assign(loss=G["loss"] * (G["tokens"] / G["params"] / 5) ** 0.05),
                    "[WARN] measured loss falls with tokens in every run", False),
    "tokens_in_billions": (G.assign(tokens=G["tokens"] / 1e9),
                           "[FAIL] units plausible: tokens as small as 0.1: tokens given in millions or billions?", True),
    "params_in_millions": (G.assign(params=G["params"] / 1e6),
                           "[FAIL] units plausible: models of 20 parameters: sizes given in millions or billions?", True),
    "mixed_units": (G.assign(tokens=np.where(G.index < 5, G["tokens"] / 1e9, G["tokens"])),
                    "[FAIL] units plausible", True),
    "flops_10x_off": (G.assign(flops=6 * G["params"] * G["tokens"] * np.where(np.arange(len(G)) % 2, 10, 1)),
                      "[FAIL] FLOPs agree with 6ND: 12 of 25 rows are more than 2x off 6ND", True),
    "two_sizes": (grid(sizes=[1e8, 4e8]), "[WARN] the fit reports no other problems: only 2 distinct model sizes", False),
    "collinear_D_20N": (grid(sizes=np.geomspace(2e7, 2e9, 10), tpp=(20,)), "[WARN]", False),
    "loss_in_percent": (G.assign(loss=G["loss"] * 100), "[FAIL] units plausible: losses up to ", True),
    "loss_in_thousandths": (G.assign(loss=G["loss"] / 1000), "[FAIL] units plausible: losses as small as ", True),
    "constant_loss": (G.assign(loss=3.0), "[FAIL] loss falls with D", True),
    # loss rising in every run: not a training loss (accuracy, or another column)
    "rising_everywhere": (G.assign(loss=2 * (G["params"] / 1e7) ** 0.1 * (G["tokens"] / 1e8) ** 0.05),
                          "[FAIL] measured loss falls with tokens in every run: loss does not fall with tokens in",
                          True),
}


def fit(tmp_path, name, df, *extra):
    path = tmp_path / f"{name}.csv"
    df.to_csv(path, index=False)
    try:
        code = main(["fit", str(path), "--quiet", *extra])
    except SystemExit as e:  # argparse's own exits
        code = e.code
    return code


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_refused_with_one_line(tmp_path, capsys, name):
    df, message = REFUSED[name]
    code = fit(tmp_path, name, df)
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err == f"scaling fit: error: {message}\n"


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(FLAGGED))
def test_flagged_above_every_number(tmp_path, capsys, name):
    df, line, is_fail = FLAGGED[name]
    # --strict prints the same report and only changes the exit status, so one run shows both
    code = fit(tmp_path, name, df, "--strict")
    out = capsys.readouterr().out
    assert code == (1 if is_fail else 0)
    above = out.split("\n\n[[", 1)[0]  # everything before the fit's own report
    assert "[[Checks]]" in above and line in above, above


def test_a_failed_check_exits_0_without_strict(tmp_path, capsys):
    name = sorted(n for n, (_, _, is_fail) in FLAGGED.items() if is_fail)[0]
    df, line, _ = FLAGGED[name]
    assert fit(tmp_path, name, df) == 0
    assert line in capsys.readouterr().out


def test_the_catalogue_is_large_enough():
    assert len(REFUSED) + len(FLAGGED) >= 15
