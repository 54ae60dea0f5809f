"""The graph stage alone on a cached world: per-step seconds and peak RSS, machine load, a memory guard.

Usage (from the repository root, one heavy run at a time)::

    flock /tmp/fk-heavy.lock .venv/bin/python benchmarks/graph_stage.py --data /tmp/fk-bench/medium-2025
    flock /tmp/fk-heavy.lock .venv/bin/python benchmarks/graph_stage.py --data /tmp/fk-bench/large-2024 \\
        --max-rss-gb 14 --out /tmp/graph_large.parquet

Opens the world as a Dataset (not validated again: it was validated when it was simulated) and runs
:func:`fraudkit.pipeline.stages.graph.run` with ``RunContext(seed=0)``, printing each step as it ends (the
stage's ``timings``: wall seconds, rows, nodes, edges, peak RSS) and the table at the end, with the load
average before and after. ``--max-rss-gb`` stops the process (exit 3) when its resident memory passes the
limit, checked every half second. ``--profile FILE`` writes a cProfile of the run. ``--out FILE`` writes the
stage's scores (to compare two versions' results).
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import sys
import threading
import time

import pandas as pd


def _rss_gb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e9


def _guard(limit_gb: float) -> None:
    """Exit the process (code 3) as soon as its resident memory passes ``limit_gb``."""

    def watch():
        while True:
            rss = _rss_gb()
            if rss > limit_gb:
                print(f"memory guard: RSS {rss:.1f} GB > {limit_gb} GB, stopping", flush=True)
                os._exit(3)
            time.sleep(0.5)

    threading.Thread(target=watch, daemon=True).start()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="a simulated world's directory (parquet tables)")
    ap.add_argument("--max-rss-gb", type=float, default=14.0)
    ap.add_argument("--profile", help="write a cProfile of the stage to this file")
    ap.add_argument("--out", help="write the stage's scores to this parquet file")
    args = ap.parse_args(argv)

    from fraudkit.data.dataset import load_dataset
    from fraudkit.pipeline.context import RunContext
    from fraudkit.pipeline.stages import graph

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stdout)
    _guard(args.max_rss_gb)
    load0 = os.getloadavg()
    ds = load_dataset(args.data, validate=False)
    print(f"data {args.data}: " + ", ".join(f"{t}={int(ds.table(t).count().execute()):,}" for t in
                                             ("accounts", "bindings", "logins", "interactions", "orders",
                                              "coupon_claims") if ds.has(t)), flush=True)
    t0 = time.perf_counter()
    if args.profile:
        import cProfile

        prof = cProfile.Profile()
        out = prof.runcall(graph.run, ds, context=RunContext(seed=0))
        prof.dump_stats(args.profile)
    else:
        out = graph.run(ds, context=RunContext(seed=0))
    wall = time.perf_counter() - t0
    with pd.option_context("display.width", 200, "display.max_rows", 100):
        print(out.artifacts["timings"].to_string(index=False))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"graph stage {wall:.1f} s, peak RSS {peak:.0f} MB; {len(out.scores):,} score rows, "
          f"{int(out.scores['flagged'].sum()):,} flagged")
    print(f"load average before {' '.join(f'{x:.1f}' for x in load0)}, after "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} cores")
    if args.out:
        out.scores.to_parquet(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
