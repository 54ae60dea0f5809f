"""One turn at a time: a step on a worker thread that gives its turn away while it only waits.

The association network's Leiden child (networkit, about 40 s on one core on ``large``) leaves the parent idle;
:class:`Turns` lets the group stage run its dense blocks meanwhile, without two steps ever working at once: the
worker holds the turn while it works and gives it away only while it waits for the child
(:func:`fraudkit.identification.graph.leiden.waiting_aside`), and the stage takes the turn for its step. So the
steps run in one order whatever the timing (the worker's part before the child, the stage's step, the worker's
part after it), their memory never adds up beyond the child's, and neither reads or writes a shared state (a
DuckDB connection, a seeded generator) while the other does.

:func:`alongside` starts a job that takes no turns, for work that may run at the same time as the caller's.
Either job is a context manager: a block that fails or is interrupted stops the job before its error goes on.
"""

from __future__ import annotations

import ctypes
import threading
import time
from contextlib import contextmanager

from fraudkit.identification.graph.leiden import waiting_aside

__all__ = ["Turns", "alongside"]


class Turns:
    """The turn of the stage's thread and of the jobs it starts :meth:`beside` it.

    Examples
    --------
    >>> turns, said = Turns(), []
    >>> job = turns.beside(lambda: said.append("job") or 3)
    >>> with turns.turn():
    ...     said.append("stage")
    >>> job.result(), said
    (3, ['job', 'stage'])
    """

    def __init__(self):
        self._lock = threading.Lock()

    @contextmanager
    def turn(self):
        """The block runs when no job works (a job waiting for a Leiden child does not)."""
        with self._lock:
            yield

    def beside(self, fn, *args) -> "_Job":
        """Start ``fn(*args)`` on a worker thread holding the turn, and return once it waits for a Leiden child
        (its turn given away until the child is done and the turn is free again) or is done."""
        given = threading.Event()

        @contextmanager
        def aside():
            self._lock.release()
            given.set()
            try:
                yield
            finally:
                self._lock.acquire()

        def work():
            try:
                with self._lock, waiting_aside(aside):
                    return fn(*args)
            finally:
                given.set()

        # a thread the system refuses (its limit) raises here: no job runs to be stopped
        with alongside(work, name="fraudkit-turns") as job:  # interrupted while it works: stopped first
            given.wait()
        return job


def alongside(fn, *args, name: str = "fraudkit-alongside") -> "_Job":
    """Start ``fn(*args)`` on a worker thread named ``name`` that takes no turns: it works while the caller does
    (the graph stage beside the group stage, by default on small data and with ``fraudkit score --side-by-side``,
    their DuckDB statements one at a time by :data:`fraudkit.data.connection.QUERY_LOCK`; :meth:`Turns.beside`
    starts its job with it).
    :meth:`_Job.result` waits for it; :meth:`_Job.stop` interrupts it.

    Used as a context manager, the job is stopped when the block fails or is interrupted, before the error
    goes on (a job left running was stopped in the middle of native code at the interpreter's exit: see
    :meth:`_Job.stop`); a block that ends normally leaves it running.

    Examples
    --------
    >>> alongside(sum, [1, 2]).result()
    3
    >>> with alongside(sum, [1, 2]) as job:
    ...     job.result() + 1
    4
    """
    began, box = threading.Event(), {}

    def work():
        began.set()
        try:
            box["value"] = fn(*args)
        except BaseException as e:  # noqa: BLE001 - handed to the caller by result()
            box["error"] = e

    thread = threading.Thread(target=work, name=name, daemon=True)
    thread.start()
    return _Job(thread, box, began)


class _Job:
    """A job started by :meth:`Turns.beside` or :func:`alongside`."""

    def __init__(self, thread, box, began):
        self._thread, self._box, self._began = thread, box, began

    def __enter__(self) -> "_Job":
        return self

    def __exit__(self, kind, error, trace) -> bool:
        if kind is not None:  # the block failed or was interrupted: the job is stopped before the error goes on
            self.stop()
        return False

    def result(self):
        """Wait for the job; its value, or its exception raised here."""
        self._thread.join()
        if "error" in self._box:
            raise self._box["error"]
        return self._box["value"]

    def stop(self) -> None:
        """Interrupt the job (a :class:`KeyboardInterrupt` raised in its thread at its next Python step, once the
        call it is in returns) and wait for it: what the stage does when it fails or is interrupted itself.

        A job left running when the stage's exception ends the process was stopped in the middle of DuckDB's or
        igraph's native code at the interpreter's exit ("terminate called without an active exception", exit
        134 instead of the interrupt's 130).
        """
        self._began.wait()  # its thread runs (an interrupt can come while it starts)
        if self._thread.is_alive():
            _interrupt(self._thread)
        self._thread.join()


def _interrupt(thread: threading.Thread) -> None:
    """Raise :class:`KeyboardInterrupt` in ``thread`` at its next Python step, once no thread is being started.

    CPython 3.11 gives a thread being started the identity of the thread that starts it until the new thread
    runs, and the interrupt goes to the newest thread of that identity: an interrupt sent while the job started
    a thread (a thread pool's) ended the new thread before it said it had started, and the job waited for it
    for ever (3 of 200 stops of a job starting threads in a loop hung;
    ``tests/pipeline/test_turns.py::test_a_job_stopped_while_it_starts_threads_stops``). A thread being started
    is in threading's ``_limbo`` until it runs; the interrupt is sent when none is, under the lock that
    :meth:`threading.Thread.start` takes to put one there.
    """
    while True:
        with threading._active_limbo_lock:
            if not threading._limbo:
                ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread.ident),
                                                           ctypes.py_object(KeyboardInterrupt))
                return
        time.sleep(0.001)
