"""Progress lines: stage, step, rows and seconds on stderr; plain lines off a terminal or in CI; nothing quiet."""

import io

import pytest

from fraudkit.pipeline.progress import Progress, animated, step


class _Tty(io.StringIO):
    def isatty(self):
        return True


def test_plain_lines_say_start_and_end_with_rows_and_seconds():
    out = io.StringIO()
    p = Progress("score", stream=out)
    with p.step("score", "behaviour stage") as s:
        with p.step("score", "behaviour features") as inner:
            inner.rows(6780, "accounts")
        s.rows(2, "account scores")
    lines = out.getvalue().splitlines()
    assert [ln.split("] ", 1)[1] for ln in lines][:3] == ["score · behaviour stage: started",
                                                          "score · behaviour features: started",
                                                          "score · behaviour features: done, 6,780 accounts, 0.0 s"]
    assert all(ln.startswith("[fraudkit score ") for ln in lines) and len(lines) == 4
    assert lines[-1].endswith("behaviour stage: done, 2 account scores, 0.0 s")
    assert "\r" not in out.getvalue()


def test_a_failed_step_says_so_and_the_error_propagates():
    out = io.StringIO()
    with pytest.raises(ValueError):
        with Progress(stream=out).step("train", "graph stage"):
            raise ValueError("boom")
    assert "train · graph stage: failed after" in out.getvalue()


def test_quiet_writes_nothing_and_no_progress_is_a_no_op():
    out = io.StringIO()
    with Progress(enabled=False, stream=out).step("score", "load") as s:
        s.rows(3)
    Progress(enabled=False, stream=out).say("hello")
    with step(None, "score", "load") as s:
        s.rows(3)
    assert out.getvalue() == ""


def test_a_terminal_gets_a_bar_and_ci_or_a_pipe_gets_plain_lines(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    assert animated(_Tty()) and not animated(io.StringIO())
    monkeypatch.setenv("CI", "true")
    assert not animated(_Tty())
    tty = _Tty()
    with Progress(stream=tty).step("score", "load"):
        pass
    assert "score · load: started" in tty.getvalue() and "\r" not in tty.getvalue()  # CI: plain lines
    monkeypatch.delenv("CI")
    tty = _Tty()
    with Progress(stream=tty).step("score", "load") as s:
        s.rows(5, "accounts")
    text = tty.getvalue()
    assert "\r" in text and "[fraudkit score] score · load" in text  # the bar
    assert "score · load: done, 5 accounts" in text  # the line that stays


def test_steps_of_two_threads_interleave_whole_lines_and_the_bar_follows_the_running_ones():
    """Two threads report steps at once (the group and graph stages side by side): every line is whole, each
    step's end names it, and on a terminal the bar shows a step still running, none once both end."""
    import threading

    out = _Tty()
    p = Progress("score", stream=out, animate=True)
    both_in, first_done = threading.Barrier(2), threading.Event()
    shown = []

    def stage(name, ends_first):
        with p.step("score", f"{name} stage"):
            with p.step("score", f"{name} stage · load"):
                both_in.wait(5)
                if not ends_first:
                    first_done.wait(5)
                    shown.append(p._stack[:])
        if ends_first:
            first_done.set()

    threads = [threading.Thread(target=stage, args=("group", True)),
               threading.Thread(target=stage, args=("graph", False))]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert shown == [["score · graph stage", "score · graph stage · load"]]  # the group's steps taken off, not these
    assert p._bar is None and p._stack == []
    done = [ln.split("] ", 1)[1].rsplit(",", 1)[0] for ln in out.getvalue().splitlines() if ": done" in ln]
    assert sorted(done) == sorted(f"score · {n} stage{s}: done" for n in ("group", "graph") for s in ("", " · load"))
