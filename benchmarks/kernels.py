"""The stages' inner loops against an earlier revision, on synthetic data the size of ``large``'s.

Times, for the current code and for the same module as it was at ``--reference`` (read with ``git show``), and
checks that both give the same bits:

- co-action's weighted Jaccard of candidate pairs (``clusters._weighted_jaccard``): 570k accounts, 430k items,
  6.4M entries, 5M pairs sorted by their first account (large's interactions: 572k eligible accounts, 6.4M
  entries, 29M pairs);
- label propagation by block (``propagation.propagate_by_block``): one giant block of 600k nodes and 20k small
  ones, 40M stored entries (large's combined adjacency: 1.02M nodes, 34.8M edges);
- the device clusterer's (signature, /24) block numbers: 2M rows (``_first_appearance_codes`` against the
  MultiIndex factorize it replaced; not a module function at the reference);
- the rules' feature join (``frames._join_features``) over the chunks of the interactions' rule frame: 12 chunks of
  2M rows joined to 1.3M devices (large: 23.7M interactions, 2M a chunk; the default rules read ``dev_is_emulator``),
  the reference indexing the device table's keys for every chunk, the current code once per frame.

Prints a Markdown table with the machine's load; nothing is written.

    .venv/bin/python benchmarks/kernels.py --reference eea43b8
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from fraudkit.identification.graph import propagation
from fraudkit.identification.group import clusters
from fraudkit.pipeline import frames

ROOT = Path(__file__).resolve().parent.parent


def module_at(rev: str, path: str):
    """``path`` (a module of the repository) as it was at ``rev``, imported under another name."""
    text = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:{path}"], check=True, capture_output=True,
                          text=True).stdout
    file = Path(tempfile.mkdtemp()) / f"{Path(path).stem}_{rev}.py"
    file.write_text(text)
    spec = importlib.util.spec_from_file_location(file.stem, file)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[file.stem] = mod
    spec.loader.exec_module(mod)
    return mod


def best_of(fn, repeat):
    """The result of ``fn()`` and its fastest time over ``repeat`` calls."""
    best, out = np.inf, None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return out, best


def jaccard_case(rng):
    n_acc, n_item, nnz, n_pairs = 570_000, 430_000, 6_400_000, 5_000_000
    A = sp.csr_matrix((np.ones(nnz), (rng.integers(0, n_acc, nnz), rng.integers(0, n_item, nnz))),
                      shape=(n_acc, n_item))
    A.data[:] = 1.0
    A.sum_duplicates()
    A.data[:] = 1.0
    w = 1.0 / np.log(np.diff(A.tocsc().indptr) + 1.5)
    Aw = sp.csr_matrix(A.multiply(w[None, :]))
    Aw.eliminate_zeros()
    Ab = Aw.copy()
    Ab.data[:] = 1.0
    pairs = rng.integers(0, n_acc, (n_pairs, 2))
    pairs = pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]
    return f"{n_acc:,} accounts, {Ab.nnz:,} entries, {n_pairs:,} pairs", (Ab, Aw, pairs)


def propagation_case(rng):
    sizes = np.r_[600_000, rng.integers(2, 50, 20_000)]
    n, starts = int(sizes.sum()), np.r_[0, np.cumsum(sizes)[:-1]]
    m = 20_000_000
    b = np.where(rng.random(m) < 0.7, 0, rng.integers(0, len(sizes), m))
    r = starts[b] + (rng.random(m) * sizes[b]).astype(np.int64)
    c = starts[b] + (rng.random(m) * sizes[b]).astype(np.int64)
    W = sp.csr_matrix((rng.random(m), (r, c)), shape=(n, n))
    W = (W + W.T).tocsr()
    W.sort_indices()
    y = np.zeros(n)
    y[rng.choice(n, 5_000, replace=False)] = 1.0
    S, _ = propagation._normalised(W, "sym", symmetric=True)
    block = np.repeat(np.arange(len(sizes)), sizes)
    return f"{n:,} nodes in {len(sizes):,} blocks, {S.nnz:,} entries", (S, y, block)


def blocks_case(rng):
    n = 2_000_000
    spec = rng.integers(0, 500, n)
    key = np.array([f"10.{a}.{b}" for a, b in zip(rng.integers(0, 50, n), rng.integers(0, 200, n))], dtype=object)
    return f"{n:,} rows", (spec, key)


def joins_case(rng):
    # what the default rule set's interaction rules join (dev_is_emulator): large has 1.3M devices, keyed as text in
    # the device feature table, and 23.7M interactions whose device ids are integers with 2M nulls (read as floats)
    n_dev, n_chunks, size = 1_298_129, 12, 2_000_000
    feats = {"device": pd.DataFrame({"device_id": np.arange(n_dev).astype(str),
                                     "is_emulator": (rng.random(n_dev) < 0.02).astype(float)}),
             "account": pd.DataFrame({"account_id": []}), "ip": pd.DataFrame({"ip": []})}  # not joined
    chunks = [pd.DataFrame({"device_id": np.where(rng.random(size) < 0.085, np.nan,
                                                  rng.integers(0, n_dev + 1000, size).astype(float))})
              for _ in range(n_chunks)]
    return f"{n_chunks} chunks of {size:,} rows; {n_dev:,} devices", (feats, {"dev_is_emulator"}, chunks)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reference", default="eea43b8", help="revision to compare with (default: %(default)s)")
    ap.add_argument("--repeat", type=int, default=2, help="calls per timing, the fastest kept")
    args = ap.parse_args(argv)
    old_cl = module_at(args.reference, "fraudkit/identification/group/clusters.py")
    old_lp = module_at(args.reference, "fraudkit/identification/graph/propagation.py")
    old_fr = module_at(args.reference, "fraudkit/pipeline/frames.py")
    rng = np.random.default_rng(0)
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"Machine: {os.cpu_count()} cores, load before {load}; reference {args.reference}; "
          f"fastest of {args.repeat} calls.\n")
    print("| kernel | data | reference s | now s | same bits |")
    print("|---|---|---:|---:|---|")

    what, (Ab, Aw, pairs) = jaccard_case(rng)
    clusters._weighted_jaccard(Ab, Aw, pairs[:10])  # compile (numba caches it) outside the timing
    a, t_old = best_of(lambda: old_cl._weighted_jaccard(Ab, Aw, pairs), args.repeat)
    b, t_new = best_of(lambda: clusters._weighted_jaccard(Ab, Aw, pairs), args.repeat)
    print(f"| co-action weighted Jaccard | {what} | {t_old:.2f} | {t_new:.2f} | {np.array_equal(a, b)} |")
    del Ab, Aw, pairs, a, b

    what, (S, y, block) = propagation_case(rng)
    a, t_old = best_of(lambda: old_lp.propagate_by_block(S, y, block, normalised=True), args.repeat)
    b, t_new = best_of(lambda: propagation.propagate_by_block(S, y, block, normalised=True), args.repeat)
    same = np.array_equal(a[0], b[0]) and a[1:] == b[1:]
    print(f"| label propagation by block ({a[1]} iterations) | {what} | {t_old:.2f} | {t_new:.2f} | {same} |")
    del S, y, block, a, b

    what, (spec, key) = blocks_case(rng)
    a, t_old = best_of(lambda: pd.MultiIndex.from_arrays([spec, key]).factorize()[0], args.repeat)
    b, t_new = best_of(lambda: clusters._first_appearance_codes(pd.DataFrame({"spec": spec, "key": key})),
                       args.repeat)
    print(f"| device-cluster block numbers | {what} | {t_old:.2f} | {t_new:.2f} | {np.array_equal(a, b)} |")
    del spec, key, a, b

    what, (feats, need, chunks) = joins_case(rng)
    # each chunk joined as the rules read it: a fresh frame each time (the join adds its columns in place)
    a, t_old = best_of(lambda: [old_fr._join_features(c.copy(), feats, need) for c in chunks], args.repeat)
    b, t_new = best_of(lambda: (lambda ix: [frames._join_features(c.copy(), feats, need, indexes=ix)
                                            for c in chunks])({}), args.repeat)
    same = len(a) == len(b) and all(x.equals(y) for x, y in zip(a, b))
    print(f"| rule frame feature joins | {what} | {t_old:.2f} | {t_new:.2f} | {same} |")
    print(f"\nLoad after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
