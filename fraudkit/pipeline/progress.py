"""Progress of the long commands (``fraudkit score``, ``fraudkit simulate``): stage, step, rows, elapsed.

Written to stderr, never to stdout (stdout carries the command's result). On a terminal a tqdm bar shows the
running step and its elapsed time, and every finished step stays as a line above it; when stderr is not a
terminal, or the ``CI`` environment variable is set, plain lines only (no carriage returns), one when a step
starts and one when it ends, so logs read top to bottom. ``Progress(enabled=False)`` (``--quiet``) writes
nothing. Code that reports progress takes ``progress=None`` and calls :func:`step`, which does nothing
without a :class:`Progress`.

A line reads ``[fraudkit score 12.3s] score · behaviour features: done, 6,780 accounts, 8.1 s``: the command
and the seconds since it started, the stage (the pass: ``score`` for the scored data, ``train`` for the
training data's operating-point pass), the step, its size and its own seconds.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from contextlib import contextmanager, nullcontext

from tqdm import tqdm

__all__ = ["Progress", "Step", "step", "animated"]


def animated(stream) -> bool:
    """Whether ``stream`` may show an animated bar: it is a terminal and ``CI`` is not set.

    Examples
    --------
    >>> import io
    >>> animated(io.StringIO())
    False
    """
    if os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
        return False
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty is not None and isatty())
    except ValueError:  # a closed stream
        return False


class Step:
    """One running step; :meth:`rows` records how much it handled, for its closing line."""

    def __init__(self):
        self.n = None
        self.what = "rows"

    def rows(self, n, what: str = "rows") -> None:
        """Record the step's size: ``n`` ``what`` (``step.rows(6780, "accounts")``)."""
        self.n, self.what = int(n), str(what)


class Progress:
    """Progress lines of one command on stderr.

    Parameters
    ----------
    command : str, default="score"
        Shown in every line (``[fraudkit score ...]``).
    enabled : bool, default=True
        False writes nothing (``--quiet``).
    stream : file, optional
        Default: ``sys.stderr`` at the time of each write (so test runners that swap it see the lines).
    animate : bool, optional
        A tqdm bar that shows the running step; default :func:`animated` of the stream.

    Examples
    --------
    >>> import io
    >>> out = io.StringIO()
    >>> p = Progress("score", stream=out)
    >>> with p.step("score", "load") as s:
    ...     s.rows(12, "accounts")
    >>> lines = out.getvalue().splitlines()
    >>> lines[0].endswith("score · load: started"), "load: done, 12 accounts" in lines[1]
    (True, True)
    >>> with Progress(enabled=False, stream=out).step("score", "load"):
    ...     pass
    >>> len(out.getvalue().splitlines())
    2
    """

    def __init__(self, command: str = "score", *, enabled: bool = True, stream=None, animate=None):
        self.command = command
        self.enabled = enabled
        self._stream = stream
        self._animate = animate
        self._t0 = time.perf_counter()
        self._bar = None
        self._ticker = None
        self._stop = threading.Event()
        self._stack: list = []  # the running steps, innermost last; two threads' steps interleave
        self._lock = threading.RLock()  # one line at a time and one change of the stack, whatever the thread

    @property
    def stream(self):
        return self._stream if self._stream is not None else sys.stderr

    def say(self, message: str) -> None:
        """One plain line (above the bar on a terminal)."""
        if not self.enabled:
            return
        line = f"[fraudkit {self.command} {time.perf_counter() - self._t0:.1f}s] {message}"
        with self._lock:
            if self._bar is not None:
                self._bar.write(line, file=self.stream)
            else:
                print(line, file=self.stream, flush=True)

    @contextmanager
    def step(self, stage: str, name: str):
        """Report one step: a line when it starts (a bar on a terminal) and one when it ends, with its size.

        Steps may nest (a stage's own steps inside it); on a terminal the bar shows the innermost. Two threads
        may report steps at once (the group and graph stages side by side): each line is written whole, and the
        bar shows the step started last of those still running.
        """
        if not self.enabled:
            yield Step()
            return
        s, t = Step(), time.perf_counter()
        what = f"{stage} · {name}"
        with self._lock:
            self._stack.append(what)
            if self._use_bar():
                self._show(what)
            else:
                self.say(f"{what}: started")
        try:
            yield s
        except BaseException:
            self._end(what)
            self.say(f"{what}: failed after {time.perf_counter() - t:.1f} s")
            raise
        self._end(what)
        size = f"{s.n:,} {s.what}, " if s.n is not None else ""
        self.say(f"{what}: done, {size}{time.perf_counter() - t:.1f} s")

    # --- private --------------------------------------------------------------------------------

    def _end(self, what) -> None:
        """Take the step ``what`` off the stack (its last entry: another thread's steps may have come after it)."""
        with self._lock:
            del self._stack[len(self._stack) - 1 - self._stack[::-1].index(what)]
            self._show(self._stack[-1] if self._stack else None)

    def _use_bar(self) -> bool:
        return animated(self.stream) if self._animate is None else bool(self._animate)

    def _show(self, what):
        """The bar shows ``what`` (started on first use); None closes it."""
        if what is None:
            if self._bar is not None:
                self._stop.set()
                self._ticker.join()
                self._bar.close()
                self._bar, self._ticker = None, None
            return
        desc = f"[fraudkit {self.command}] {what}"
        if self._bar is not None:
            self._bar.set_description_str(desc)
            return
        if not self._use_bar():
            return
        self._bar = tqdm(total=None, desc=desc, file=self.stream, leave=False, bar_format="{desc} ({elapsed})",
                         mininterval=0.5)
        self._stop = threading.Event()
        bar, stop = self._bar, self._stop

        def tick():
            while not stop.wait(0.5):
                bar.refresh()

        self._ticker = threading.Thread(target=tick, daemon=True)
        self._ticker.start()


def step(progress, stage: str, name: str):
    """``progress.step(stage, name)``, or a step that reports nothing when ``progress`` is None.

    Examples
    --------
    >>> with step(None, "score", "load") as s:
    ...     s.rows(3)
    """
    if progress is None:
        return nullcontext(Step())
    return progress.step(stage, name)
