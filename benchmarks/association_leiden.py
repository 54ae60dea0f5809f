"""igraph's Leiden beside networkit's on the association network's graph, as the group stage builds it.

    .venv/bin/python benchmarks/association_leiden.py /tmp/fk-bench/large-2024

Runs the group stage's association network on a world (its private steps: a benchmark, not kit code) and, where
it detects communities, runs ``detect_communities`` twice on the same edges: with networkit switched off
(``leiden.NETWORKIT_EDGES = None``: igraph) and on from a million edges (networkit's ``ParallelLeiden`` in a child
process, :mod:`fraudkit.identification.graph.leiden`). Prints the graph's size, each solver's seconds, modularity
and communities, and the load average before and after. Run it alone (``flock /tmp/fk-heavy.lock``).
"""

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from fraudkit.data.dataset import load_dataset  # noqa: E402
from fraudkit.identification.graph import association, leiden  # noqa: E402
from fraudkit.pipeline import frames  # noqa: E402
from fraudkit.pipeline.context import RunContext  # noqa: E402
from fraudkit.pipeline.resolution import resolve_entities  # noqa: E402
from fraudkit.pipeline.stages import group  # noqa: E402


def main(world: str) -> None:
    print(f"world {world}; load {os.getloadavg()}; {os.cpu_count()} cores", flush=True)
    detect = association.detect_communities

    def both(edges, **kw):
        part = None
        for threshold in (None, 1_000_000):
            leiden.NETWORKIT_EDGES = threshold
            t = time.perf_counter()
            part = detect(edges, **kw)
            print(f"association graph: {len(edges):,} edges, {len(part.nodes):,} nodes; solver "
                  f"{part.params['solver']}: {time.perf_counter() - t:.1f} s, modularity {part.modularity:.4f}, "
                  f"{part.n_communities:,} communities", flush=True)
        return part

    association.detect_communities = both
    ds = resolve_entities(load_dataset(world)).transform_dataset
    ctx = RunContext(seed=0)
    p = ctx.parameters("group", group.DEFAULTS)
    accounts = ds.to_pandas("accounts", columns=["account_id", "registered_at", "phone"])
    devices = ds.to_pandas("devices") if ds.has("devices") else None
    frames.release_memory(ds)
    group._association(ds, accounts, devices, ctx, p, 0, [], {}, {}, {}, [])
    print(f"load after {os.getloadavg()}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
