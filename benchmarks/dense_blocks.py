"""Dense blocks (the group stage's FRAUDAR detector) on a world's interactions, against an earlier revision.

Builds the group stage's edge table (distinct account x target of the co-action actions, in the stage's row
order), fits :class:`fraudkit.identification.graph.dense.DenseSubgraphDetector` with the group stage's
parameters, and prints the edges, seconds and peak memory with the machine's load. ``--reference REV`` also
fits the detector of ``dense.py`` as it was at a git revision (read with ``git show``) on the same edges and
checks that members, scores and block ids are identical.

    .venv/bin/python benchmarks/dense_blocks.py --data /tmp/fk-bench/large-2024 --reference 7faf991
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from fraudkit.identification.graph import dense
from fraudkit.pipeline.stages.group import DEFAULTS

ROOT = Path(__file__).resolve().parent.parent


def edges_of(world: Path, actions) -> pd.DataFrame:
    acts = ", ".join(f"'{a}'" for a in actions)
    with duckdb.connect() as con:
        e = con.execute(f"SELECT account_id, target_id FROM read_parquet('{world / 'interactions.parquet'}') "
                        f"WHERE action IN ({acts}) ORDER BY account_id, target_id, ts").df()
    return e.drop_duplicates()


def module_at(rev: str):
    """``fraudkit/identification/graph/dense.py`` as it was at ``rev``, imported under another name."""
    text = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:fraudkit/identification/graph/dense.py"],
                          check=True, capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / f"dense_{rev}.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def fit(mod, edges):
    p = DEFAULTS
    det = mod.DenseSubgraphDetector(**p["dense"], min_excess=p["dense_min_excess"], min_lift=p["dense_min_lift"],
                                    threshold=p["dense_threshold"])
    t = time.perf_counter()
    det.fit(edges)
    return det, time.perf_counter() - t


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="a simulated world (its interactions.parquet)")
    ap.add_argument("--reference", help="a git revision whose dense.py is fitted too, and compared")
    a = ap.parse_args(argv)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; load before {os.getloadavg()}")
    t = time.perf_counter()
    edges = edges_of(a.data, DEFAULTS["coaction_actions"])
    print(f"{a.data.name}: {len(edges):,} account x target edges ({time.perf_counter() - t:.1f} s to read)")
    dense._greedy_peel(dense.sp.csr_matrix(np.ones((3, 2))))  # compiled (or read from numba's cache) before timing
    det, s = fit(dense, edges)
    print(f"this checkout: {s:.1f} s, {len(det.blocks_)} blocks, sizes "
          f"{det.members_.groupby('block_id').size().tolist()}; "
          f"peak {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2:.2f} GB")
    if a.reference:
        ref, rs = fit(module_at(a.reference), edges)
        same = (ref.members_.equals(det.members_) and np.array_equal(ref.decision_scores_, det.decision_scores_)
                and np.array_equal(ref.block_ids_, det.block_ids_))
        print(f"{a.reference}: {rs:.1f} s ({rs / s:.1f}x this checkout's); members, scores and block ids "
              + ("identical" if same else "DIFFER"))
    print(f"load after {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
