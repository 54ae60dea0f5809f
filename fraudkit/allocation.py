"""Huge pages for a child's heap: the environment in which glibc's ``malloc`` backs its memory with transparent huge
pages.

Where the kernel gives transparent huge pages only to memory that asks for them (``madvise`` in
``/sys/kernel/mm/transparent_hugepage/enabled``, the usual default), NumPy asks for its large arrays, but the rest
of the heap does not: networkit's graph in the Leiden child processes
(:mod:`fraudkit.identification.graph.leiden`) is read at random over gigabytes in 4 KB pages, a TLB miss at nearly
every read. glibc (2.35 and later) asks for huge pages for every ``malloc`` arena when the process starts with
``GLIBC_TUNABLES=glibc.malloc.hugetlb=1``; the tunable is read once, when a process starts, so it is given to the
children when they are started.

Measured on ``large`` (``benchmarks/graph_stage.py``, one after the other, the whole process with the tunable): the
graph stage 317.1 s (user 317 s, system 91 s) without, 284.6 s (user 286 s, system 85 s) with, most of it the
Leiden children: the shared view's 40.6 -> 29.1 s, R(A,B)'s 34.1 -> 27.6 s; peak RSS 5.96 GB without, 5.92 GB with.
Only the children get it: the whole ``fraudkit score`` with it ("large after 688b659" in
``benchmarks/end_to_end.md``) was not faster, and the behaviour stage's SQL spent more CPU time with it (user 394 s
against 387 s, system 62 s against 55 s). Results do not change (``benchmarks/compare_runs.py``: 31 of 31 files of
the run directory equal).

``FRAUDKIT_HUGE_PAGES=0`` leaves the environment as it is; so does a ``GLIBC_TUNABLES`` that already sets
``glibc.malloc.hugetlb``, a kernel without transparent huge pages or that gives them to every allocation
(``always``), and a C library other than glibc 2.35 or later.
"""

from __future__ import annotations

import os
import platform
import sys

__all__ = ["huge_page_environment", "HUGE_PAGES_ENV", "TUNABLE"]

HUGE_PAGES_ENV = "FRAUDKIT_HUGE_PAGES"
"""Environment variable: ``0`` (or ``false``, ``no``, ``off``) starts the kit's children without the tunable."""
TUNABLE = "glibc.malloc.hugetlb=1"
"""The glibc tunable added to ``GLIBC_TUNABLES``."""

_THP = "/sys/kernel/mm/transparent_hugepage/enabled"


def huge_page_environment(env=None, *, thp_path: str = _THP) -> dict:
    """``env`` (default: this process's environment), as a new dict, with :data:`TUNABLE` added to
    ``GLIBC_TUNABLES`` where it helps (see the module's docstring); otherwise an unchanged copy.

    Examples
    --------
    >>> import tempfile, os
    >>> thp = os.path.join(tempfile.mkdtemp(), "enabled")
    >>> _ = open(thp, "w").write("always [madvise] never")
    >>> glibc = platform.libc_ver()[0] == "glibc"
    >>> huge_page_environment({}, thp_path=thp).get("GLIBC_TUNABLES") == (TUNABLE if glibc else None)
    True
    >>> huge_page_environment({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"}, thp_path=thp)["GLIBC_TUNABLES"]
    'glibc.malloc.hugetlb=0'
    >>> huge_page_environment({"FRAUDKIT_HUGE_PAGES": "0"}, thp_path=thp)
    {'FRAUDKIT_HUGE_PAGES': '0'}
    """
    env = dict(os.environ if env is None else env)
    tunables = env.get("GLIBC_TUNABLES", "")
    if (env.get(HUGE_PAGES_ENV, "1").strip().lower() in ("0", "false", "no", "off")
            or "glibc.malloc.hugetlb" in tunables or not _glibc_with_hugetlb() or not _advised_only(thp_path)):
        return env
    env["GLIBC_TUNABLES"] = f"{tunables}:{TUNABLE}" if tunables else TUNABLE
    return env


def _glibc_with_hugetlb() -> bool:
    """Linux with glibc 2.35 or later (the first with ``glibc.malloc.hugetlb``)."""
    if not sys.platform.startswith("linux"):
        return False
    name, version = platform.libc_ver()
    try:
        return name == "glibc" and tuple(int(x) for x in version.split(".")[:2]) >= (2, 35)
    except ValueError:
        return False


def _advised_only(path: str) -> bool:
    """Whether the kernel gives transparent huge pages to the memory that asks for them, and only to it."""
    try:
        with open(path, encoding="ascii") as f:
            return "[madvise]" in f.read()
    except OSError:
        return False
