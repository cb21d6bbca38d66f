"""The measurement behind the earlier rule's size cuts (``--sizes auto``, docs/analysis.md):
seeded ladders with and without small models bending away from the law; how often auto
cuts, how much the cut lowered the backtest score, and what the cut does further out.

    python docs/studies/size_cut_study.py            # about 4 minutes
"""
from __future__ import annotations

import numpy as np

from analysis.common.text import si
from analysis.data.synthetic import BEND_BELOW, LADDER_LAW, bent_ladder
from analysis.fitting.fit import fit_law
from analysis.laws import chinchilla
from analysis.selection.backtest import select_law
from analysis.selection.size_cuts import largest_sizes


def cut_study(bends=(0.0, 0.04), seeds: int = 10, beyond=(1.5, 4.0)) -> list[dict]:
    """Per ``bend``: how often ``--law auto`` cuts, how much the best cut lowered the score,
    and the largest error at ``beyond`` x the largest size (5 to 80 tokens per parameter,
    truth from :data:`LADDER_LAW`) of the law auto chose, fitted to the chosen sizes and to all."""
    out = []
    for bend in bends:
        rows = []
        for seed in range(seeds):
            df = bent_ladder(seed, bend)
            choice = select_law(df)
            sc = choice.cut_scores
            gain = 1 - min(v for k, v in sc.items() if k < 1) / sc[1.0] if len(sc) > 1 else 0.0
            chosen, every = (fit_law(largest_sizes(df, k), choice.law, progress=False) for k in (choice.keep, 1.0))
            errs = {}
            for b in beyond:
                N = np.full(5, b * df["params"].max())
                D = N * np.array([5.0, 10.0, 20.0, 40.0, 80.0])
                truth = chinchilla(N, D, **LADDER_LAW)
                errs[b] = tuple(float(np.max(np.abs(f.predict(N=N, D=D) / truth - 1))) for f in (chosen, every))
            rows.append({"keep": choice.keep, "gain": gain, "errors": errs})
        out.append({"bend": bend, "seeds": seeds, "cut": sum(r["keep"] < 1 for r in rows),
                    "gains": [r["gain"] for r in rows],
                    "errors": {b: tuple(float(np.mean([r["errors"][b][i] for r in rows])) for i in (0, 1))
                               for b in beyond}})
    return out


def main(argv=None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python docs/studies/size_cut_study.py",
                                 description="Seeded ladders with and without small models bending away: "
                                             "how often auto cuts, and what the cut does further out.")
    ap.add_argument("--seeds", type=int, default=10)
    args = ap.parse_args(argv)
    print("| bend | seeds cut | best cut's score gain (seeds > 0) | "
          "largest error 1.5x out: chosen / all sizes | 4x out: chosen / all sizes |")
    print("|---|---|---|---|---|")
    for r in cut_study(seeds=args.seeds):
        g = [x for x in r["gains"] if x > 0]
        gains = f"{100 * min(g):.0f}-{100 * max(g):.0f}% in {len(g)}" if g else "none"
        e = r["errors"]
        print(f"| {100 * r['bend']:g}% per e-fold below {si(BEND_BELOW)} | {r['cut']} of {r['seeds']} | {gains} | "
              f"{100 * e[1.5][0]:.2f}% / {100 * e[1.5][1]:.2f}% | {100 * e[4.0][0]:.2f}% / {100 * e[4.0][1]:.2f}% |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
