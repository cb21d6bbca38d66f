"""``python -m sweeps``: exit status 0 when every run completed (or was already complete),
3 when the sweep finished but some runs failed or diverged (see runs.csv), and Hydra's 1
for a config that does not compose."""
import sys

#: Hydra modes of which it takes exactly one per call (hydra/_internal/utils.py, _run_hydra).
_MODES = {"-m": "--multirun", "--multirun": "--multirun", "-c": "--cfg", "--cfg": "--cfg", "--info": "--info",
          "-r": "--run", "--run": "--run", "-sc": "--shell-completion", "--shell-completion": "--shell-completion"}


def _refuse_two_modes(argv: list[str]) -> None:
    """One line and exit 2 for two Hydra modes (``-m ... --cfg job``), not Hydra's traceback."""
    modes = list(dict.fromkeys(_MODES[a.split("=", 1)[0]] for a in argv if a.split("=", 1)[0] in _MODES))
    if len(modes) < 2:
        return
    rest = " ".join(a for a in argv if a not in ("-m", "--multirun"))
    fix = (f"drop -m, for one job: `python -m sweeps {rest}`; `scaling sweep EXPERIMENT --dry-run` lists every "
           "run of a sweep") if "--multirun" in modes else "give one of them"
    print(f"python -m sweeps: error: {' and '.join(modes)} cannot be combined: Hydra takes one of them per call "
          f"(fix: {fix})", file=sys.stderr)
    sys.exit(2)


_refuse_two_modes(sys.argv[1:])

from sweeps.app import main  # noqa: E402  (after the check: it is instant, Hydra's import is not)
from sweeps.index import LAST_SWEEP  # noqa: E402

main()
counts = LAST_SWEEP.get("counts", {})
bad = ", ".join(f"{counts[k]} {k}" for k in ("failed", "diverged") if counts.get(k))
if bad:
    print(f"sweep finished with {bad} of {LAST_SWEEP['runs']} runs; see {LAST_SWEEP['csv']}", file=sys.stderr)
    sys.exit(3)
