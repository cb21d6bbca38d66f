"""``python -m sweeps``: exit status 0 when every run completed (or was already complete),
3 when the sweep finished but some runs failed or diverged (see runs.csv), 2 with one
line on stderr for a config that does not compose or a sweep.root that cannot be written,
and 130 for Ctrl-C."""
# Deferred imports: the module-level imports sit after the two-mode check, which is instant while
# Hydra's import is not; the one inside _one_line (analysis.common.errors) gains nothing, as
# sweeps.launch has loaded it by then, and may move up.
import os
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



def _one_line(e: BaseException) -> str:
    """An error that ended the sweep as one line: ``field: what (fix: ...)``."""
    from analysis.common.errors import ToolkitError

    if isinstance(e, ToolkitError):
        return str(e)
    if isinstance(e, OSError) and e.filename:
        return (f"sweep.root: cannot write {e.filename} ({e.strerror or e}) "
                "(fix: choose a sweep.root you can write to)")
    text = " ".join(str(e).strip().splitlines()[0].split()) if str(e).strip() else type(e).__name__
    module = type(e).__module__.split(".")[0]
    if module in ("hydra", "omegaconf"):  # a key or config group that does not compose
        return (f"overrides: {text} (fix: check the key or group against `python -m sweeps --cfg job` "
                "or `python -m sweeps --help`)")
    return f"{type(e).__name__}: {text} (fix: rerun with HYDRA_FULL_ERROR=1 for the traceback)"


# Hydra prints its own multi-line report of an error and exits 1; with HYDRA_FULL_ERROR it
# re-raises instead, so the error is one line here with status 2, as `scaling` prints it.
_full_error = "HYDRA_FULL_ERROR" in os.environ
os.environ.setdefault("HYDRA_FULL_ERROR", "1")

from sweeps.app import main  # noqa: E402  (after the check: it is instant, Hydra's import is not)
from sweeps.index import LAST_SWEEP  # noqa: E402
from sweeps.launch import PARENT_REPORTS_INTERRUPT, quiet_resource_tracker  # noqa: E402

quiet_resource_tracker(os.environ)  # before the joblib launcher starts its tracker

try:
    main()
except KeyboardInterrupt:  # Ctrl-C: what `scaling train` prints, not joblib's traceback
    if not os.environ.get(PARENT_REPORTS_INTERRUPT):  # a parent (scaling demo) says it once, itself
        print("python -m sweeps: interrupted", file=sys.stderr)
    sys.exit(130)
except Exception as e:
    if _full_error:  # the user asked for Hydra's full report
        raise
    print(f"python -m sweeps: error: {_one_line(e)}", file=sys.stderr)
    sys.exit(2)
counts = LAST_SWEEP.get("counts", {})
bad = ", ".join(f"{counts[k]} {k}" for k in ("failed", "diverged") if counts.get(k))
if bad:
    print(f"sweep finished with {bad} of {LAST_SWEEP['runs']} runs; see {LAST_SWEEP['csv']}", file=sys.stderr)
    sys.exit(3)
