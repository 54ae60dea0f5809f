"""Leiden on large graphs: networkit's ``ParallelLeiden`` on one thread, in a child process.

igraph's ``community_leiden`` is the kit's Leiden (:mod:`fraudkit.identification.graph.communities`). On the
``large`` world's shared-entity view (17.9M edges, 940k accounts) it took 93.5 s for modularity 0.3307, while
networkit's ``ParallelLeiden`` with 4 iterations on one thread took 3.6 s to build its graph and 31.7 s to run,
for modularity 0.3333 (``benchmarks/group_graph.md``, "Communities on the large shared view"). So a graph of
:data:`NETWORKIT_EDGES` edges or more goes to networkit; smaller graphs, where igraph takes seconds and starting a
child costs more than it saves, stay on igraph and keep their partitions.

* **Reproducible.** One thread and a seed (``networkit.setSeed(seed, False)``) give the same partition every run;
  on two threads ``ParallelLeiden`` did not.
* **Isolated.** The graph is solved in a fresh interpreter that imports only numpy and networkit's modules for it
  (this file run as a script, :func:`_networkit`), fed through ``.npy`` files. In one ad-hoc script a second
  ``ParallelLeiden`` run in a process that had also run SciPy and scikit-learn died with a segmentation fault; a
  child process that solves one graph and exits never shares its OpenMP runtime or heap with the kit's other
  native libraries. Should the child fail anyway, the graph is solved by igraph, with a warning that says so.
* **The same objective.** ``gamma`` is the modularity resolution in the same sense as igraph's ``resolution``
  (``Q = 1/(2m) sum_ij (A_ij - gamma k_i k_j / (2m)) delta(c_i, c_j)``). Self-loops add to a node's strength in
  igraph; a graph with self-loops stays on igraph.
"""

from __future__ import annotations

import contextvars
import functools
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import warnings
from contextlib import contextmanager, nullcontext

import numpy as np

__all__ = ["NETWORKIT_EDGES", "NETWORKIT_ITERATIONS", "use_networkit", "networkit_membership", "modularity",
           "waiting_aside", "child_environment", "HUGE_PAGES_ENV"]

NETWORKIT_EDGES = 4_000_000
"""A graph with this many (distinct) edges or more is solved by networkit's ``ParallelLeiden``; ``None``: never.

Measured on ``large`` (one run each, alone): igraph against networkit, child process included, on the association
network's 18.0M edges 62.0 s against 43.0 s, on the shared view's 17.9M (the graph stage's step) 103.6 s against
56.9 s, on R(A,B)'s 16.0M 50.9 s against 34.5 s; but on graphs of 1.1M edges (large's co-action view) 1.4 s against
3.6 s and 1.7M (medium's R(A,B)) 2.6 s against 4.2 s, where starting the child and importing networkit (about
2 s) outweighs what it saves."""

NETWORKIT_ITERATIONS = 2
"""``ParallelLeiden`` iterations per igraph Leiden iteration asked for: 2 iterations of igraph's Leiden reached
modularity 0.3307 on the large shared view, 2 of ``ParallelLeiden`` 0.3230, 4 of them 0.3333."""

_UNTIL_STABLE = 16
"""``ParallelLeiden`` iterations when igraph's are asked to run until the partition is stable (negative)."""


_ASIDE = contextvars.ContextVar("fraudkit_leiden_aside", default=None)
"""What this thread's Leiden children are waited for inside (:func:`waiting_aside`); None: nothing."""


@contextmanager
def waiting_aside(aside):
    """Inside the block, this thread waits for each networkit child inside ``aside()`` (a context manager), e.g.
    one that lets another thread work meanwhile (:class:`fraudkit.pipeline.turns.Turns`).

    Examples
    --------
    >>> from contextlib import contextmanager
    >>> said = []
    >>> @contextmanager
    ... def aside():
    ...     said.append("waits"); yield; said.append("goes on")
    >>> with waiting_aside(aside):
    ...     m = networkit_membership(4, [np.array([0, 2]), np.array([1, 3]), np.ones(2)], resolution=1.0, seed=0,
    ...                              n_iterations=2, fallback=None)
    >>> said
    ['waits', 'goes on']
    """
    token = _ASIDE.set(aside)
    try:
        yield
    finally:
        _ASIDE.reset(token)


