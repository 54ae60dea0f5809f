"""The kit's Leiden beside networkit's community detection on a real view: the graph stage's shared-entity view.

    .venv/bin/python benchmarks/communities_view.py /tmp/fk-bench/medium-2025
    .venv/bin/python benchmarks/communities_view.py /tmp/fk-bench/large-2024 --save-edges /tmp/shared.parquet
    .venv/bin/python benchmarks/communities_view.py --edges /tmp/shared.parquet --repeat 2

Builds the view as the graph stage does (its private steps: a benchmark, not kit code), or reads one saved with
``--save-edges``, then times the kit's ``detect_communities(method="leiden")`` (igraph) and networkit's PLM
(Louvain with refinement) and ParallelLeiden (2 and 4 iterations), each networkit run on one thread and on every
core. Every modularity is computed on the same graph by igraph. Each networkit run is a child process (its
results come back through a file): a crash is reported as a row, not the end of the benchmark. With ``--repeat
2`` every networkit candidate runs twice with the same seed and the table says whether the two partitions are
identical (the kit's runs must be reproducible). The planted-graph comparison is ``benchmarks/graph.py
communities``.
"""

import argparse
import multiprocessing as mp
import os
import sys
import tempfile
import time

import numpy as np
import pandas as pd

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from fraudkit.identification.graph.communities import detect_communities  # noqa: E402

CANDIDATES = [("PLM refine", "plm", 0), ("ParallelLeiden 2 iterations", "leiden", 2),
              ("ParallelLeiden 4 iterations", "leiden", 4)]


def _view(world):
    from fraudkit.data.dataset import load_dataset
    from fraudkit.pipeline.context import RunContext
    from fraudkit.pipeline.resolution import resolve_entities
    from fraudkit.pipeline.stages import graph as G

    ds = resolve_entities(load_dataset(world))  # as `fraudkit score` reads it
    p = RunContext().parameters("graph", G.DEFAULTS)
    data = G._load_tables(ds, coaction_actions=tuple(p["coaction_actions"]))
    addresses = G._normalised_addresses(data["orders"]["address"]) if "orders" in data else None
    e, _ = G._shared_view(ds, data, p, [], G._Steps(), addresses)
    return e[e["weight"] > 0].reset_index(drop=True)


def _networkit(s, d, w, n, algo, iterations, threads, seed, out):
    """One networkit run in a child: membership to ``out`` (.npy), seconds printed."""
    import networkit as nk

    nk.engineering.setNumberOfThreads(threads)
    nk.setSeed(seed, False)
    t = time.perf_counter()
    g = nk.Graph(n, weighted=True)
    g.addEdges((w, (s.astype(np.uint64), d.astype(np.uint64))))
    build = time.perf_counter() - t
    t = time.perf_counter()
    if algo == "plm":
        run = nk.community.PLM(g, refine=True, gamma=1.0)
    else:
        run = nk.community.ParallelLeiden(g, iterations=iterations, randomize=True, gamma=1.0)
    run.run()
    np.save(out, np.asarray(run.getPartition().getVector()))
    print(f"{build:.2f} {time.perf_counter() - t:.2f}", file=open(out + ".txt", "w"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("world", nargs="?")
    ap.add_argument("--edges", help="a view saved with --save-edges (src, dst, weight) instead of a world")
    ap.add_argument("--save-edges")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if bool(args.world) == bool(args.edges):
        ap.error("give a world or --edges")
    e = pd.read_parquet(args.edges) if args.edges else _view(args.world)
    if args.save_edges:
        e[["src", "dst", "weight"]].to_parquet(args.save_edges)
    import igraph as ig

    print(f"shared view: {len(e):,} edges; load {os.getloadavg()}; {os.cpu_count()} cores", flush=True)
    t = time.perf_counter()
    part = detect_communities(e, method="leiden", seed=args.seed)
    print(f"| method | threads | graph build s | seconds | modularity | communities | same partition on a repeat |")
    print(f"|---|---:|---:|---:|---:|---:|---|")
    print(f"| kit leiden (igraph, 2 iterations) | 1 | (in seconds) | {time.perf_counter() - t:.1f} | "
          f"{part.modularity:.4f} | {part.n_communities:,} | (seeded: yes) |", flush=True)
    code, uniq = pd.factorize(pd.concat([e["src"], e["dst"]], ignore_index=True))
    m = len(e)
    s, d, w = code[:m], code[m:], e["weight"].to_numpy(float)
    full = ig.Graph(n=len(uniq), edges=np.c_[s, d])
    ctx = mp.get_context("fork")
    with tempfile.TemporaryDirectory() as tmp:
        for label, algo, iterations in CANDIDATES:
            for threads in (1, os.cpu_count()):
                found = []
                for rep in range(args.repeat):
                    out = os.path.join(tmp, f"{algo}{iterations}-{threads}-{rep}")
                    child = ctx.Process(target=_networkit, args=(s, d, w, len(uniq), algo, iterations, threads,
                                                                 args.seed, out + ".npy"))
                    child.start()
                    child.join()
                    if child.exitcode != 0:
                        found.append(None)
                        print(f"| networkit {label} | {threads} | — | crashed (exit code {child.exitcode}) "
                              f"| — | — | run {rep + 1} |", flush=True)
                        continue
                    build, secs = open(out + ".npy.txt").read().split()
                    memb = np.load(out + ".npy")
                    found.append(memb)
                    q = full.modularity(pd.factorize(memb)[0].tolist(), weights=w.tolist())
                    same = ("—" if rep == 0 else
                            ("yes" if found[0] is not None and np.array_equal(found[0], memb) else "no"))
                    print(f"| networkit {label} | {threads} | {build} | {secs} | {q:.4f} | "
                          f"{len(np.unique(memb)):,} | {same} |", flush=True)


if __name__ == "__main__":
    main()
