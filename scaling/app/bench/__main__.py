"""``python -m scaling.app.bench [train|kernels|memory] [options]``: the trainer's benchmarks.

``train`` (the default) measures end-to-end training tokens/s and MFU
(:mod:`scaling.app.bench.train`); ``kernels`` times the fused kernels op by op
(:mod:`scaling.app.bench.kernels` and its kernel_* modules, loaded only when asked for);
``memory`` tabulates the memory plan of every preset (:mod:`scaling.app.bench.memory`).
"""
from __future__ import annotations

import importlib
import sys

SUBCOMMANDS = {"train": "scaling.app.bench.train", "kernels": "scaling.app.bench.kernels", "memory": "scaling.app.bench.memory"}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        print("\nsubcommands: " + ", ".join(SUBCOMMANDS) + " (see `python -m scaling.app.bench SUBCOMMAND --help`)")
        return 0
    name = argv.pop(0) if argv and argv[0] in SUBCOMMANDS else "train"
    modname = SUBCOMMANDS[name]
    try:
        mod = importlib.import_module(modname)
    except ModuleNotFoundError as e:
        if e.name != modname:
            raise
        print(f"python -m scaling.app.bench {name}: not available yet in this version", file=sys.stderr)
        return 0
    return int(mod.main(argv) or 0)


if __name__ == "__main__":
    sys.exit(main())
