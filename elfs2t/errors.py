"""The two kinds of error a user of the stages can fix himself, and that entry points print as one message.

* :class:`ConfigError` -- a configuration value or option is invalid; the message names the key path (or the
  command-line option) and the bad value. Entry points exit with status 2, like argparse's usage errors.
* :class:`InputError` -- an input or an output folder cannot be used as it is (a folder made by another run,
  an unreadable checkpoint, a stale stage output); the message names the file or folder and what to do. Entry
  points exit with status 1.

Everything else that escapes an entry point is a bug and keeps its traceback (:mod:`elfs2t.bin._cli`).
"""
from __future__ import annotations

__all__ = ["ConfigError", "InputError"]


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the key path and the bad value."""


class InputError(RuntimeError):
    """An input file or folder cannot be used as it is; the message names it and says what to do."""
