"""OS-level limits around rendering: a wall-clock deadline and a memory cap.

The sandbox's hooks (:mod:`promptc.render.sandbox`) see operators, calls, filters and
``range()``. They cannot see ``~`` or a loop over a list whose body calls nothing: Jinja compiles those
to plain Python. Jinja's documentation leaves such
limits to the operating system, and while promptc renders (only then) it sets two:

- **time**: an interval timer (``SIGALRM``) whose handler reads the clock of the message being
  rendered (:meth:`Budget.clock`) and raises the budget's time error in the template code
  that is running. Python runs signal handlers in the main thread only; in another thread the
  clock is read by the sandbox's hooks alone.
- **memory**: the soft ``RLIMIT_AS`` lowered to the address space in use plus
  :data:`~promptc.render.budget.MAX_RENDER_MEMORY`, where that is safe: on Linux (which reports
  the address space in ``/proc/self/statm``), in the main thread, with no other Python thread
  alive (the limit is the whole process's: another thread allocating meanwhile would meet it),
  and never above a limit already set. A template crossing it ends in a ``MemoryError``, which
  the renderer reports as the budget's memory error.

Both are restored as they were when rendering stops, and neither is taken when another part of
the program holds it (a SIGALRM handler installed, a timer running). Taking and restoring them
costs about 20 µs of system calls, as much as rendering a few-shot prompt, so the renderer
holds them over a group of requests (:data:`promptc.render.renderer.GROUP_REQUESTS`), never per
message, and releases them before it hands the requests out: the caller's own work between two
requests runs without them.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from promptc.render import budget as render_budget
from promptc.render.budget import Budget

if sys.platform == "linux":
    import resource

#: The budgets being rendered in the main thread, read by the timer's handler.
_WATCHED: list[Budget] = []

#: Seconds between two readings of the clock by the timer (and at most this late).
MAX_TICK = 1.0


@contextmanager
def os_limits(budget: Budget) -> Iterator[None]:
    """Holds the OS limits while the block renders with ``budget`` (nested: the outer ones)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    outermost = not _WATCHED
    _WATCHED.append(budget)
    timer, memory = False, None
    try:
        if outermost:
            timer = _start_timer()
            memory = _lower_memory_limit()
        yield
    finally:
        if memory is not None:
            resource.setrlimit(resource.RLIMIT_AS, memory)
        if timer:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, signal.SIG_DFL)
        _WATCHED.remove(budget)


def _on_alarm(signum: int, frame: FrameType | None) -> None:
    for budget in _WATCHED:
        budget.clock()


def _start_timer() -> bool:
    """Starts the timer, unless SIGALRM or the real-time timer is someone else's."""
    if sys.platform == "win32":
        return False
    if signal.getitimer(signal.ITIMER_REAL) != (0.0, 0.0):
        return False
    if signal.getsignal(signal.SIGALRM) is not signal.SIG_DFL:
        return False
    signal.signal(signal.SIGALRM, _on_alarm)
    tick = min(MAX_TICK, render_budget.MAX_RENDER_SECONDS / 4)
    signal.setitimer(signal.ITIMER_REAL, tick, tick)
    return True


def _lower_memory_limit() -> tuple[int, int] | None:
    """Lowers the soft address-space limit for rendering, where that is safe; the limits to
    restore, or ``None`` when it was left as it was."""
    if sys.platform != "linux" or threading.active_count() != 1:
        return None
    try:
        fd = os.open("/proc/self/statm", os.O_RDONLY)
        try:
            used = int(os.read(fd, 64).split()[0]) * resource.getpagesize()
        finally:
            os.close(fd)
    except (OSError, ValueError, IndexError):
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = used + render_budget.MAX_RENDER_MEMORY
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    if soft != resource.RLIM_INFINITY and soft <= cap:
        return None
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    return soft, hard
