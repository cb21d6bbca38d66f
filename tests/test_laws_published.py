"""Laws, published parameter sets and the result object's round trip."""
import math

import numpy as np
import pytest

from analysis import laws
from analysis.common.errors import InputError
from analysis.data.published import (LLAMA, PUBLISHED_LAWS, besiroglu2024, hoffmann2022, kaplan2020,
                                published_law)
from analysis.fitting.result import LawFit, bound_warnings, correlation_warnings


def test_chinchilla_law_at_chinchilla_scale():
    # Hoffmann et al. 2022: Chinchilla (70B params, 1.4T tokens) under their own law.
    # E + A/N^a + B/D^b by hand: 1.69 + 406.4/70e9^0.34 + 410.7/1.4e12^0.28
    by_hand = 1.69 + 406.4 / (70e9 ** 0.34) + 410.7 / (1.4e12 ** 0.28)
    assert hoffmann2022().predict(70e9, 1.4e12) == pytest.approx(by_hand, rel=1e-12)
    assert 1.9 < by_hand < 2.0


def test_chinchilla_optimum_is_the_constrained_minimum():
    p = hoffmann2022().params
    C = 5.76e23  # Chinchilla's training compute, about 6 * 70e9 * 1.4e12
    n_opt, d_opt = laws.chinchilla_optimal(C, **p)
    assert 6 * n_opt * d_opt == pytest.approx(C, rel=1e-10)
    # Brute force along the iso-FLOP line C = 6ND.
    n = np.logspace(9, 12, 20001)
    loss = laws.chinchilla(n, C / (6 * n), **p)
    assert n_opt == pytest.approx(n[np.argmin(loss)], rel=2e-3)


def test_besiroglu_refit_implies_about_20_tokens_per_parameter():
    p = besiroglu2024().params
    n_opt, d_opt = laws.chinchilla_optimal(1e24, **p)
    assert 15 < d_opt / n_opt < 30


def test_kaplan_joint_law_reduces_to_its_limits():
    p = kaplan2020().params
    # With D -> infinity the joint law tends to (N_c/N)^alpha_N.
    assert laws.kaplan_nd(1e9, 1e30, **p) == pytest.approx((p["N_c"] / 1e9) ** p["alpha_N"], rel=1e-6)


def test_lawfit_json_round_trip_gives_identical_predictions(tmp_path):
    rng = np.random.default_rng(0)
    fit = LawFit("chinchilla", hoffmann2022().params, ci={"E": (1.6, 1.8)},
                 samples=rng.normal(1, 0.01, size=(20, 5)) * np.array([1.69, 406.4, 410.7, 0.34, 0.28]),
                 data_range={"N": (1e7, 1e9)}, warnings=["w"])
    fit.save(tmp_path / "f.json")
    back = LawFit.load(tmp_path / "f.json")
    N, D = np.array([1e8, 1e10]), np.array([1e9, 1e11])
    assert np.array_equal(back.predict(N, D), fit.predict(N, D))
    lo, hi = back.predict_interval(N, D)
    assert np.all(lo <= fit.predict(N, D) * 1.05) and np.all(lo < hi)
    assert back.extrapolation_warnings(N=1e11) and not back.extrapolation_warnings(N=5e8)


def test_diagnostics_flag_bounds_and_correlation():
    assert bound_warnings({"alpha": 2.5, "beta": 0.3}, {"alpha": (0, 2.5), "beta": (0, 2.5)})
    assert not bound_warnings({"alpha": 0.3}, {"alpha": (0, 2.5)})
    assert correlation_warnings({"A": {"alpha": 0.995}, "alpha": {"A": 0.995}})


def test_unknown_names_are_one_line_errors():
    with pytest.raises(InputError, match="law: unknown published law 'nope'"):
        published_law("nope")
    with pytest.raises(InputError, match="missing parameter"):
        LawFit("chinchilla", {"E": 1.0})


#: Touvron et al. 2023: parameters and training tokens (Table 2; Sec. 2) and A100-80GB
#: GPU-hours (Table 15), as printed.
LLAMA_PRINTED = {
    "LLaMA-7B": (6.7e9, 1.0e12, 82_432),
    "LLaMA-13B": (13.0e9, 1.0e12, 135_168),
    "LLaMA-33B": (32.5e9, 1.4e12, 530_432),
    "LLaMA-65B": (65.2e9, 1.4e12, 1_022_362),
}


def test_llama_models_are_the_papers_tables():
    assert {m.name: (m.params, m.tokens, m.gpu_hours) for m in LLAMA} == LLAMA_PRINTED
    assert {m.gpu for m in LLAMA} == {"A100-80GB"}


def test_llama_65b_gpu_hours_agree_with_the_papers_own_throughput():
    # A second statement of the same run in the paper (Sec. 2.4): about 380 tokens/s/GPU on
    # 2048 A100-80GB GPUs, so 1.4T tokens take about 21 days.
    m = {m.name: m for m in LLAMA}["LLaMA-65B"]
    assert m.tokens / (m.gpu_hours * 3600) == pytest.approx(380, rel=0.01)
    assert m.gpu_hours / (2048 * 24) == pytest.approx(21, rel=0.02)


#: Every published law's parameters as its paper prints them.
PRINTED_LAWS = {
    # Hoffmann et al. 2022, Sec. 3.3 (Approach 3).
    "hoffmann2022": {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28},
    # Besiroglu et al. 2024, their refit of Approach 3.
    "besiroglu2024": {"E": 1.8172, "A": 482.01, "B": 2085.43, "alpha": 0.3478, "beta": 0.3658},
    # Kaplan et al. 2020: eq. (1.5) with Table 2's fit; eqs. (1.1), (1.2) and (1.3), where C_c
    # is 3.1e8 PF-days and a PF-day is 1e15 FLOP/s for 86,400 s.
    "kaplan2020": {"N_c": 6.4e13, "D_c": 1.8e13, "alpha_N": 0.076, "alpha_D": 0.103},
    "kaplan2020_n": {"N_c": 8.8e13, "alpha_N": 0.076},
    "kaplan2020_d": {"D_c": 5.4e13, "alpha_D": 0.095},
    "kaplan2020_c": {"C_c": 3.1e8 * 1e15 * 86_400, "alpha_C": 0.050},
    # Muennighoff et al. 2023's parametric_fit notebook prints the C4 base as logs (cell 7:
    # a = 6.255414, b = 7.3049974, e = 0.6254804, alpha = beta = 0.3526596) and the decay
    # constants R_D* = 15.387756, R_N* = 5.309743 (cell 29; the repository's README).
    "muennighoff2023": {"E": math.exp(0.6254804), "A": math.exp(6.255414), "B": math.exp(7.3049974),
                        "alpha": 0.3526596, "beta": 0.3526596, "R_D_star": 15.387756, "R_N_star": 5.309743},
    # the same decay constants on Hoffmann et al.'s base
    "hoffmann2022_dc": {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28,
                        "R_D_star": 15.387756, "R_N_star": 5.309743},
}


@pytest.mark.parametrize("name", sorted(PRINTED_LAWS))
def test_published_laws_carry_the_papers_printed_parameters(name):
    law = published_law(name)
    # the notebook's logs are printed to 7 or 8 digits
    assert law.params == pytest.approx(PRINTED_LAWS[name], rel=1e-7)
    assert set(law.params) == set(PRINTED_LAWS[name])


def test_every_published_law_is_checked_against_its_paper():
    assert set(PUBLISHED_LAWS) == set(PRINTED_LAWS)
