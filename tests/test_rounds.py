"""Interleaved benchmark rounds (analysis.common.rounds), driven by a fake clock: the order of the
calls, the median and range of a ratio, and the spread warning. Nothing here times real work."""
import pytest

from analysis.common import rounds as R


class FakeClock:
    """A clock that moves only when a fake workload says it took so long."""

    def __init__(self):
        self.now = 0.0
        self.calls = []

    def __call__(self):
        return self.now

    def work(self, name, durations):
        """A callable that records its call and advances the clock by its next duration."""
        it = iter(durations)

        def run():
            self.calls.append(name)
            self.now += next(it)
        return run


def test_rotated_starts_each_round_one_place_later():
    assert [R.rotated("ABC", r) for r in range(4)] == [list("ABC"), list("BCA"), list("CAB"), list("ABC")]
    assert R.rotated([], 3) == []


def test_interleave_rotates_the_order_and_times_each_call_with_the_clock():
    clock = FakeClock()
    cands = {"A": clock.work("A", [1.0, 1.1, 0.9, 1.0]),
             "B": clock.work("B", [2.0, 2.4, 1.8, 2.0]),
             "C": clock.work("C", [0.5, 0.5, 0.5, 0.5])}
    seen = []
    got = R.interleave({k: R.timed(f, clock=clock) for k, f in cands.items()}, 4,
                       on_call=lambda r, name, t: seen.append((r, name, t)))
    # A B C, B C A, C A B, A B C: none always goes first
    assert clock.calls == list("ABC" "BCA" "CAB" "ABC")
    assert [(r, n) for r, n, _ in seen] == [(i // 3, n) for i, n in enumerate(clock.calls)]
    # each candidate's own durations, in its own round order, whatever its place in the round
    assert got["A"] == pytest.approx([1.0, 1.1, 0.9, 1.0])
    assert got["B"] == pytest.approx([2.0, 2.4, 1.8, 2.0])
    assert got["C"] == pytest.approx([0.5] * 4)


def test_timed_syncs_before_reading_the_clock_at_each_end():
    clock, log = FakeClock(), []
    work = clock.work("w", [3.0])

    def sync():
        log.append(("sync", clock.now))
        clock.now += 0.25  # queued work finishing: counted inside the timed span only at the end

    assert R.timed(work, clock=clock, sync=sync)() == pytest.approx(3.25)
    assert log == [("sync", 0.0), ("sync", 3.25)]


def test_ratio_is_the_median_of_per_round_ratios_with_min_and_max():
    base = [2.0, 2.4, 1.8, 2.0, 4.0]   # a busy fifth round slows both sides
    ours = [1.0, 1.2, 1.0, 0.8, 2.0]
    r = R.ratio(base, ours)              # speed-up of ours from times: base / ours per round
    assert (r.median, r.low, r.high, r.rounds) == pytest.approx((2.0, 1.8, 2.5, 5))
    assert r.spread == pytest.approx(0.35) and r.noisy
    assert r.text() == "2.00x (1.80-2.50)"
    # the same ratio from medians of each side would hide the spread: 2.0 / 1.0
    assert R.median(base) / R.median(ours) == pytest.approx(2.0)


def test_rounds_that_agree_are_quiet_and_print_one_number():
    r = R.ratio([3.0, 3.3, 2.7], [1.0, 1.1, 0.9])
    assert (r.median, r.low, r.high) == pytest.approx((3.0, 3.0, 3.0))
    assert r.spread == pytest.approx(0.0) and not r.noisy
    assert r.text() == "3.00x" and R.spread_text(r) == "0%"
    assert R.spread_warning({"a vs b": r}) is None


def test_failed_rounds_are_left_out_and_nothing_measured_gives_none():
    r = R.ratio([2.0, None, 2.2, 2.0], [1.0, 1.0, None, 1.0])
    assert r.rounds == 2 and r.median == pytest.approx(2.0)
    assert R.ratio([None], [1.0]) is None and R.ratio([1.0], [0.0]) is None
    assert R.median([None, 3.0, 1.0, None, 2.0]) == 2.0 and R.median([None]) is None
    assert R.spread_text(None) == "-"


def test_spread_warning_names_the_worst_noisy_comparison_in_one_line():
    quiet = R.Ratio(1.00, 0.97, 1.03, 7)                 # 6%: within the 10% threshold
    loud = R.Ratio(0.91, 0.80, 1.05, 7)                  # 27%
    louder = R.Ratio(2.0, 1.0, 3.0, 7)                   # 100%
    assert not quiet.noisy and loud.noisy and R.spread_text(loud) == "27% noisy"
    w = R.spread_warning({"nano eager vs ref": loud, "mini eager vs ref": quiet, "mini compile vs ref": louder,
                          "failed": None})
    assert w.startswith("# warning:") and "\n" not in w
    assert "mini compile vs ref 1.00-3.00x around 2.00x (spread 100%) and 1 more" in w
    assert R.spread_warning({"mini eager vs ref": quiet}) is None
    # just above and just below the threshold
    assert R.Ratio(1.0, 0.95, 1.051, 3).noisy and not R.Ratio(1.0, 0.95, 1.049, 3).noisy


def test_interleave_keeps_failures_and_refuses_no_rounds():
    calls = []

    def flaky():
        calls.append(1)
        return None if len(calls) == 2 else 1.0

    assert R.interleave({"x": flaky}, 3) == {"x": [1.0, None, 1.0]}
    with pytest.raises(ValueError):
        R.interleave({"x": flaky}, 0)


def test_plain_spells_out_a_ratio_for_json():
    row = {"impl": "eager", "x eager": R.Ratio(1.5, 1.4, 1.7, 5), "vs_reference": R.Ratio(1.0, 1.0, 1.0, 5)}
    assert R.plain(row) == {"impl": "eager", "x eager": 1.5, "x eager min": 1.4, "x eager max": 1.7,
                            "x eager rounds": 5, "vs_reference": 1.0, "vs_reference_min": 1.0,
                            "vs_reference_max": 1.0, "vs_reference_rounds": 5}


def test_the_fit_benchmark_interleaves_our_fit_with_the_plain_baseline(monkeypatch, capsys):
    # docs/studies/fit_bench.py with a fake clock: our fit "takes" 0.1 s a round, the baseline 30 s, but 45 s
    # in a busy fourth round; the speed-up is their ratio within each round
    import fit_bench as B

    clock = FakeClock()
    fits = iter([0.1] * 6)  # a warm-up fit first
    plains = iter([30.0, 30.0, 30.0, 45.0, 30.0])
    order = []
    real_fit, real_base = B.fit_law, B.baseline

    def fit_law(*a, **k):
        if k.get("bootstrap"):
            return real_fit(*a, **k)
        order.append("ours")
        clock.now += next(fits)
        return real_fit(*a, **k)

    def baseline(*a, **k):
        order.append("plain")
        clock.now += next(plains)
        return real_base(*a, **k)

    monkeypatch.setattr(B, "fit_law", fit_law)
    monkeypatch.setattr(B, "baseline", baseline)
    monkeypatch.setattr(B, "timed", lambda fn: R.timed(fn, clock=clock))
    assert B.main(["--bootstrap", "2", "--jobs", "1", "--baseline-starts", "3", "--rounds", "5"]) == 0
    assert order[1:] == ["ours", "plain", "plain", "ours"] * 2 + ["ours", "plain"]  # after one warm-up fit
    out = capsys.readouterr().out
    # the baseline ran from 3 starts and is scaled by 1,500 to stand for the 4,500-point grid
    assert "450000x (450000-675000)" in out and "50% noisy" in out
    assert "speed-up of the fit: 450000x (450000-675000) over 5 interleaved round(s)" in out
    assert sum(ln.startswith("# warning: ratios vary") for ln in out.splitlines()) == 1
