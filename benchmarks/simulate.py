"""Benchmark the simulator: wall time, peak memory, rows per table, output size.

    .venv/bin/python benchmarks/simulate.py                      # demo-small
    .venv/bin/python benchmarks/simulate.py --scenario large --out /tmp/fk-large

Prints the machine load at the start, since the numbers mean little on a busy machine.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fraudkit.simulation import simulate  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default="demo-small")
    ap.add_argument("--out", default=None, help="output folder (default: a temporary folder, removed after)")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--format", default="parquet", choices=["parquet", "csv"])
    args = ap.parse_args(argv)

    proc = psutil.Process()
    peak = [proc.memory_info().rss]
    stop = threading.Event()

    def sample():
        while not stop.wait(0.2):
            peak[0] = max(peak[0], proc.memory_info().rss)

    threading.Thread(target=sample, daemon=True).start()
    print(f"load average {os.getloadavg()}, cpus {os.cpu_count()}, "
          f"available memory {psutil.virtual_memory().available / 2**30:.1f} GiB", flush=True)
    tmp = None
    out = args.out
    if out is None:
        tmp = tempfile.TemporaryDirectory()
        out = str(Path(tmp.name) / "data")
    t0 = time.perf_counter()
    summary = simulate(args.scenario, out, seed=args.seed, fmt=args.format, progress=True)
    wall = time.perf_counter() - t0
    stop.set()
    ru = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    size = sum(p.stat().st_size for p in Path(out).iterdir())
    print(summary.describe())
    print(f"wall time      {wall:8.1f} s")
    print(f"peak RSS       {max(peak[0], ru) / 2**30:8.2f} GiB")
    print(f"output size    {size / 2**20:8.1f} MiB in {out}")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
