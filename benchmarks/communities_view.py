"""The kit's Leiden beside networkit PLM on a real view: the graph stage's shared-entity view of a world.

    .venv/bin/python benchmarks/communities_view.py /tmp/fk-bench/medium-2025

Builds the view as the graph stage does (its private steps: a benchmark, not kit code), then times
``detect_communities(method="leiden")`` and networkit PLM (graph build included) and gives both modularities on
the kit's graph (parallel edges kept). The planted-graph comparison is ``benchmarks/graph.py communities``.
"""

import os
import sys
import time

import igraph as ig
import networkit as nk
import numpy as np
import pandas as pd

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from fraudkit.data.dataset import load_dataset  # noqa: E402
from fraudkit.identification.graph.communities import detect_communities  # noqa: E402
from fraudkit.pipeline.context import RunContext  # noqa: E402
from fraudkit.pipeline.stages import graph as G  # noqa: E402

ds = load_dataset(sys.argv[1])
p = RunContext().parameters("graph", G.DEFAULTS)
data = G._load_tables(ds)
e = G._shared_view(ds, data, p, [], G._Steps())
e = e[e["weight"] > 0]
print(f"shared view: {len(e):,} edges; load {os.getloadavg()}", flush=True)
t = time.perf_counter(); part = detect_communities(e, method="leiden", seed=0); tl = time.perf_counter() - t
print(f"kit leiden {tl:.2f} s, modularity {part.modularity:.4f}, {part.n_communities:,} communities", flush=True)
code, uniq = pd.factorize(pd.concat([e["src"], e["dst"]], ignore_index=True))
m = len(e); s, d = code[:m], code[m:]
t = time.perf_counter()
nk.setSeed(0, False)
g = nk.Graph(len(uniq), weighted=True)
g.addEdges((e["weight"].to_numpy(float), (s.astype(np.uint64), d.astype(np.uint64))))
g.removeSelfLoops(); g.removeMultiEdges()
tb = time.perf_counter() - t
pl = nk.community.PLM(g, refine=True).run().getPartition()
tp = time.perf_counter() - t
full = ig.Graph(n=len(uniq), edges=np.c_[s, d])
q = full.modularity(pd.factorize(np.asarray(pl.getVector()))[0].tolist(), weights=e["weight"].to_numpy().tolist())
print(f"networkit PLM {tp:.2f} s (graph build {tb:.2f} s), modularity {q:.4f}, {pl.numberOfSubsets():,} communities")
