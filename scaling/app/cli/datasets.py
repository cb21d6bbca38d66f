"""``scaling datasets [NAME]``: the public ladders shipped in :mod:`analysis.data.datasets`."""
# Deferred imports: analysis.data.datasets (pandas) is imported inside run because `scaling
# --help` imports every subcommand's module to build its parser.
from __future__ import annotations

from scaling.app.cli._common import add_command, print_json

EXAMPLE = ("scaling datasets porian2024:rw/tuned/short/const/standard/val\n"
           "  scaling fit porian2024:rw/tuned/short/const/standard/val --law approach2 --optimum akima")


def add_parser(sub) -> None:
    p = add_command(sub, "datasets",
                    "List the public scaling ladders shipped with the toolkit, or describe one: what its loss "
                    "column means, its source, citation, licence and caveats. Any name works wherever a table "
                    "does (scaling fit NAME).", EXAMPLE, run)
    p.add_argument("name", nargs="?", metavar="NAME",
                   help="a dataset (e.g. muennighoff2023, porian2024:rw/base/short/chinchilla/standard/val) or the "
                        "family porian2024; without it, list every name")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")


def run(args) -> int:
    from analysis.data import datasets

    if args.name is None:
        names = datasets.list_datasets()
        if args.json:
            print_json([{"name": k, "description": v} for k, v in names.items()])
            return 0
        width = max(map(len, names))
        for k, v in names.items():
            print(f"{k:<{width}}  {v}")
        print(f"\nfields of a porian2024 name: porian2024:{'/'.join(datasets.PORIAN_FIELDS)} "
              "(`scaling datasets porian2024` explains them); `scaling datasets NAME` describes one")
        return 0
    info = datasets.describe(args.name)
    if args.json:
        print_json(info.to_dict())
    else:
        print(info)
    return 0
