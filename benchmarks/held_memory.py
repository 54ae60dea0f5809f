"""What a `fraudkit score` run holds in memory when its group stage, its graph stage and each view's communities start.

    .venv/bin/python benchmarks/held_memory.py /tmp/fk-bench/large-2024 --train /tmp/fk-bench/demo-small-1000
    .venv/bin/python benchmarks/held_memory.py WORLD --train TRAIN --stop-at-edges 10000000

Runs the command as a user does, with hooks at those points (a benchmark, not kit code). At each one it hands
finished memory back (the kit's ``release_memory``: DuckDB's and glibc's ``malloc_trim``), then prints the
process's resident memory, glibc's heap (bytes in use, free, and in large ``mmap`` blocks, from ``mallinfo2``),
DuckDB's memory by tag, and the largest pandas frames and series with what refers to them. The question it
answers: how much of the run's peak is the parent's own while a view's communities are solved in a child process
(:mod:`fraudkit.identification.graph.leiden`), and so whether the children could run beside the stage's other
steps within the memory target. ``--stop-at-edges N`` ends the run at the first view of N edges or more (the
report is made before its communities are solved). The run directory goes to a temporary folder.
"""

import argparse
import ctypes
import gc
import os
import sys
import tempfile

import numpy as np
import pandas as pd

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


class _MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                "fsmblks", "uordblks", "fordblks", "keepcost")]


def _rss_gb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 30


def report(tag, ds, top=12) -> None:
    from fraudkit.pipeline.frames import release_memory

    release_memory(ds)
    gc.collect()
    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = _MallInfo2
    mi = libc.mallinfo2()
    print(f"=== {tag}: resident {_rss_gb():.2f} GB; glibc heap in use {mi.uordblks / 2 ** 30:.2f} GB, free "
          f"{mi.fordblks / 2 ** 30:.2f} GB, mmap blocks {mi.hblkhd / 2 ** 30:.2f} GB; load {os.getloadavg()}")
    con = ds.transform_dataset.engine.con
    print("    DuckDB MB by tag:", con.execute("SELECT tag, round(memory_usage_bytes / 2 ** 20) FROM duckdb_memory() "
                                              "WHERE memory_usage_bytes > 2 ** 20").fetchall())
    items = []
    for o in gc.get_objects():
        try:
            if isinstance(o, pd.DataFrame):
                items.append((int(o.memory_usage(deep=False, index=True).sum()), o))
            elif isinstance(o, pd.Series):
                items.append((int(o.memory_usage(deep=False)), o))
        except Exception:  # noqa: BLE001 - a half-built object: not counted
            pass
    items.sort(key=lambda x: -x[0])
    print(f"    pandas objects (a frame's series counted again): {sum(n for n, _ in items) / 2 ** 30:.2f} GB")
    for n, o in items[:top]:
        what = list(o.columns[:5]) if isinstance(o, pd.DataFrame) else o.name
        held_by = sorted({type(r).__name__ for r in gc.get_referrers(o)} - {"list", "frame"})
        print(f"    {n / 2 ** 20:8.0f} MB {type(o).__name__} {o.shape} {what} held by {held_by}")
    big = [a for a in gc.get_objects() if isinstance(a, np.ndarray) and a.base is None and a.nbytes > 20 * 2 ** 20]
    print(f"    numpy arrays over 20 MB owning their memory: {len(big)}, "
          f"{sum(a.nbytes for a in big) / 2 ** 30:.2f} GB", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("world")
    ap.add_argument("--train", default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--stop-at-edges", type=int, default=None)
    args = ap.parse_args()

    import fraudkit.identification.graph.spark_components as components
    import fraudkit.pipeline.score as scoring
    from fraudkit.cli import main as cli
    from fraudkit.pipeline.stages import graph, group

    current = {}

    def hooked(module, name):
        def run(ds, *, context=None):
            current["ds"] = ds
            report(f"{name} stage starts", ds)
            return module.run(ds, context=context)
        return type(name, (), {"run": staticmethod(run)})

    solve = components.communities_by_component

    def communities(edges, *a, **k):
        report(f"communities of a view of {len(edges):,} edges start", current["ds"])
        if args.stop_at_edges is not None and len(edges) >= args.stop_at_edges:
            print("stopped (--stop-at-edges)", flush=True)
            os._exit(0)
        return solve(edges, *a, **k)

    graph.communities_by_component = communities
    scoring.STAGE_MODULES["group"] = hooked(group, "group")
    scoring.STAGE_MODULES["graph"] = hooked(graph, "graph")
    print(f"held memory: {args.world}; {os.cpu_count()} cores; load before {os.getloadavg()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="fk-held-") as tmp:
        argv = ["score", args.world, "--out", os.path.join(tmp, "run"), "--seed", str(args.seed)]
        if args.train:
            argv += ["--train", args.train]
        try:
            cli.main(argv, standalone_mode=False)
        finally:
            print(f"load after {os.getloadavg()}", flush=True)


if __name__ == "__main__":
    main()