def use_networkit(n_edges: int, s, d, *, threshold=NETWORKIT_EDGES) -> bool:
    """Whether a graph of ``n_edges`` distinct edges ``(s, d)`` goes to networkit: at least ``threshold`` edges
    and no self-loop.

    Examples
    --------
    >>> import numpy as np
    >>> use_networkit(3, np.array([0, 1, 2]), np.array([1, 2, 0]), threshold=3)
    True
    >>> use_networkit(3, np.array([0, 1, 2]), np.array([1, 2, 2]), threshold=3)  # a self-loop
    False
    >>> use_networkit(3, [], [], threshold=None)
    False
    """
    if threshold is None or n_edges < int(threshold):
        return False
    return not bool((np.asarray(s) == np.asarray(d)).any())


def networkit_membership(n, graph, *, resolution, seed, n_iterations, fallback):
    """Community of each of ``n`` vertices of the graph of distinct edges ``(s, d)`` weighted ``w``.

    The graph is handed over: ``graph`` is emptied once its arrays are written for the child, and filled again
    with them, read back, when the child is done. A caller that keeps no other reference to the arrays holds
    none of the graph while it is solved (``benchmarks/held_memory.md``: what the parent held while the ``large``
    world's Leiden children ran, before and after).

    Parameters
    ----------
    n : int
    graph : list of ndarray
        ``[s, d, w]``: edge ends ``0..n-1`` (integers; each undirected pair once, no self-loop:
        :func:`use_networkit`) and weights. Given back as ``int64, int64, float64`` of the same values.
    resolution : float
        The modularity resolution ``gamma``.
    seed : int
    n_iterations : int
        igraph's Leiden iterations this replaces (negative: until stable); ``ParallelLeiden`` runs
        :data:`NETWORKIT_ITERATIONS` times as many.
    fallback : callable
        ``fallback()`` gives the membership by igraph (``graph`` holds the arrays again when it is called);
        called, with a warning, if the child process fails.

    Returns
    -------
    ndarray of shape (n,), dtype int64

    Examples
    --------
    >>> import numpy as np
    >>> graph = [np.array([0, 1, 3, 4]), np.array([1, 2, 4, 5]), np.ones(4)]
    >>> networkit_membership(6, graph, resolution=1.0, seed=0, n_iterations=2, fallback=None).tolist()
    [0, 0, 0, 1, 1, 1]
    >>> [a.tolist() for a in graph]
    [[0, 1, 3, 4], [1, 2, 4, 5], [1.0, 1.0, 1.0, 1.0]]
    """
    iterations = NETWORKIT_ITERATIONS * int(n_iterations) if n_iterations > 0 else _UNTIL_STABLE
    n_edges = len(graph[2])
    with tempfile.TemporaryDirectory(prefix="fraudkit-leiden-") as tmp:
        for name, dtype in (("s", np.uint64), ("d", np.uint64), ("w", np.float64)):
            values = graph.pop(0)
            np.save(os.path.join(tmp, f"{name}.npy"), np.asarray(values, dtype=dtype))
            del values  # the caller's last reference, if it kept none: freed before the next is written
        np.save(os.path.join(tmp, "args.npy"), np.array([n, iterations, int(seed)], dtype=np.int64))
        np.save(os.path.join(tmp, "gamma.npy"), np.array([float(resolution)]))
        aside = _ASIDE.get()
        env = child_environment()  # its heap in huge pages; made before the turn is given away
        with nullcontext() if aside is None else aside():
            # -I: the child sees neither PYTHONPATH nor the working directory, only the interpreter's own packages
            done = subprocess.run([sys.executable, "-I", os.path.abspath(__file__), tmp, str(os.getpid())],
                                  capture_output=True, text=True, check=False, env=env)
        out = os.path.join(tmp, "membership.npy")
        membership = np.load(out) if done.returncode == 0 and os.path.exists(out) else None
        graph[:] = [np.load(os.path.join(tmp, f"{x}.npy")).astype(dtype, copy=False)
                    for x, dtype in (("s", np.int64), ("d", np.int64), ("w", np.float64))]
    if membership is not None and len(membership) == n:
        return membership.astype(np.int64)
    if done.returncode in (-signal.SIGINT, -signal.SIGTERM):
        # stopped with the run (Ctrl-C reaches the whole process group), not failed: no igraph run after it, the
        # run is interrupted (a worker thread solving beside the stage would otherwise go on with igraph)
        raise KeyboardInterrupt(f"networkit's ParallelLeiden was stopped (signal {-done.returncode}) on a graph of "
                                f"{n:,} nodes")
    reason = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
    warnings.warn(f"networkit's ParallelLeiden failed on a graph of {n:,} nodes and {n_edges:,} edges ({reason}); "
                  "solved by igraph's Leiden instead, whose partition differs", RuntimeWarning, stacklevel=2)
    return fallback()


