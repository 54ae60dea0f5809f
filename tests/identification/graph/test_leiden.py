"""Leiden on large graphs: networkit's ParallelLeiden in a child process, reproducible, the same objective as
igraph's, igraph when it cannot run. The edge threshold is lowered so that small graphs take the large path."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
import weakref

import numpy as np
import pandas as pd
import pytest

from fraudkit.identification.graph import leiden
from fraudkit.identification.graph.communities import compare_partitions, detect_communities
from fraudkit.identification.graph.spark_components import communities_by_component, partition_modularity


def _blocks(n_blocks=12, size=25, p_in=0.5, n_between=40, seed=0) -> tuple[pd.DataFrame, dict]:
    """Dense blocks joined by a few random edges; each undirected pair once; the planted block of each node."""
    rng = np.random.default_rng(seed)
    rows = []
    for b in range(n_blocks):
        lo = b * size
        rows += [(i, j) for i in range(lo, lo + size) for j in range(i + 1, lo + size) if rng.random() < p_in]
    n = n_blocks * size
    while n_between:
        i, j = rng.integers(0, n, 2)
        if i // size != j // size:
            rows.append((int(i), int(j)))
            n_between -= 1
    e = pd.DataFrame(rows, columns=["src", "dst"]).drop_duplicates(ignore_index=True)
    e["weight"] = rng.uniform(0.5, 1.5, len(e))
    return e.sample(frac=1, random_state=seed).reset_index(drop=True), {k: k // size for k in range(n)}


@pytest.fixture
def small_threshold(monkeypatch):
    monkeypatch.setattr(leiden, "NETWORKIT_EDGES", 100)


def test_networkit_recovers_the_planted_blocks_and_repeats_itself(small_threshold):
    e, block = _blocks()
    p = detect_communities(e, seed=7)
    assert p.params["solver"] == "networkit"
    assert np.array_equal(detect_communities(e, seed=7).membership, p.membership)  # the same seed, the same run
    truth = pd.Series(block).reindex(p.nodes).to_numpy()
    assert p.n_communities == 12
    assert pd.crosstab(p.membership, truth).gt(0).sum(axis=1).eq(1).all()  # every community is one block
    assert p.modularity == pytest.approx(partition_modularity(e, p.nodes, p.membership), abs=1e-12)


def test_networkit_holds_igraphs_modularity(small_threshold, monkeypatch):
    e, _ = _blocks(n_blocks=30, size=20, p_in=0.3, n_between=600, seed=3)  # blocks blurred by many ties
    fast = detect_communities(e, seed=0)
    monkeypatch.setattr(leiden, "NETWORKIT_EDGES", None)
    slow = detect_communities(e, seed=0)
    assert (fast.params["solver"], slow.params["solver"]) == ("networkit", "igraph")
    assert fast.modularity >= slow.modularity - 0.01
    assert compare_partitions(fast, slow)["nmi"] > 0.9


def test_parallel_edges_are_summed_and_direction_does_not_matter(small_threshold):
    e, _ = _blocks(seed=1)
    halves = pd.concat([e.assign(weight=e["weight"] / 2),
                        e.rename(columns={"src": "dst", "dst": "src"}).assign(weight=e["weight"] / 2)],
                       ignore_index=True)
    a, b = detect_communities(e, seed=2), detect_communities(halves, seed=2)
    assert compare_partitions(a, b) == {"nmi": 1.0, "ari": 1.0}
    assert b.modularity == pytest.approx(a.modularity, abs=1e-12)


def test_components_use_networkit_per_unit_and_repeat(small_threshold, monkeypatch):
    e, block = _blocks(seed=4)
    calls = []
    real = leiden.networkit_membership
    monkeypatch.setattr("fraudkit.identification.graph.spark_components.networkit_membership",
                        lambda *a, **k: calls.append(len(a[1][0])) or real(*a, **k))
    p = communities_by_component(e, seed=5)
    assert calls == [len(e)]  # one component, one unit, above the threshold
    assert np.array_equal(communities_by_component(e, seed=5).membership, p.membership)
    truth = pd.Series(block).reindex(p.nodes).to_numpy()
    assert pd.crosstab(p.membership, truth).gt(0).sum(axis=1).eq(1).all()


def test_a_self_loop_or_a_small_graph_stays_on_igraph(small_threshold, monkeypatch):
    e, _ = _blocks(seed=5)
    looped = pd.concat([e, pd.DataFrame({"src": [3], "dst": [3], "weight": [1.0]})], ignore_index=True)
    assert detect_communities(looped, seed=0).params["solver"] == "igraph"
    monkeypatch.setattr(leiden, "NETWORKIT_EDGES", len(e) + 1)
    assert detect_communities(e, seed=0).params["solver"] == "igraph"


def test_a_failed_child_falls_back_to_igraph_with_a_warning(small_threshold, monkeypatch):
    e, _ = _blocks(seed=6)
    monkeypatch.setattr(leiden.subprocess, "run", lambda cmd, **k: subprocess.CompletedProcess(
        cmd, -11, "", "Fatal Python error: Segmentation fault"))
    with pytest.warns(RuntimeWarning, match="Segmentation fault.*solved by igraph"):
        p = detect_communities(e, seed=1)
    monkeypatch.setattr(leiden, "NETWORKIT_EDGES", None)
    summed = detect_communities(e, seed=1)  # each pair once already: the same graph igraph is given
    assert np.array_equal(p.membership, summed.membership)


def test_a_child_whose_parent_is_gone_removes_the_graph_files(tmp_path):
    folder = tmp_path / "graph"
    folder.mkdir()
    e, _ = _blocks(seed=8)
    for name, values in (("s", e["src"].to_numpy(np.uint64)), ("d", e["dst"].to_numpy(np.uint64)),
                         ("w", e["weight"].to_numpy(float)), ("args", np.array([300, 4, 0])),
                         ("gamma", np.array([1.0]))):
        np.save(folder / f"{name}.npy", values)
    run = [sys.executable, "-I", leiden.__file__, str(folder)]
    assert subprocess.run(run + [str(os.getpid())], check=False).returncode == 0
    assert (folder / "membership.npy").exists()  # its parent is this process: the result is left for it
    assert subprocess.run(run + ["1"], check=False).returncode == 0  # made by another process, now gone
    assert not folder.exists()


def test_the_graph_is_handed_to_the_child_and_given_back(monkeypatch):
    """While the child solves, the caller's list is empty and its arrays are freed (the parent holds none of the
    graph); afterwards the list holds them again, the same values, and the membership is the one of arrays kept."""
    e, _ = _blocks(seed=9)
    s, d, w = e["src"].to_numpy(np.int64), e["dst"].to_numpy(np.int64), e["weight"].to_numpy(float)
    kw = dict(resolution=1.0, seed=3, n_iterations=2, fallback=None)
    kept = leiden.networkit_membership(300, [s, d, w], **kw)
    graph = [s.copy(), d.copy(), w.copy()]
    alive = [weakref.ref(a) for a in graph]
    seen = {}
    real = subprocess.run

    def run(cmd, **k):
        seen.update(graph=list(graph), alive=[r() is not None for r in alive])
        return real(cmd, **k)

    monkeypatch.setattr(leiden.subprocess, "run", run)
    membership = leiden.networkit_membership(300, graph, **kw)
    assert seen == {"graph": [], "alive": [False, False, False]}
    assert [a.dtype for a in graph] == [np.int64, np.int64, np.float64]
    assert all(np.array_equal(a, b) for a, b in zip(graph, (s, d, w)))
    assert np.array_equal(membership, kept)


@pytest.mark.parametrize("signal_number", [2, 15])  # SIGINT (Ctrl-C reaches the process group), SIGTERM
def test_a_child_stopped_with_the_run_stops_it_without_igraph(small_threshold, monkeypatch, signal_number):
    e, _ = _blocks(seed=6)
    monkeypatch.setattr(leiden.subprocess, "run", lambda cmd, **k: subprocess.CompletedProcess(
        cmd, -signal_number, "", ""))
    solved = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "solved by igraph instead" warning either
        with pytest.raises(KeyboardInterrupt, match=f"stopped \\(signal {signal_number}\\)"):
            leiden.networkit_membership(300, [e["src"].to_numpy(), e["dst"].to_numpy(), e["weight"].to_numpy()],
                                        resolution=1.0, seed=0, n_iterations=2,
                                        fallback=lambda: solved.append(1))
    assert solved == []


def test_the_child_starts_with_the_huge_page_environment(monkeypatch):
    """The Leiden child gets child_environment() (its heap in huge pages where that applies), and imports no
    fraudkit module: it runs leiden.py with -I, where a checkout on PYTHONPATH is not seen."""
    seen, run = [], leiden.subprocess.run

    def recording(*args, **kwargs):
        seen.append(kwargs.get("env"))
        return run(*args, **kwargs)

    monkeypatch.setattr(leiden.subprocess, "run", recording)
    monkeypatch.setattr(leiden, "child_environment", lambda: {**os.environ, "FRAUDKIT_CHILD_MARK": "1"})
    graph = [np.array([0, 1, 3, 4]), np.array([1, 2, 4, 5]), np.ones(4)]
    got = leiden.networkit_membership(6, graph, resolution=1.0, seed=0, n_iterations=2, fallback=None)
    assert got.tolist() == [0, 0, 0, 1, 1, 1]
    assert len(seen) == 1 and seen[0]["FRAUDKIT_CHILD_MARK"] == "1"
    imported = [line for line in open(leiden.__file__, encoding="utf-8") if line.startswith(("import ", "from "))]
    assert not [line for line in imported if "fraudkit" in line], imported


def test_the_child_imports_only_networkits_modules_for_leiden():
    """The child's interpreter loads networkit's graph, community and engineering modules, not the package's other
    imports (matplotlib, networkx, pandas, scikit-learn, pyarrow: 190 MB more per child); its Leiden runs."""
    script = (
        "import runpy, sys\n"
        f"child = runpy.run_path({leiden.__file__!r}, run_name='child')\n"
        "nk = child['_networkit']()\n"
        "print(sorted(m for m in ('matplotlib', 'networkx', 'pandas', 'sklearn', 'pyarrow') if m in sys.modules))\n"
        "g = nk.graph.Graph(4, weighted=True)\n"
        "g.addEdge(0, 1, 1.0); g.addEdge(2, 3, 1.0)\n"
        "nk.engineering.setNumberOfThreads(1); nk.engineering.setSeed(0, False)\n"
        "print(nk.community.ParallelLeiden(g, iterations=2, randomize=True, gamma=1.0).run().getPartition()"
        ".numberOfSubsets())\n")
    done = subprocess.run([sys.executable, "-I", "-c", script], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == ["[]", "2"]
