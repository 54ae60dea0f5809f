"""Turns: a job beside the stage gives its turn away only while networkit's Leiden child solves its graph."""

from __future__ import annotations

import numpy as np
import pytest

from fraudkit.identification.graph.leiden import networkit_membership
from fraudkit.pipeline.turns import Turns


def _solve():
    graph = [np.array([0, 1, 3, 4]), np.array([1, 2, 4, 5]), np.ones(4)]
    return networkit_membership(6, graph, resolution=1.0, seed=0, n_iterations=2, fallback=None)


def test_the_stage_works_while_the_jobs_child_solves_and_the_job_goes_on_after_it():
    turns, said = Turns(), []

    def job():
        said.append("job before its child")
        membership = _solve()
        said.append("job after its child")
        return membership.tolist()

    running = turns.beside(job)
    with turns.turn():
        said.append("stage")
    assert running.result() == [0, 0, 0, 1, 1, 1]
    assert said == ["job before its child", "stage", "job after its child"]


def test_a_job_without_a_child_is_done_before_the_stage_goes_on():
    turns, said = Turns(), []
    running = turns.beside(lambda: said.append("job"))
    said.append("stage")
    assert said == ["job", "stage"] and running.result() is None


def test_a_jobs_error_is_raised_by_result_and_leaves_the_turn_free():
    turns = Turns()

    def job():
        _solve()
        raise ValueError("the job failed after its child")

    running = turns.beside(job)
    with pytest.raises(ValueError, match="after its child"):
        running.result()
    with turns.turn():  # not held by the failed job
        pass


def test_a_job_still_working_when_the_stage_fails_is_stopped_and_waited_for():
    """The stage's error (an interrupt) stops the job at its next Python step and waits for it: a job left running
    in native code at the interpreter's exit aborted the process (exit 134 instead of 130)."""
    import threading
    import time

    from fraudkit.identification.graph import leiden

    turns, said, working = Turns(), [], threading.Event()

    def job():
        with leiden._ASIDE.get()():  # gives the turn away, as while a Leiden child solves
            pass
        working.set()
        try:
            while True:  # works with the turn held until it is stopped
                time.sleep(0.01)
        finally:
            said.append("job stopped")

    running = turns.beside(job)
    assert working.wait(10)
    running.stop()
    assert said == ["job stopped"] and not running._thread.is_alive()
    with pytest.raises(KeyboardInterrupt):
        running.result()
    with turns.turn():  # the stopped job let go of the turn
        pass


def test_a_stage_interrupted_while_it_waits_for_its_job_stops_the_job():
    """An interrupt while the stage waits for the job to give its turn away (a graph too small for a Leiden child:
    the job works through) stops the job before it goes on.

    The job sends SIGINT to the main thread, as Ctrl-C does: a real signal wakes the main thread's wait.
    (``_thread.interrupt_main()`` only sets the flag a running interpreter checks: when the main thread was
    already blocked in that wait, nothing woke it and the test hung; it did once in a full run.) SIGINT gets
    Python's own handler for the test, as the CLI has it: a worker of the suite had it ignored (SIG_IGN, seen in
    /proc/<pid>/status after an earlier test there; ipykernel's kernel app, among others, sets that), and the test
    hung there too.
    """
    import signal
    import threading
    import time

    turns, said = Turns(), []
    main = threading.main_thread().ident

    def job():
        time.sleep(0.2)  # the stage is waiting by now (the case that hung)
        signal.pthread_kill(main, signal.SIGINT)  # as Ctrl-C would, while the job works
        try:
            while True:
                time.sleep(0.01)
        finally:
            said.append("job stopped")

    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            turns.beside(job)
    finally:
        signal.signal(signal.SIGINT, before)
    assert said == ["job stopped"]
    assert not [t for t in threading.enumerate() if t.name == "fraudkit-turns"]
    with turns.turn():
        pass


def test_a_job_whose_thread_cannot_start_fails_at_once(monkeypatch):
    """A worker thread the system refuses (its thread limit) is an error of ``beside`` at once, not a wait for a
    job that never runs."""
    import threading

    real = threading.Thread.start

    def start(self):
        if self.name == "fraudkit-turns":
            raise RuntimeError("can't start new thread")
        return real(self)

    monkeypatch.setattr(threading.Thread, "start", start)
    turns, out = Turns(), {}

    def call():
        try:
            turns.beside(lambda: None)
        except RuntimeError as e:
            out["error"] = str(e)

    caller = threading.Thread(target=call, daemon=True)  # waited for with a time limit: a hang fails the test
    caller.start()
    caller.join(10)
    assert not caller.is_alive() and out == {"error": "can't start new thread"}
    with turns.turn():  # nothing holds the turn
        pass


def test_a_job_stopped_while_it_starts_threads_stops():
    """A job that starts threads (a thread pool's) is stopped, however the stop falls, and is waited for: an
    interrupt sent while the job started a thread went to the new thread (CPython gives a thread being started
    the identity of the one starting it), which ended before saying it had started, and the job waited for it
    for ever (3 of 200 stops hung before the stop waited for no thread being started; one hung a full run of
    the suite, in the graph stage's combined adjacency)."""
    import threading
    import time

    from fraudkit.pipeline.turns import alongside

    def job():
        while True:
            t = threading.Thread(target=lambda: None)
            t.start()
            t.join()

    hung = 0
    for _ in range(200):
        running = alongside(job, name="fraudkit-starts-threads")
        time.sleep(0.002)
        stopper = threading.Thread(target=running.stop, daemon=True)  # waited for with a time limit
        stopper.start()
        stopper.join(5)
        hung += stopper.is_alive()
    assert hung == 0
    with pytest.raises(KeyboardInterrupt):
        running.result()
