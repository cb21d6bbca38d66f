"""Default locations and counts that several commands share, in one place so that they
agree (``scaling demo`` writes where ``scaling sweep`` and the notebooks look). Imports
nothing, so ``scaling --help`` can show them without loading the libraries behind them."""

#: Where ``scaling demo`` (and ``make demo``) writes: the sweep in DEMO_OUT/runs, the report in DEMO_OUT/report.
DEMO_OUT = "demo_out"
DEMO_SWEEP_SUBDIR = "runs"
DEMO_REPORT_SUBDIR = "report"
#: Bootstrap refits of the demo's joint law: a few seconds on 2 cores for 16 points.
DEMO_BOOTSTRAP = 300