HUGE_PAGES_ENV = "FRAUDKIT_HUGE_PAGES"
"""Environment variable: ``0`` (or ``false``, ``no``, ``off``) starts the Leiden children without huge pages."""
_HUGETLB = "glibc.malloc.hugetlb=1"
_THP = "/sys/kernel/mm/transparent_hugepage/enabled"


def child_environment(env=None, *, thp_path: str = _THP) -> dict:
    """The environment of a Leiden child: ``env`` (default: this process's), as a new dict, with glibc's
    ``glibc.malloc.hugetlb=1`` added to ``GLIBC_TUNABLES``, so the child's heap (networkit's graph) is in transparent
    huge pages.

    Where the kernel gives huge pages only to memory that asks for them (``madvise`` in
    ``/sys/kernel/mm/transparent_hugepage/enabled``, the usual default), NumPy asks for its large arrays but
    networkit's graph does not; read at random over gigabytes in 4 KB pages, it misses the TLB at nearly every read.
    glibc 2.35 and later asks for huge pages for every ``malloc`` arena when a process starts with the tunable.
    Measured on ``large`` (``benchmarks/graph_stage.py``, one run each, one after the other, the whole process with
    the tunable): the graph stage 317.1 s (user 317 s, system 91 s) without, 284.6 s (user 286 s, system 85 s)
    with, most of it the Leiden children (the shared view's 40.6 -> 29.1 s, R(A,B)'s 34.1 -> 27.6 s), peak RSS
    5.96 and 5.92 GB; a child alone on a 14.3M-edge graph 28.7-30.7 s without, 26.9-27.3 s with, its own peak
    1.23 GB either way, the same partition. Only the children get it: the whole ``fraudkit score`` with it
    ("large after 688b659" in ``benchmarks/end_to_end.md``) was not faster. The partition does not change (31 of 31 files of the run
    directory equal, ``benchmarks/compare_runs.py``).

    Unchanged: with ``FRAUDKIT_HUGE_PAGES=0``, a ``GLIBC_TUNABLES`` that sets ``glibc.malloc.hugetlb`` already, a
    kernel that gives no huge pages or gives them to every allocation (``always``), a C library other than glibc
    2.35 or later.

    Examples
    --------
    >>> import tempfile
    >>> thp = os.path.join(tempfile.mkdtemp(), "enabled")
    >>> _ = open(thp, "w").write("always [madvise] never")
    >>> child_environment({}, thp_path=thp).get("GLIBC_TUNABLES") == (_HUGETLB if _glibc_with_hugetlb() else None)
    True
    >>> child_environment({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"}, thp_path=thp)["GLIBC_TUNABLES"]
    'glibc.malloc.hugetlb=0'
    >>> child_environment({"FRAUDKIT_HUGE_PAGES": "0"}, thp_path=thp)
    {'FRAUDKIT_HUGE_PAGES': '0'}
    """
    env = dict(os.environ if env is None else env)
    tunables = env.get("GLIBC_TUNABLES", "")
    if (env.get(HUGE_PAGES_ENV, "1").strip().lower() in ("0", "false", "no", "off")
            or "glibc.malloc.hugetlb" in tunables or not _glibc_with_hugetlb() or not _advised_only(thp_path)):
        return env
    env["GLIBC_TUNABLES"] = f"{tunables}:{_HUGETLB}" if tunables else _HUGETLB
    return env


