"""What a command does with an output stream it can no longer write to."""

from __future__ import annotations

import os
from typing import TextIO


def to_devnull(stream: TextIO) -> None:
    """Points ``stream`` (stdout or stderr) at /dev/null once writing to it failed: what is still
    buffered is dropped there, not written again (and failing again) at the next flush or when
    the interpreter exits."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, stream.fileno())
    os.close(devnull)
