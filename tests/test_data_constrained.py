"""Muennighoff et al. 2023's data-constrained law: the paper's fit on its own runs, the
profile of R_D*, extrapolation under a unique-token limit against hand-computed values,
and the refusals of bad input."""
import math

import numpy as np
import pandas as pd
import pytest

from analysis.selection.backtest import auto_candidates
from analysis.data.loading import load_points
from analysis.common.errors import InputError, TableError
from analysis.extrapolation.extrapolate import extrapolate
from analysis.extrapolation.study import published_case
from analysis.fitting.fit import fit_law
from analysis.laws import decay_law, get_law
from analysis.laws.muennighoff import MUENNIGHOFF2023_BASE, PAPER_START, effective_data
from analysis.fitting.profile import profile
from analysis.data.published import published_law
from analysis.fitting.result import LawFit
from analysis.extrapolation.specs import ModelSpec

# The authors' notebook (utils/parametric_fit.ipynb, cells 29, 33, 34), as recorded in
# analysis/data/datasets/muennighoff2023_constants.csv.
PAPER_R_D, PAPER_R_N = 15.387756, 5.309743
PAPER_OBJECTIVE = 0.01582593657
R2_LAW, R2_NO_DECAY = 0.7722046085, 0.4451684379


def r2(y, yhat):
    # the notebook's R^2: on the loss itself, against the mean loss
    return 1 - np.sum((y - yhat) ** 2) / np.sum((y - np.mean(y)) ** 2)


@pytest.fixture(scope="module")
def curated():
    return load_points("muennighoff2023:curated")


@pytest.fixture(scope="module")
def paper_fit(curated):
    # the paper's procedure: base law fixed, R_D* and R_N* by Huber (delta 1e-3) on log loss,
    # started in the paper's region
    return fit_law(curated, "muennighoff2023_decay", grid=np.log(PAPER_START), progress=False)


def test_paper_fit_recovers_the_decay_constants(curated, paper_fit):
    assert len(curated) == 182
    assert paper_fit.params["R_D_star"] == pytest.approx(PAPER_R_D, rel=0.05)
    assert paper_fit.params["R_N_star"] == pytest.approx(PAPER_R_N, rel=0.05)
    assert paper_fit.objective == pytest.approx(PAPER_OBJECTIVE, rel=1e-6)
    assert paper_fit.meta["huber_delta"] == 1e-3


def test_r2_with_and_without_the_decay_terms(curated, paper_fit):
    y = curated["loss"].to_numpy(float)
    published = published_law("muennighoff2023")
    assert r2(y, published.predict_table(curated)) == pytest.approx(R2_LAW, abs=1e-6)
    assert r2(y, paper_fit.predict_table(curated)) == pytest.approx(R2_LAW, abs=2e-3)
    base = get_law("chinchilla")(curated["params"], curated["tokens"], **MUENNIGHOFF2023_BASE)
    assert r2(y, base) == pytest.approx(R2_NO_DECAY, abs=1e-6)


def test_r_d_star_is_weakly_determined(curated, paper_fit):
    prof = profile(paper_fit, curated, "R_D_star", [14.0, 15.0, PAPER_R_D, 16.0, 17.0])
    # the dataset's README: any R_D* in [14, 17] raises the objective by less than 6e-6
    assert np.ptp(prof.objective) < 6.5e-6
    assert np.all(prof.deviance < 1.0)
    # a wider search finds a lower optimum at far larger R_D*: the data bound it only below
    wide = fit_law(curated, "muennighoff2023_decay", progress=False)
    assert wide.objective < paper_fit.objective
    assert wide.params["R_D_star"] > 30
    prof = profile(wide, curated, "R_D_star", [4.0, 8.0, 12.0, 15.0, 30.0, 95.0, 300.0])
    lo, hi = prof.interval
    assert 4.0 < lo < 12.0 and prof.open_high and not prof.open_low


def test_joint_fit_uses_all_parameters(curated):
    fit = fit_law(curated, "data_constrained", progress=False)
    assert set(fit.params) == {"E", "A", "B", "alpha", "beta", "R_D_star", "R_N_star"}
    y = curated["loss"].to_numpy(float)
    # seven free parameters fit these runs better than the fixed C4 base
    assert r2(y, fit.predict_table(curated)) > R2_LAW
    assert fit.objective < PAPER_OBJECTIVE


def test_decay_law_on_another_base_matches_the_published_set():
    law = decay_law("hoffmann2022")
    pub = published_law("hoffmann2022_dc")
    N, D, U = np.array([1e9, 7e9]), np.array([1e11, 3e12]), np.array([2e10, 1e12])
    got = law.evaluate({"R_D_star": PAPER_R_D, "R_N_star": PAPER_R_N}, N=N, D=D, U=U)
    np.testing.assert_allclose(got, pub.predict(N=N, D=D, U=U), rtol=1e-14)
    with pytest.raises(InputError, match="sum of power terms"):
        decay_law("kaplan2020")