@functools.lru_cache(maxsize=1)
def _glibc_with_hugetlb() -> bool:
    """Linux with glibc 2.35 or later (the first with ``glibc.malloc.hugetlb``); asked once (``platform.libc_ver``
    reads the interpreter's executable)."""
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


def modularity(a, b, w, membership, resolution) -> float:
    """Modularity of ``membership`` (per node) for the edges ``(a, b)`` (node positions) weighted ``w``.

    Examples
    --------
    >>> import numpy as np
    >>> round(modularity(np.array([0, 2]), np.array([1, 3]), np.ones(2), np.array([0, 0, 1, 1]), 1.0), 3)
    0.5
    """
    if not len(w):
        return float("nan")
    ca, cb = membership[a], membership[b]
    k = int(membership.max()) + 1
    m = w.sum()
    w_in = np.bincount(ca[ca == cb], weights=w[ca == cb], minlength=k)
    strength = np.bincount(ca, weights=w, minlength=k) + np.bincount(cb, weights=w, minlength=k)
    return float((w_in / m - resolution * (strength / (2 * m)) ** 2).sum())


def _solve(folder: str, parent: int) -> None:
    """The child process: read the graph from ``folder``, write ``membership.npy`` there (atomically).

    If the process ``parent`` that made ``folder`` is gone (killed: its temporary folder was never cleaned up),
    the child removes ``folder`` instead, so a killed run leaves no graph files behind.
    """
    nk = _networkit()
    if os.getppid() != parent:
        shutil.rmtree(folder, ignore_errors=True)
        return

    s, d, w = (np.load(os.path.join(folder, f"{x}.npy")) for x in "sdw")
    n, iterations, seed = (int(v) for v in np.load(os.path.join(folder, "args.npy")))
    gamma = float(np.load(os.path.join(folder, "gamma.npy"))[0])
    nk.engineering.setNumberOfThreads(1)  # one thread: the same partition every run
    nk.engineering.setSeed(seed, False)
    g = nk.graph.Graph(n, weighted=True)
    g.addEdges((w, (s, d)))
    del s, d, w
    leiden = nk.community.ParallelLeiden(g, iterations=iterations, randomize=True, gamma=gamma)
    leiden.run()
    membership = np.asarray(leiden.getPartition().getVector(), dtype=np.int64)
    part = os.path.join(folder, "membership.part.npy")
    np.save(part, membership)
    os.replace(part, os.path.join(folder, "membership.npy"))
    if os.getppid() != parent:  # the parent died while Leiden ran
        shutil.rmtree(folder, ignore_errors=True)


def _networkit():
    """networkit's ``graph``, ``community`` and ``engineering`` modules (under the package's name), without what
    its package imports beside them.

    ``import networkit`` imports every module of the package and, through them, matplotlib, networkx, pandas,
    scikit-learn and pyarrow: 269 MB resident before a graph is read, against 77 MB for the modules Leiden needs
    (measured here, networkit 11.2.2), held by each child while it solves; two children solve at once beside the
    graph stage (:class:`fraudkit.pipeline.stages.graph._ViewCommunities`). So the package is stood in for by an
    empty module of its name and path, its three modules are imported from it, and the package's own set-up
    (C++ log level ``ERROR``) is done here. Should that fail (another networkit), the whole package is imported.
    """
    import importlib.util
    import types

    spec = importlib.util.find_spec("networkit")
    if spec is not None and spec.submodule_search_locations:
        stand_in = types.ModuleType("networkit")
        stand_in.__path__ = list(spec.submodule_search_locations)
        stand_in.__spec__, stand_in.__file__ = spec, spec.origin
        sys.modules["networkit"] = stand_in
        try:
            import networkit.community
            import networkit.engineering
            import networkit.graph

            networkit.engineering.setLogLevel("ERROR")
            return stand_in
        except (ImportError, AttributeError):
            for name in [m for m in sys.modules if m == "networkit" or m.startswith("networkit.")]:
                del sys.modules[name]
    import networkit

    return networkit


if __name__ == "__main__":
    _solve(sys.argv[1], int(sys.argv[2]))
