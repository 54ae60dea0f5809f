"""Stand-ins for :func:`fraudkit.pipeline.turns.alongside` and its jobs in tests of steps that run beside another."""


def in_a_row(started):
    """An ``alongside`` that runs its job before returning (the steps one after the other), recording its name in
    ``started``."""

    def alongside(fn, *args, name=""):
        started.append(name)
        return Done(fn(*args))

    return alongside


def watched(real, stopped, began=None):
    """``real`` (an ``alongside``) whose jobs record their name in ``stopped`` when stopped (and in ``began`` when
    started)."""

    def alongside(fn, *args, name=""):
        job = real(fn, *args, name=name)
        if began is not None:
            began.append(name)
        stop = job.stop
        job.stop = lambda: stopped.append(name) or stop()
        return job

    return alongside


class Done:
    """A job already done: its value; a context manager, as the real jobs are."""

    def __init__(self, value):
        self.value = value

    def result(self):
        return self.value

    def stop(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *error):
        return False