# ---------------------------------------------------------------------- extrapolation by hand
# alpha = beta makes G = (A / B)^(1/(2 alpha)) = 1 when A = B, so N_opt(U) = U: a model smaller
# than U has U_N = N and N' = N, and only the data term decays.
HAND = {"E": 1.5, "A": 400.0, "B": 400.0, "alpha": 0.3, "beta": 0.3, "R_D_star": 10.0, "R_N_star": 5.0}
N_SMALL, U = 1e9, 1e10


def hand_fit():
    return LawFit(law="data_constrained", params=HAND, source="hand", name="hand")


def test_reachable_case_by_hand():
    # choose the target so that D' = 3 U: (D'/U - 1) / R_D* = 0.2, so R_D = -10 ln 0.8 and
    # D = U (1 + 10 ln 1.25) = 3.23144e10 tokens, 3.23144 epochs.
    target = 1.5 + 400 * 1e9 ** -0.3 + 400 * (3 * U) ** -0.3
    res = extrapolate(hand_fit(), [ModelSpec(N_SMALL)], target=target, unique_tokens=U)
    m = res.models[0]
    expected = U * (1 + 10 * math.log(1.25))
    assert m.tokens_to_match == pytest.approx(expected, rel=1e-12)
    assert m.epochs_to_match == pytest.approx(1 + 10 * math.log(1.25), rel=1e-12)
    assert m.floor == pytest.approx(1.5 + 400 * 1e9 ** -0.3 + 400 * (11 * U) ** -0.3, rel=1e-12)
    assert float(effective_data(expected, U, 10.0)) == pytest.approx(3 * U, rel=1e-12)
    # without the limit the same loss needs D = D' = 3U fresh tokens
    free = extrapolate(hand_fit(), [ModelSpec(N_SMALL)], target=target)
    assert free.models[0].tokens_to_match == pytest.approx(3 * U, rel=1e-9)


def test_never_case_by_hand():
    # the floor of repeating U for ever: D' -> U (1 + R_D*) = 11 U
    floor = 1.5 + 400 * 1e9 ** -0.3 + 400 * (11 * U) ** -0.3
    res = extrapolate(hand_fit(), [ModelSpec(N_SMALL)], target=floor - 1e-4, unique_tokens=U)
    m = res.models[0]
    assert not m.reachable and m.tokens_to_match is None and m.epochs_to_match is None
    assert m.floor == pytest.approx(floor, rel=1e-12)
    assert f"never (floor {floor:.4g})" in res.table()
    # unlimited data reaches it
    assert extrapolate(hand_fit(), [ModelSpec(N_SMALL)], target=floor - 1e-4).models[0].reachable


def test_loss_at_target_compute_under_the_limit():
    # target 2e9 params on 2e10 tokens (2 epochs of U); the small model gets C_T / (6 N) tokens
    big = ModelSpec(2e9, 2e10)
    res = extrapolate(hand_fit(), [ModelSpec(N_SMALL), big], target=big, unique_tokens=U)
    m = res.models[0]
    d_c = 6 * 2e9 * 2e10 / (6 * N_SMALL)
    d_eff = U + U * 10 * (1 - math.exp(-(d_c / U - 1) / 10))
    assert m.loss_at_target_compute == pytest.approx(1.5 + 400 * N_SMALL ** -0.3 + 400 * d_eff ** -0.3, rel=1e-12)
    assert m.epochs_at_target_compute == pytest.approx(d_c / U)
    t_eff = U + U * 10 * (1 - math.exp(-1 / 10))
    assert res.target.loss == pytest.approx(1.5 + 400 * 2e9 ** -0.3 + 400 * t_eff ** -0.3, rel=1e-12)


def test_llama_under_the_published_limit():
    case = published_case("llama", unique_tokens=1.4e12)
    names = [r.law.name for r in case.results]
    assert names[:2] == ["hoffmann2022", "besiroglu2024"] and "muennighoff2023" in names
    free = case.results[0].models[0]
    limited = case.results[names.index("hoffmann2022+decay")].models[0]
    assert free.name == "LLaMA-7B" and free.reachable
    # 41T fresh tokens are about 29 epochs of 1.4T: repeated, LLaMA-7B's floor lies above the 65B
    assert free.tokens_to_match / 1.4e12 > 25
    assert not limited.reachable and limited.floor > case.results[names.index("hoffmann2022+decay")].target.loss
    assert "Data limit: 1.4T unique tokens" in case.table()


