"""The calibration measurement: coverage counting, intervals built from training points only
and nested as documented, and the asymptotic errors against the bootstrap where the law is right."""
import numpy as np
import pytest

from calibration import VARIANTS, SplitCalibration, calibrate_table, coverage, stderr_ratios
from test_backtest import ladder


def test_coverage_counts_points_inside_their_interval():
    r = SplitCalibration("t", "largest_size", "chinchilla", [], 0.01, loss=[1.0, 2.0, 3.0], pred=[1.0, 2.0, 3.0],
                         intervals={"bootstrap": {0.9: ([0.9, 2.1, 2.0], [1.1, 2.2, 3.0])}})
    # 1.0 in [0.9, 1.1]; 2.0 below 2.1; 3.0 on the upper edge counts as inside.
    assert coverage([r, r], "bootstrap", 0.9) == (4, 6)


@pytest.fixture(scope="module")
def calibrated():
    return calibrate_table("synthetic", ladder("chinchilla", 4), bootstrap=20, n_jobs=1)


def test_each_widening_contains_the_one_before_at_every_level(calibrated):
    assert [r.split for r in calibrated] == ["largest_size", "two_largest_sizes", "largest_compute"]
    for r in calibrated:
        levels = sorted(r.intervals["bootstrap"])
        for lv in levels:
            for inner, outer in zip(VARIANTS, VARIANTS[1:]):
                lo_i, hi_i = map(np.asarray, r.intervals[inner][lv])
                lo_o, hi_o = map(np.asarray, r.intervals[outer][lv])
                assert np.all(lo_o <= lo_i + 1e-12) and np.all(hi_o >= hi_i - 1e-12)
        for v in VARIANTS:  # a higher level never gives a narrower interval
            for a, b in zip(levels, levels[1:]):
                assert np.all(np.asarray(r.intervals[v][b][0]) <= np.asarray(r.intervals[v][a][0]) + 1e-12)
                assert np.all(np.asarray(r.intervals[v][b][1]) >= np.asarray(r.intervals[v][a][1]) - 1e-12)


def test_the_backtest_widening_at_90_percent_is_the_inner_backtest_error(calibrated):
    for r in calibrated:
        lo2, hi2 = map(np.asarray, r.intervals["+ laws"][0.9])
        lo3, hi3 = map(np.asarray, r.intervals["+ backtest"][0.9])
        np.testing.assert_allclose(hi3, hi2 * (1 + r.inner_max_error), rtol=1e-12)
        np.testing.assert_allclose(lo3, lo2 * (1 - r.inner_max_error), rtol=1e-12)


def test_on_a_well_specified_ladder_the_widened_90_percent_intervals_cover_most_held_out_points(calibrated):
    inside, total = coverage(calibrated, "+ backtest", 0.9)
    assert total == sum(len(r.loss) for r in calibrated) and inside >= 0.8 * total


@pytest.mark.slow
def test_asymptotic_errors_track_the_bootstrap_where_the_law_is_right():
    # Independent log-normal noise on 240 IsoFLOP-style points of a Chinchilla law: the
    # asymptotic covariance's assumptions hold, so it should match the bootstrap's spread
    # to about 30%. (On a 30-point ladder E's ratio is about 2: too few points for the
    # quadratic approximation of a parameter near its bound.)
    from analysis.data.synthetic import synthetic_table

    ratios = stderr_ratios(synthetic_table(240, 0), "chinchilla", bootstrap=100, n_jobs=2)
    assert set(ratios) == {"E", "A", "B", "alpha", "beta"}
    for p, v in ratios.items():
        assert 0.7 <= v <= 1.3, (p, v)
