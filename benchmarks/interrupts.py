"""SIGTERM ends a grid the way Ctrl-C does: as a :class:`KeyboardInterrupt` in the main thread,
so that a ``kill`` (or a scheduler's stop) stops the pool, says what was saved and how to
resume, and exits quietly, instead of leaving the workers to notice on their own."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C raises :class:`KeyboardInterrupt`."""

    #: the exit status of a process ended by SIGTERM (128 + 15)
    exit_code = 128 + signal.SIGTERM


def exit_code(interrupt: KeyboardInterrupt) -> int:
    """The exit status for an interrupt: 130 for Ctrl-C (SIGINT), 143 for SIGTERM."""
    return getattr(interrupt, "exit_code", 128 + signal.SIGINT)


def _raise(signum: int, frame: FrameType | None) -> None:
    raise Terminated()


@contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Terminated` (outside the main thread, where no
    handler can be set, nothing changes)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
