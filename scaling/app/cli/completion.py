"""``scaling completion bash|zsh|tcsh``: a shell completion script for the ``scaling`` command.

The script comes from the full parser through shtab, so it completes every subcommand
and option as ``--help`` lists them, and never goes stale. Install it once, e.g.
``scaling completion bash > ~/.local/share/bash-completion/completions/scaling``.
"""
# Deferred imports: shtab is imported in run so that an environment without it fails this command
# only; scaling.app.cli and analysis.common.errors are imported there too for no start-up gain (both
# are loaded before this module is) and may move up.
from __future__ import annotations

import argparse

from scaling.app.cli._common import add_command

SHELLS = ("bash", "zsh", "tcsh")
EXAMPLE = ("scaling completion bash > ~/.local/share/bash-completion/completions/scaling\n"
           "  scaling completion zsh > ~/.zfunc/_scaling    # with fpath+=(~/.zfunc) before compinit")


def add_parser(sub) -> argparse.ArgumentParser:
    p = add_command(sub, "completion", "Print a shell completion script for the scaling command.", EXAMPLE, run)
    p.add_argument("shell", choices=SHELLS, help="the shell to complete in")
    return p


def run(args) -> int:
    from analysis.common.errors import ConfigError
    from scaling.app.cli import build_parser

    try:
        import shtab
    except ImportError:  # a dependency, but an environment may predate it
        raise ConfigError("needs the shtab package", field="completion",
                          fix="pip install shtab (it is among the toolkit's dependencies)") from None
    print(shtab.complete(build_parser(), shell=args.shell), end="")
    return 0