# ---------------------------------------------------------------------- tables and bad input

def test_table_with_unique_tokens_makes_the_law_a_candidate(curated):
    assert "data_constrained" in auto_candidates(curated)
    assert "data_constrained" not in auto_candidates(curated.drop(columns="unique_tokens"))
    assert "data_constrained" not in auto_candidates()


def test_unique_tokens_above_tokens_is_refused(tmp_path):
    df = pd.DataFrame({"params": [1e8, 2e8, 4e8], "tokens": [1e9, 2e9, 4e9], "unique_tokens": [5e8, 3e9, 1e9],
                       "loss": [3.0, 2.9, 2.8]})
    path = tmp_path / "runs.csv"
    df.to_csv(path, index=False)
    with pytest.raises(TableError, match="unique_tokens exceeds tokens in 1 row") as e:
        load_points(path)
    assert e.value.field == "unique_tokens" and "\n" not in str(e.value)


def test_non_positive_unique_tokens_is_refused():
    for bad in (0, -1e9, float("nan"), "many"):
        with pytest.raises(InputError, match="unique_tokens"):
            extrapolate(hand_fit(), [ModelSpec(N_SMALL)], target=2.5, unique_tokens=bad)


def test_law_needs_the_column():
    df = pd.DataFrame({"params": np.repeat([1e8, 2e8, 4e8], 3), "tokens": np.tile([1e9, 2e9, 4e9], 3),
                       "loss": np.linspace(3.5, 2.5, 9)})
    with pytest.raises(TableError, match="unique_tokens column"):
        fit_law(df, "data_constrained", progress=False)


def test_cli_published_llama_with_unique_tokens(capsys):
    from scaling.app.cli import main

    assert main(["extrapolate", "--published", "llama", "--unique-tokens", "1.4e12"]) == 0
    out = capsys.readouterr().out
    assert "muennighoff2023 (data_constrained)" in out and "epochs to match" in out and "never (floor" in out
    assert main(["extrapolate", "--published", "llama", "--unique-tokens", "0"]) == 2
    err = capsys.readouterr().err
    assert "unique_tokens" in err and len(err.strip().splitlines()) == 1


def test_plot_repetition(curated, tmp_path):
    from analysis.reporting.plots import gids, plot_repetition, save_figure

    fig = plot_repetition(published_law("muennighoff2023"), points=curated)
    names = gids(fig)
    assert "effective-data" in names and "ceiling" in names
    assert sum(g.startswith("repeated:") for g in names) == 3 and sum(g.startswith("fresh:") for g in names) == 3
    line = next(a for ax in fig.axes for a in ax.lines if a.get_gid() == "effective-data")
    x, y = line.get_data()
    # D'/U against D/U: one epoch is worth one, and the curve stays below fresh data and its ceiling
    assert y[0] == pytest.approx(1.0) and np.all(y <= x + 1e-12) and y[-1] < 1 + PAPER_R_D
    # a chinchilla law gets the published decay terms; a law without a U budget cannot be drawn
    plot_repetition(published_law("hoffmann2022"), unique_tokens=1e9)
    with pytest.raises(InputError, match="unique-token budget"):
        plot_repetition(published_law("hoffmann2022"))
    save_figure(fig, tmp_path / "rep.png")
    assert (tmp_path / "rep.png").stat().st_size > 10_000


def test_cli_refuses_unique_tokens_above_tokens(tmp_path, capsys):
    from scaling.app.cli import main

    path = tmp_path / "runs.csv"
    path.write_text("params,tokens,unique_tokens,loss\n1e8,1e9,2e9,3\n2e8,2e9,1e9,2.9\n4e8,4e9,1e9,2.8\n")
    assert main(["fit", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "unique_tokens exceeds tokens" in err and "fix:" in err


def test_saved_decay_fit_round_trips(paper_fit, curated, tmp_path):
    from analysis.fitting.io import load_result

    paper_fit.save(tmp_path / "fit.json")
    back = load_result(tmp_path / "fit.json")
    np.testing.assert_array_equal(back.predict_table(curated), paper_fit.predict_table(curated))


def test_the_report_of_a_table_with_unique_tokens_draws_repetition(tmp_path):
    """A study on repeated data gets the repetition figure in its report."""
    from analysis.data import datasets
    from analysis.reporting.report import build_report
    from analysis.extrapolation.study import run_study

    pts = datasets.load("muennighoff2023:curated")
    study = run_study(pts, law="muennighoff2023", curves=False)
    written = build_report(None, tmp_path / "rep", study=study)
    assert "repetition.png" in written and (tmp_path / "rep" / "repetition.png").read_bytes()[:4] == b"\x89PNG"
    assert "repetition.png" in (tmp_path / "rep" / "report.md").read_text()
