"""The errors a user can fix, as distinct from mmzoo's own bugs.

Every error mmzoo raises about what it was given (an unknown model or source, a config value of
the wrong type, a missing file, bad data, a model that breaks the contract of
`mmzoo.contract`) is a `MmzooError`, and also the built-in type code already catches
(`ValueError`, `TypeError`, `KeyError`, `FileNotFoundError`). The `mmzoo` command prints these in
one line; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import difflib
import re
import sys


class MmzooError(Exception):
    """Base of the errors caused by the user's input; its message says what to change."""

    def __str__(self):  # a KeyError would print its message quoted
        return str(self.args[0]) if self.args else ""


class InvalidValue(MmzooError, ValueError):
    """A value, name, option or file content that mmzoo cannot use."""


class InvalidType(MmzooError, TypeError):
    """A config value of the wrong type, or an unknown config key."""


def did_you_mean(name, choices, n=1):
    """`"did you mean 'a' or 'b'?"` naming up to `n` of `choices` close to `name`
    (`difflib.get_close_matches`), or `""` when none is close."""
    close = difflib.get_close_matches(str(name), list(choices), n=n)
    return f"did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


class UnknownName(MmzooError, KeyError):
    """An unknown model name (the message suggests close ones)."""


class MissingFile(MmzooError, FileNotFoundError):
    """A file or folder that is not where the user said."""


class ContractError(MmzooError, ValueError):
    """A model that lacks what `pipeline`, `evaluate` or `export` need (see `mmzoo.contract`)."""


# Starts the message of an error about the data that is raised while TensorFlow runs a pipeline
# (an unknown label in a graph assertion, a file changed after listing in a reader): TensorFlow
# raises it as its own error type, and `user_message` finds mmzoo's message in it.
DATA_ERROR = "mmzoo data error: "


def user_message(error):
    """The one-line message of a user's mistake carried by `error`, or None when it is not
    one: an `MmzooError`, or a TensorFlow error raised while reading the data (an mmzoo
    message marked with `DATA_ERROR`, or a data file gone since it was listed)."""
    if isinstance(error, MmzooError):
        return str(error)
    tf = sys.modules.get("tensorflow")
    if tf is None or not isinstance(error, tf.errors.OpError):
        return None
    text = str(getattr(error, "message", "") or error)
    if DATA_ERROR in text:
        found = text.split(DATA_ERROR, 1)[1]
        found = re.split(r"\n|\s*\[\[\{\{node|\s*\[Op:", found)[0]
        found = re.sub(r"\]\s*\[", " ", found).strip(" []")
        return found.replace("\\'", "'").replace('\\"', '"')
    if isinstance(error, tf.errors.NotFoundError):
        first = text.strip().splitlines()[0] if text.strip() else ""
        first = re.sub(r"^\{\{function_node [^}]*\}\}\s*", "", first)
        return (f"a data file is missing ({first}); it was deleted or moved after the data "
                "was listed: restore it, or run again to list the data anew")
    return None


class DataWarning(UserWarning):
    """Something in the data that mmzoo left out or worked around, reported, never silent.

    `short` is one line for a terminal; `details` names every item concerned (the `mmzoo`
    command prints `short` once and writes `details` to the run folder). `str()` gives `short`
    and the first few details, so a notebook's warning stays readable; `.details` has them all.

    Args:
        short: str. What happened, in one line.
        details: list of str. One line per item concerned (paths and why).
    """

    def __init__(self, short, details=()):
        self.short, self.details = short, [str(d) for d in details]
        super().__init__(short)

    SHOWN = 5

    def __str__(self):
        lines = [self.short, *(f"  {d}" for d in self.details[:self.SHOWN])]
        if len(self.details) > self.SHOWN:
            lines.append(f"  ... and {len(self.details) - self.SHOWN} more (this warning's "
                         ".details names them all)")
        return "\n".join(lines)

    def full(self):
        """`short` and every detail, one a line."""
        return "\n".join([self.short, *(f"  {d}" for d in self.details)])


__all__ = ["DATA_ERROR", "ContractError", "DataWarning", "InvalidType", "InvalidValue",
           "MissingFile", "MmzooError", "UnknownName", "user_message"]
