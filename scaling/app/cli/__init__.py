"""The ``scaling`` command: the composition root where trainer, sweeps and analysis meet.

Each subcommand lives in its own module ``scaling.app.cli.<name>`` exposing
``add_parser(subparsers)`` and ``run(args) -> int``. Modules import heavy libraries
(torch, scipy) inside ``run`` so that ``scaling --help`` and ``scaling fit`` start fast.
Errors derived from :class:`analysis.common.errors.ToolkitError` print one line and exit 2.
"""
# Deferred imports: the subcommands' modules are loaded through importlib in build_parser (only
# the named one when a command runs); the deferred `from scaling import __version__` gains
# nothing (the scaling package is loaded before this module) and may move to the top.
from __future__ import annotations

import argparse
import importlib
import os
import sys
import warnings

from analysis.common.errors import ToolkitError
from scaling.app.cli._common import LAW_MODULES_ENV, load_user_laws

#: subcommand -> module. Order is the order shown by ``scaling --help``.
COMMANDS = {
    "train": "scaling.app.cli.train",
    "sweep": "scaling.app.cli.sweep",
    "runs": "scaling.app.cli.runs",
    "fit": "scaling.app.cli.fit",
    "curve": "scaling.app.cli.curve",
    "extrapolate": "scaling.app.cli.extrapolate",
    "validate": "scaling.app.cli.validate",
    "plot": "scaling.app.cli.plot",
    "report": "scaling.app.cli.report",
    "datasets": "scaling.app.cli.datasets",
    "demo": "scaling.app.cli.demo",
    "completion": "scaling.app.cli.completion",
}


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line naming the command and pointing at --help."""

    def error(self, message: str):  # noqa: D401 - argparse API
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The ``scaling`` parser. With ``only``, just that subcommand's module is imported,
    so a command never depends on the others importing cleanly."""
    from scaling import __version__

    parser = OneLineParser(
        prog="scaling",
        description="Scaling-law and undertraining studies: train a model ladder, fit laws, extrapolate.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Run `scaling COMMAND --help` for each command's options and an example.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    for name, modname in COMMANDS.items():
        if only is not None and name != only:
            continue
        mod = importlib.import_module(modname)
        mod.add_parser(sub)
    return parser


def _command_in(argv: list[str]) -> str | None:
    """The subcommand named on the command line (the first word not an option), if known."""
    first = next((a for a in argv if not a.startswith("-")), None)
    return first if first in COMMANDS else None


def _parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """``parse_args``, but KEY=VALUE overrides may follow options too.

    argparse fills a ``nargs="*"`` positional from one unbroken run of words, so in
    ``scaling sweep demo --dry-run model=nano,micro`` the override after the option is
    left over. Words left over that way are overrides when the command takes them; any
    other leftover is the usual one-line usage error.
    """
    args, extra = parser.parse_known_args(argv)
    if extra:
        if isinstance(getattr(args, "overrides", None), list) and all(
                "=" in e and not e.startswith("-") for e in extra):
            args.overrides.extend(extra)  # parse_known_args keeps their order
        else:
            parser.parse_args(argv)  # reports the unrecognized words and exits 2
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if os.environ.get(LAW_MODULES_ENV):
        # the user's laws join the registry before any --law is read
        try:
            load_user_laws()
        except ToolkitError as e:
            print(f"scaling: error: {e}", file=sys.stderr)
            return 2
    parser = build_parser(only=_command_in(argv))
    args = _parse(parser, argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    # A warning is one line naming the command, like an error, not Python's two lines
    # with the source file and line that raised it.
    format_warning = warnings.formatwarning
    warnings.formatwarning = lambda message, category, *rest, **kw: _warning_line(args.command, message, category)
    try:
        return int(args.func(args) or 0)
    except ToolkitError as e:
        print(f"scaling {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"scaling {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader (e.g. `| head`) went away: not an error of ours. Point stdout at
        # devnull so the interpreter's final flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    finally:
        warnings.formatwarning = format_warning


def _warning_line(command: str, message, category) -> str:
    text = " ".join(str(message).split())
    # Our own warnings are UserWarnings; anything else (a library's) keeps its category.
    kind = "" if issubclass(category, UserWarning) else f" ({category.__name__})"
    return f"scaling {command}: warning: {text}{kind}\n"


if __name__ == "__main__":
    sys.exit(main())
