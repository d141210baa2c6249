"""One exception hierarchy for the whole library.

Library code raises these; only the CLI (and the flows) turn them into one-line
messages and exit codes.  Every message is a sentence a user understands and names
the file it is about.
"""

from __future__ import annotations


class VfxmatteError(Exception):
    """Base of every error vfxmatte raises on purpose."""

    exit_code = 1


class UsageError(VfxmatteError):
    """Bad command-line usage or parameters (exit status 2)."""

    exit_code = 2


class InputError(VfxmatteError):
    """An input (file, sequence, movie) cannot be used at all (exit status 2)."""

    exit_code = 2


class FrameError(VfxmatteError):
    """One frame failed; the rest of the run continues (exit status 1)."""

    exit_code = 1

    def __init__(self, message: str, frame: int | None = None) -> None:
        super().__init__(message)
        self.frame = frame


class MovieDecodeError(FrameError):
    """A movie stopped decoding part way; frames before the damage are usable."""


class OutputError(VfxmatteError):
    """An output cannot be written (exists, would overwrite an input, disk full…)."""

    exit_code = 2


class ModelError(VfxmatteError):
    """A model folder is missing, malformed or holds unsafe weights."""

    exit_code = 2
