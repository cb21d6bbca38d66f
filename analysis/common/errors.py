"""The toolkit's named exceptions.

Every error raised on purpose derives from :class:`ToolkitError`. Its message is one
line that names the offending field and says how to fix it; the CLI prints that line
and exits with status 2, never a traceback. The hierarchy lives here, in the torch-free
layer, so that both ``analysis`` and ``scaling`` raise the same types.
"""
from __future__ import annotations

__all__ = [
    "ToolkitError",
    "InputError",
    "TableError",
    "FitError",
    "ConfigError",
    "DataError",
    "RecordError",
    "CheckpointError",
    "DivergenceError",
]


class ToolkitError(Exception):
    """Base class. ``field`` names what was wrong, ``fix`` says what to do instead."""

    def __init__(self, message: str, *, field: str | None = None, fix: str | None = None):
        self.message = " ".join(str(message).split())  # always one line
        self.field = field
        self.fix = " ".join(str(fix).split()) if fix else None
        super().__init__(self.message)

    def __str__(self) -> str:
        head = f"{self.field}: {self.message}" if self.field else self.message
        return f"{head} (fix: {self.fix})" if self.fix else head


class InputError(ToolkitError):
    """A bad argument or option given by the user (CLI flag, function argument)."""


class TableError(InputError):
    """A table of observations that cannot be fitted as given (columns, NaN, too few sizes...)."""


class FitError(ToolkitError):
    """A fit that could not be carried out or did not converge."""


class ConfigError(InputError):
    """A training or sweep configuration that cannot run as written."""


class DataError(ToolkitError):
    """A corpus or token file that is missing, empty or malformed."""


class RecordError(ToolkitError):
    """A run record (metrics.jsonl / summary.json) that is missing or malformed."""


class CheckpointError(ToolkitError):
    """A checkpoint that is missing, corrupt or incompatible with the run."""


class DivergenceError(ToolkitError):
    """Training produced a non-finite loss or gradient."""
