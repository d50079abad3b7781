"""OS-level limits around rendering: a wall-clock deadline and a memory cap.

The sandbox's hooks (:mod:`promptc.render.sandbox`) see operators, calls, filters, ``range()``,
includes and imports. They cannot see ``~`` or a loop over a list whose body calls nothing:
Jinja compiles those to plain Python. Jinja's documentation leaves such limits to the operating
system, and while promptc renders (only then) it sets two:

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

A rendering session (:class:`OsLimits`: a renderer's ``iter_render``, or one ``messages``
call) installs the timer's handler, unless SIGALRM or the real-time timer is already someone
else's; the timer and the memory limit are then taken for each group of requests
(:meth:`OsLimits.group`) and released before the renderer hands the requests out, so that the
caller's own work between two requests runs without them. Taking and releasing them costs about
10 µs of system calls, most of what a few-shot prompt takes to render (15 µs): the renderer
takes them per group (:data:`promptc.render.renderer.GROUP_REQUESTS`), never per message.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from types import FrameType, TracebackType
from typing import Self

from promptc.render import budget as render_budget
from promptc.render.budget import Budget

if sys.platform == "linux":
    import resource

#: The budgets being rendered in the main thread, read by the timer's handler.
_WATCHED: list[Budget] = []

#: Seconds between two readings of the clock by the timer (and at most this late).
MAX_TICK = 1.0


class OsLimits:
    """The OS-level limits of one rendering session, taken for each group of requests.

    A session in another thread than the main one takes none. Sessions may nest (one renderer
    used while another's requests are handed out): the outermost installs the timer's handler,
    and a group holds the limits unless an enclosing one already does.
    """

    #: SIGALRM's handler is ours, and a group holds the limits (main thread only).
    _handler = False
    _held = False

    def __init__(self, budget: Budget) -> None:
        self.budget = budget
        self.main = threading.current_thread() is threading.main_thread()
        self._statm: int | None = None  # /proc/self/statm, read for the address space in use

    def __enter__(self) -> Self:
        if self.main:
            if not _WATCHED:
                OsLimits._handler = _install_handler()
            _WATCHED.append(self.budget)
            if sys.platform == "linux":
                try:
                    self._statm = os.open("/proc/self/statm", os.O_RDONLY)
                except OSError:
                    self._statm = None
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self.main:
            return
        if self._statm is not None:
            os.close(self._statm)
        _WATCHED.remove(self.budget)
        if not _WATCHED and OsLimits._handler:
            if signal.getsignal(signal.SIGALRM) is _on_alarm:  # not replaced meanwhile
                signal.signal(signal.SIGALRM, signal.SIG_DFL)
            OsLimits._handler = False

    def group(self) -> _Group:
        """The timer and the memory limit, held while a ``with`` block renders a group."""
        return _Group(self)

    def lower_memory_limit(self) -> tuple[int, int] | None:
        """Lowers the soft address-space limit for rendering, where that is safe; the limits
        to restore, or ``None`` when it was left as it was."""
        if self._statm is None or threading.active_count() != 1:
            return None
        try:
            pages = int(os.pread(self._statm, 64, 0).split()[0])
        except (OSError, ValueError, IndexError):
            return None
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        cap = pages * _PAGE + render_budget.MAX_RENDER_MEMORY
        if hard != resource.RLIM_INFINITY:
            cap = min(cap, hard)
        if soft != resource.RLIM_INFINITY and soft <= cap:
            return None
        resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
        return soft, hard


_PAGE = resource.getpagesize() if sys.platform == "linux" else 0


class _Group:
    """Holds the timer and the memory limit for one group (a class, not a generator: entered
    once per group of requests, its cost is counted in every request)."""

    def __init__(self, limits: OsLimits) -> None:
        self.limits = limits
        self.timer = False
        self.memory: tuple[int, int] | None = None
        self.held = False

    def __enter__(self) -> None:
        if not self.limits.main or OsLimits._held:
            return
        OsLimits._held = self.held = True
        try:
            self.memory = self.limits.lower_memory_limit()
            if OsLimits._handler:
                tick = min(MAX_TICK, render_budget.MAX_RENDER_SECONDS / 4)
                signal.setitimer(signal.ITIMER_REAL, tick, tick)
                self.timer = True
        except BaseException:
            self.__exit__(None, None, None)
            raise

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self.held:
            return
        if self.memory is not None:
            resource.setrlimit(resource.RLIMIT_AS, self.memory)
        if self.timer:
            signal.setitimer(signal.ITIMER_REAL, 0)
        OsLimits._held = False


def _on_alarm(signum: int, frame: FrameType | None) -> None:
    for budget in _WATCHED:
        budget.clock()


def _install_handler() -> bool:
    """Installs the timer's handler, unless SIGALRM or the real-time timer is someone else's."""
    if sys.platform == "win32":
        return False
    if signal.getitimer(signal.ITIMER_REAL) != (0.0, 0.0):
        return False
    if signal.getsignal(signal.SIGALRM) is not signal.SIG_DFL:
        return False
    signal.signal(signal.SIGALRM, _on_alarm)
    return True
