"""Interleaved timing rounds, for benchmarks that compare candidates on a shared machine.

Timing A to the end and then B to the end compares A under one load with B under
another: on a shared CPU the same pair read 0.45x in one run and 5.4x in the next. Here
every round runs each candidate once, in an order rotated by one each round (A B C, then
B C A, then C A B, ...) so none always goes first, and a ratio is taken within each round,
where both sides saw about the same machine. What is reported per comparison is the
median of those per-round ratios with their min and max, and the spread
(max - min) / median; above :data:`SPREAD_WARN` the comparison is flagged as noisy.

Pure Python, no numpy or torch: ``docs/studies/fit_bench.py`` and ``scaling.app.bench`` both use it, and
the unit tests drive it with a fake clock.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Callable, Mapping, Optional, Sequence

#: Spread ((max - min) / median of a ratio over rounds) above which a comparison is noisy.
SPREAD_WARN = 0.10
#: Rounds when a benchmark's ``--rounds`` is not given.
DEFAULT_ROUNDS = 7


def rotated(names: Sequence[str], round_index: int) -> list[str]:
    """The order of round ``round_index``: ``names`` rotated left by that many places."""
    names = list(names)
    if not names:
        return []
    k = round_index % len(names)
    return names[k:] + names[:k]


def interleave(candidates: Mapping[str, Callable[[], Optional[float]]], rounds: int,
               on_call: Optional[Callable[[int, str, Optional[float]], None]] = None) -> dict[str, list]:
    """Call every candidate once per round, in :func:`rotated` order; return each one's
    results by round (``{name: [round 0, round 1, ...]}``).

    A candidate returns its own measurement, e.g. seconds from :func:`timed`, milliseconds
    from a device timer, or tokens/s; ``None`` marks a failed call and is kept as ``None``.
    ``on_call(round, name, result)`` runs after each call (progress lines)."""
    if rounds < 1:
        raise ValueError(f"rounds must be at least 1, got {rounds}")
    out: dict[str, list] = {name: [] for name in candidates}
    for r in range(rounds):
        for name in rotated(list(candidates), r):
            got = candidates[name]()
            out[name].append(got)
            if on_call is not None:
                on_call(r, name, got)
    return out


def timed(fn: Callable[[], object], clock: Callable[[], float] = time.perf_counter,
          sync: Optional[Callable[[], None]] = None) -> Callable[[], float]:
    """A candidate for :func:`interleave` that runs ``fn`` and returns the ``clock``
    seconds it took; ``sync`` (e.g. ``torch.cuda.synchronize``) runs before the clock is
    read at each end, so queued device work is counted where it belongs."""
    def run() -> float:
        if sync is not None:
            sync()
        t0 = clock()
        fn()
        if sync is not None:
            sync()
        return clock() - t0
    return run


@dataclass(frozen=True)
class Ratio:
    """A ratio measured once per round: its median, min and max over the rounds."""

    median: float
    low: float
    high: float
    rounds: int

    @property
    def spread(self) -> float:
        """(max - min) / median: 0 when every round agreed."""
        return (self.high - self.low) / self.median if self.median else float("inf")

    @property
    def noisy(self) -> bool:
        return self.spread > SPREAD_WARN

    def text(self, unit: str = "x", digits: int = 2) -> str:
        """``0.97x (0.91-1.02)``; one round, or rounds that all agree: ``0.97x``."""
        m = f"{self.median:.{digits}f}{unit}"
        lo, hi = f"{self.low:.{digits}f}", f"{self.high:.{digits}f}"
        return m if lo == hi else f"{m} ({lo}-{hi})"


def ratio(numerator: Sequence[Optional[float]], denominator: Sequence[Optional[float]]) -> Optional[Ratio]:
    """The per-round ratio ``numerator[i] / denominator[i]`` summarised over the rounds
    where both sides were measured (and the denominator is not zero); None when none was.

    For a speed-up of X over a baseline from times, pass (baseline times, X times); from
    rates such as tokens/s, (X rates, baseline rates)."""
    vals = [a / b for a, b in zip(numerator, denominator) if a is not None and b is not None and b != 0]
    if not vals:
        return None
    return Ratio(statistics.median(vals), min(vals), max(vals), len(vals))


def median(values: Sequence[Optional[float]]) -> Optional[float]:
    """Median of the measured (non-None) values; None when there are none."""
    got = [v for v in values if v is not None]
    return statistics.median(got) if got else None


def spread_text(r: Optional[Ratio]) -> str:
    """The table cell for a comparison's spread: ``4%``, or ``14% noisy`` above the threshold."""
    if r is None:
        return "-"
    s = r.spread
    return f"{100 * s:.0f}%" + (" noisy" if r.noisy else "")


def spread_warning(comparisons: Mapping[str, Optional[Ratio]]) -> Optional[str]:
    """One line when some comparison's spread exceeds :data:`SPREAD_WARN`, naming the
    worst; None when every measured one is within it."""
    bad = {k: r for k, r in comparisons.items() if r is not None and r.noisy}
    if not bad:
        return None
    name, worst = max(bad.items(), key=lambda kv: kv[1].spread)
    others = f" and {len(bad) - 1} more" if len(bad) > 1 else ""
    d = 2 if worst.median < 10 else 0
    return (f"# warning: ratios vary by more than {100 * SPREAD_WARN:.0f}% over rounds: {name} "
            f"{worst.low:.{d}f}-{worst.high:.{d}f}x around {worst.median:.{d}f}x "
            f"(spread {100 * worst.spread:.0f}%){others}; other work is sharing the machine: "
            f"read the medians with care, or rerun with more --rounds")


def plain(row: Mapping) -> dict:
    """A table row for JSON: each :class:`Ratio` as its median, with ``<key> min``,
    ``<key> max`` and ``<key> rounds`` beside it (``_min`` ... when the key has no spaces)."""
    out = {}
    for k, v in row.items():
        if isinstance(v, Ratio):
            sep = " " if " " in k else "_"
            out[k] = v.median
            out[f"{k}{sep}min"], out[f"{k}{sep}max"], out[f"{k}{sep}rounds"] = v.low, v.high, v.rounds
        else:
            out[k] = v
    return out
