"""The ``fraudkit`` command (and ``python -m fraudkit``): the CLI (:mod:`fraudkit.cli`) in a process whose heap
uses transparent huge pages (:mod:`fraudkit.allocation`).

glibc reads its tunables once, when a process starts, so this launcher, which imports nothing heavy, runs its own
command line again in a new process image (``exec``: the same process id, signals and exit code) with them; where
nothing is to be added (:func:`~fraudkit.allocation.huge_page_environment` changes nothing: so in that new image)
or the ``exec`` fails, the CLI runs here.
"""

from __future__ import annotations

import os
import runpy
import sys

from fraudkit.allocation import huge_page_environment

__all__ = ["main"]


def main() -> None:
    env = huge_page_environment()
    if env != dict(os.environ):
        # the same command line again (the console script, ``python -m fraudkit`` or a ``-c``), so the new image
        # finds the same fraudkit on the same path; there the environment is complete and the CLI runs
        try:
            os.execve(sys.executable, sys.orig_argv, env)
        except OSError:  # no exec here: the CLI runs in this process, as it is
            pass
    runpy.run_module("fraudkit.cli", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
