"""The errors both checkpoint readers raise: one family, all ``ValueError``\\ s.

* :class:`CheckpointError` -- a checkpoint file could not be read;
* :class:`CheckpointFormatError` -- the file is not a well-formed checkpoint (truncated,
  malformed, oversized, nested too deeply, ...); every refusal of a file's *content* is one, and
  its message names the file and where in it (a byte offset, or the path of keys to the value);
* :class:`UnsafeCheckpointError` -- a format error whose file asks to import or call something
  outside the allow-list (a pickle meant to run code). It is never run.

Example:
    >>> issubclass(UnsafeCheckpointError, CheckpointFormatError), issubclass(
    ...     CheckpointFormatError, ValueError)
    (True, True)
"""

from __future__ import annotations

import pickle

__all__ = ["CheckpointError", "CheckpointFormatError", "UnsafeCheckpointError"]


class CheckpointError(ValueError):
    """A checkpoint file could not be read.

    The base of the family that both checkpoint readers (``polyoptim.paddle.load`` and
    ``polyoptim.mindspore.load_checkpoint``) raise; a ``ValueError``, so code that catches
    ``ValueError`` around a load keeps working. :class:`CheckpointFormatError` and
    :class:`UnsafeCheckpointError` refine it.
    """


class CheckpointFormatError(CheckpointError):
    """The file is not a readable checkpoint (truncated, malformed, oversized, unknown format)."""


class UnsafeCheckpointError(CheckpointFormatError, pickle.UnpicklingError):
    """The file asks to import or call something outside the allow-list: it was refused."""
