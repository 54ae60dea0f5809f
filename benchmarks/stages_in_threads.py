"""The group and graph stages side by side in two threads of one process: their wall time and peak memory.

Measured for issue 13 (``large`` end to end within 600 s on 2 cores). The two stages read nothing of each other
(:mod:`fraudkit.pipeline.stages.group`, :mod:`fraudkit.pipeline.stages.graph`) and hold the GIL for a small
share of their time (``benchmarks/gil_share.md``), so two threads can keep both cores busy.

``--mode shared`` (the default) runs the two threads on one dataset, as ``fraudkit score`` does on large data
(:func:`fraudkit.pipeline.score._stages_side_by_side`): one DuckDB connection, one statement at a time
(:data:`fraudkit.data.connection.QUERY_LOCK`). ``--mode threads`` gives each thread its own dataset (loaded and
resolved twice), ``--mode serial`` runs the two stages one after the other on one dataset, for the comparison.

Usage (repository root, one heavy run at a time)::

    flock /tmp/fk-heavy.lock .venv/bin/python benchmarks/stages_in_threads.py --data /tmp/fk-bench/large-2024

Prints the loading time, each stage's seconds, both stages' wall seconds, the peak RSS of the process with its
Leiden children (summed, sampled every 0.2 s), the process's CPU seconds, each stage's flagged rows and the load
average before and after.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time

import psutil


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="/tmp/fk-bench/large-2024", help="a simulated world's folder")
    ap.add_argument("--mode", choices=("shared", "threads", "serial"), default="shared")
    args = ap.parse_args(argv)

    from fraudkit.data.dataset import load_dataset
    from fraudkit.pipeline.context import RunContext
    from fraudkit.pipeline.resolution import resolve_entities
    from fraudkit.pipeline.stages import graph, group

    me, peak = psutil.Process(), [0.0]

    def sample():
        while True:
            try:
                rss = me.memory_info().rss + sum(c.memory_info().rss for c in me.children(recursive=True))
            except psutil.Error:
                rss = 0
            peak[0] = max(peak[0], rss / 2**30)
            time.sleep(0.2)

    threading.Thread(target=sample, daemon=True).start()
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    first = resolve_entities(load_dataset(args.data))
    second = resolve_entities(load_dataset(args.data)) if args.mode == "threads" else first
    rows = {t: first.count(t) for t in ("accounts", "interactions", "logins", "orders") if first.has(t)}
    print(f"[stages_in_threads] {args.data} ({', '.join(f'{t} {n:,}' for t, n in rows.items())}), {args.mode}: "
          f"loaded and resolved in {time.perf_counter() - t0:.1f} s, peak so far {peak[0]:.2f} GB", flush=True)
    context, outputs, seconds = RunContext(seed=0), {}, {}

    def stage(name, module, ds):
        t = time.perf_counter()
        outputs[name] = module.run(ds, context=context)
        seconds[name] = time.perf_counter() - t
        print(f"[stages_in_threads] {name} stage done: {seconds[name]:.1f} s, peak so far {peak[0]:.2f} GB",
              flush=True)

    t1, cpu1 = time.perf_counter(), os.times()
    jobs = [("group", group, first), ("graph", graph, second)]
    if args.mode in ("threads", "shared"):
        threads = [threading.Thread(target=stage, args=job, name=f"stage-{job[0]}") for job in jobs]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        if len(outputs) < len(jobs):
            return 1  # a stage failed: its thread printed the traceback
    else:
        for job in jobs:
            stage(*job)
    cpu2 = os.times()
    flagged = {k: int(o.scores["flagged"].sum()) for k, o in outputs.items()}
    print(f"[stages_in_threads] {args.mode}: both stages {time.perf_counter() - t1:.1f} s (group "
          f"{seconds['group']:.1f} s, graph {seconds['graph']:.1f} s), peak {peak[0]:.2f} GB with the Leiden "
          f"children, CPU {cpu2.user - cpu1.user:.0f} s user + {cpu2.system - cpu1.system:.0f} s system "
          f"(+ children {cpu2.children_user - cpu1.children_user:.0f} s); flagged rows {flagged}; load before "
          f"{' '.join(f'{x:.2f}' for x in load0)}, after {' '.join(f'{x:.2f}' for x in os.getloadavg())} on "
          f"{os.cpu_count()} cores", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
