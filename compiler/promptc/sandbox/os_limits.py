"""OS-level limits around rendering: a wall-clock deadline and a memory cap.

The sandbox's hooks (:mod:`promptc.sandbox.environment`) see operators, calls, filters, ``range()``,
includes and imports. They cannot see ``~`` or a loop over a list whose body calls nothing:
Jinja compiles those to plain Python. Jinja's documentation leaves such limits to the operating
system, and while promptc renders (only then) it sets two:

- **time**: an interval timer (``SIGALRM``) whose handler reads the clock of the message being
  rendered (:meth:`Budget.clock`) and raises the budget's time error in the template code
  that is running. Python runs signal handlers in the main thread only; in another thread the
  clock is read by the sandbox's hooks alone.
- **memory**: the soft ``RLIMIT_AS`` lowered to the address space in use plus
  :data:`~promptc.sandbox.budget.MAX_RENDER_MEMORY`, where that is safe: on Linux (which reports
  the address space in ``/proc/self/statm``), in the main thread, with no other Python thread
  alive (the limit is the whole process's: another thread allocating meanwhile would meet it),
  and never above a limit already set. A template crossing it ends in a ``MemoryError``, which
  the renderer reports as the budget's memory error.

:class:`OsLimits` holds both while a ``with`` block renders — the timer only when SIGALRM and
the real-time timer are no one else's — and restores everything as it was when the block
ends, so that the caller's own work between two requests runs without them. Taking and
releasing them costs 20 to 50 µs of system calls, more than a few-shot prompt takes to render
(15 µs): the renderer takes them per group of requests
(:data:`promptc.render.renderer.GROUP_REQUESTS`), never per message.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from types import FrameType, TracebackType

from promptc.sandbox import budget as render_budget
from promptc.sandbox.budget import Budget

if sys.platform == "linux":
    import resource

#: The budget of the block holding the limits (in the main thread), read by the timer's handler.
_held: Budget | None = None

#: Seconds between two readings of the clock by the timer (and at most this late).
MAX_TICK = 1.0


class OsLimits:
    """The timer and the memory limit, held while a ``with`` block renders with ``budget``.

    In another thread than the main one, or inside a block that already holds them, it takes
    none (the outer block's budget is the one the timer reads).
    """

    def __init__(self, budget: Budget) -> None:
        self.budget = budget
        self.held = False
        self.timer = False
        self.memory: tuple[int, int] | None = None

    def __enter__(self) -> None:
        global _held
        if _held is not None or threading.current_thread() is not threading.main_thread():
            return
        _held, self.held = self.budget, True
        try:
            self.memory = _lower_memory_limit()
            self.timer = _start_timer()
        except BaseException:
            self.__exit__(None, None, None)
            raise

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        global _held
        if not self.held:
            return
        if self.memory is not None:
            resource.setrlimit(resource.RLIMIT_AS, self.memory)
        if self.timer:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, signal.SIG_DFL)
        _held, self.held = None, False


def _on_alarm(signum: int, frame: FrameType | None) -> None:
    if _held is not None:
        _held.clock()


def _start_timer() -> bool:
    """Installs the timer's handler and starts the timer, unless SIGALRM or the real-time timer
    is someone else's."""
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
            pages = int(os.read(fd, 64).split()[0])
        finally:
            os.close(fd)
    except (OSError, ValueError, IndexError):
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = pages * resource.getpagesize() + render_budget.MAX_RENDER_MEMORY
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    if soft != resource.RLIM_INFINITY and soft <= cap:
        return None
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    return soft, hard
