"""DuckDB against Spark local (1 and 2 cores): dataset validation, ``fraudkit score`` and the per-component graph module.

Each case runs in its own child process (a Spark ``local[n]`` session is fixed when it starts), and the parent
samples the resident memory of the child and its JVM every 0.2 s. Printed per case: wall seconds of the work
(Spark's session start apart), peak RSS of the process tree, and a digest of the result so that the engines
can be seen to agree. Run heavy:

    flock /tmp/fk-heavy.lock .venv/bin/python benchmarks/engines.py --data /tmp/cmp/after/d0 \\
        --nodes 100000 --json benchmarks/engines.json

The ``score`` task runs ``score_dataset(DATA, engine=...)`` (all three stages, default rules) and prints the
run's own step timings (load and validation, each stage, rules, decisions, write) and a digest of its outputs
(accounts, scores, decisions, rule hits, communities, device clusters: equal on both engines); the parent then
compares every Spark run's feature tables with DuckDB's (``features_vs_duckdb``: cells that differ and the
largest relative difference; float sums add in another order). ``--only score`` runs just it.

The ``propagation`` task runs the graph stage's label propagation per seeded component
(``LabelPropagation(by_component=True)``) on that graph, weighted, from 1 % of its nodes as seeds: on one machine
(with the global iteration's time and largest difference beside it) and on Spark
(``spark_components.propagation_by_component``); the digests of the scores must be equal.

``--data`` is a dataset folder (the demo-small world simulated with seed 0 by default); ``--nodes`` sizes the
generated graph (planted communities of 10-40 nodes in components of 1-6 communities, about 6 edges per
node, a fixed seed). Results are written up in ``benchmarks/engines.md``.

The simulated worlds of other sizes (``medium``, ``large``) are scored end to end, as a user types the command,
by ``benchmarks/end_to_end.py --engine spark --spark-cores N`` (its RSS cap, timeout and per-step progress
lines; results in ``benchmarks/engines_scale.json``); ``benchmarks/compare_runs.py`` compares the run folders.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCORE_OUTPUTS = ("accounts.parquet", "scores.parquet", "decisions.parquet", "rules/hits.parquet",
                 "graph/communities.parquet", "group/device_clusters.parquet")
# each case is printed as it ends, so a run cut short still reports the cases it finished
CASES = [("validate", "duckdb", 0), ("validate", "spark", 2), ("score", "duckdb", 0), ("score", "spark", 2),
         ("graph", "local", 0), ("graph", "spark", 2), ("validate", "spark", 1), ("score", "spark", 1),
         ("graph", "spark", 1), ("propagation", "local", 0), ("propagation", "spark", 2), ("propagation", "spark", 1)]


def planted_graph(n_nodes: int, seed: int = 0):
    """Edges of planted communities (10-40 nodes, p=0.3 inside) grouped into components of 1-6 communities."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    src, dst, start = [], [], 0
    while start < n_nodes:
        sizes = rng.integers(10, 41, rng.integers(1, 7))
        firsts = []
        for s in sizes:
            nodes = np.arange(start, start + s)
            i, j = np.triu_indices(s, 1)
            keep = rng.random(len(i)) < 0.3
            src.append(nodes[i[keep]])
            dst.append(nodes[j[keep]])
            src.append(nodes[:-1])  # a path keeps each community connected
            dst.append(nodes[1:])
            firsts.append(start)
            start += s
        for a, b in zip(firsts[:-1], firsts[1:]):  # one edge between consecutive communities
            src.append(np.array([a]))
            dst.append(np.array([b]))
    e = pd.DataFrame({"src": np.concatenate(src), "dst": np.concatenate(dst)})
    return e.drop_duplicates().sample(frac=1, random_state=seed).reset_index(drop=True)


def child(task: str, engine: str, cores: int, data: str, nodes: int, runs: str) -> dict:
    import pandas as pd

    out = {"task": task, "engine": engine, "cores": cores}
    spark = None
    if engine == "spark":
        from fraudkit.data.engine import spark_session

        t = time.perf_counter()
        spark = spark_session("fraudkit-bench", cores=cores, memory="3g")
        out["session_s"] = round(time.perf_counter() - t, 1)
    if task == "validate":
        from fraudkit.data.dataset import validate_dataset

        t = time.perf_counter()
        report = validate_dataset(data, engine=engine, spark=spark)
        out["seconds"] = round(time.perf_counter() - t, 1)
        out["rows"] = sum(report.counts.values())
        out["issues"] = len(report.issues)
        out["digest"] = hashlib.sha256(repr((report.counts, report.issues)).encode()).hexdigest()[:12]
    elif task == "score":
        from fraudkit.pipeline.score import score_dataset

        run = Path(runs) / f"{engine}{cores}"
        t = time.perf_counter()
        res = score_dataset(data, run, engine=engine, force=True)
        out["seconds"] = round(time.perf_counter() - t, 1)
        out["steps"] = {k: round(v, 1) for k, v in res.timings.items()}
        out["flagged"] = res.n_flagged
        out["run"] = str(run)
        h = hashlib.sha256()
        for name in SCORE_OUTPUTS:
            h.update(name.encode())
            h.update(pd.util.hash_pandas_object(pd.read_parquet(run / name), index=False).to_numpy().tobytes())
        out["digest"] = h.hexdigest()[:12]
    elif task == "propagation":
        out.update(propagation_case(engine, spark, nodes))
    else:
        from fraudkit.identification.graph.spark_components import component_communities, local_component_communities

        e = planted_graph(nodes)
        out["edges"] = len(e)
        t = time.perf_counter()
        if engine == "local":
            part = local_component_communities(e, seed=0)
        else:
            part = component_communities(spark.createDataFrame(e), seed=0).toPandas()
        out["seconds"] = round(time.perf_counter() - t, 1)
        part = part.sort_values("node", ignore_index=True)
        out["components"] = int(part["component"].nunique())
        out["communities"] = int(part["community"].nunique())
        out["digest"] = hashlib.sha256(pd.util.hash_pandas_object(part[["node", "community"]], index=False)
                                       .to_numpy().tobytes()).hexdigest()[:12]
    if spark is not None:
        spark.stop()
    return out


def propagation_case(engine: str, spark, nodes: int) -> dict:
    """Label propagation per seeded component (the graph stage's) on the planted graph, weighted, 1 % of the nodes
    seeds: on one machine (with the global iteration beside it) or on Spark; a digest of the scores."""
    import functools

    import numpy as np
    import scipy.sparse as sp

    from fraudkit.identification.graph.propagation import LabelPropagation
    from fraudkit.identification.graph.spark_components import propagation_by_component

    e = planted_graph(nodes)
    n = int(max(e["src"].max(), e["dst"].max()) + 1)
    rng = np.random.default_rng(0)
    adj = sp.csr_matrix((rng.random(len(e)) + 0.5, (e["src"], e["dst"])), shape=(n, n))
    adj = (adj + adj.T).tocsr()
    seeds = rng.choice(n, n // 100, replace=False)
    out = {"edges": len(e), "seeds": len(seeds)}
    t = time.perf_counter()
    est = LabelPropagation(by_component=True).fit(
        adj, seeds, propagator=None if spark is None else functools.partial(propagation_by_component, spark=spark))
    out["seconds"] = round(time.perf_counter() - t, 1)
    out.update(flagged=int(est.labels_.sum()), n_iter=est.n_iter_,
               digest=hashlib.sha256(est.decision_scores_.tobytes()).hexdigest()[:12])
    if spark is None:  # the global stop, for its cost and how far its scores are from the per-component ones
        t = time.perf_counter()
        whole = LabelPropagation().fit(adj, seeds)
        out["global_seconds"] = round(time.perf_counter() - t, 1)
        out["global_max_difference"] = float(np.abs(whole.decision_scores_ - est.decision_scores_).max())
        out["global_flagged"] = int(whole.labels_.sum())
    return out


def compare_features(ref: Path, run: Path) -> dict:
    """Cells of every feature table that differ from the DuckDB run's, and the largest relative difference."""
    import numpy as np
    import pandas as pd

    if not ref.exists():
        return {"error": "no DuckDB run to compare with"}
    cells, worst, other = 0, 0.0, []
    for f in sorted((ref / "features").glob("*.parquet")):
        a, b = pd.read_parquet(f), pd.read_parquet(run / "features" / f.name)
        if list(a.columns) != list(b.columns) or len(a) != len(b):
            other.append(f.name)
            continue
        for c in a.columns:
            x, y = a[c], b[c]
            if pd.api.types.is_float_dtype(x) and pd.api.types.is_float_dtype(y):
                x, y = x.to_numpy(float), y.to_numpy(float)
                ne = ~((x == y) | (np.isnan(x) & np.isnan(y)))
                cells += int(ne.sum())
                if ne.any():
                    worst = max(worst, float(np.max(np.abs(x[ne] - y[ne]) / np.maximum(np.abs(x[ne]), 1e-300))))
            else:
                try:
                    pd.testing.assert_series_equal(x, y, check_dtype=False, check_exact=True)
                except AssertionError:
                    other.append(f"{f.name}:{c}")
    return {"float_cells_differing": cells, "max_relative_difference": worst, "other_differences": other}


def run_case(task, engine, cores, args) -> dict:
    import psutil

    cmd = [sys.executable, __file__, "--child", task, engine, str(cores), "--data", str(args.data),
           "--nodes", str(args.nodes), "--runs", str(args.runs)]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    load = os.getloadavg()[0]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    peak = [0]

    def sample():
        p = psutil.Process(proc.pid)
        while proc.poll() is None:
            try:
                rss = sum(q.memory_info().rss for q in [p, *p.children(recursive=True)])
                peak[0] = max(peak[0], rss)
            except psutil.Error:
                pass
            time.sleep(0.2)

    watcher = threading.Thread(target=sample, daemon=True)
    watcher.start()
    stdout, _ = proc.communicate()
    watcher.join()
    result = json.loads(stdout.strip().splitlines()[-1]) if proc.returncode == 0 else {"error": proc.returncode}
    result.update(peak_rss_mb=peak[0] >> 20, load_before=round(load, 2), load_after=round(os.getloadavg()[0], 2))
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="/tmp/cmp/after/d0")
    ap.add_argument("--nodes", type=int, default=100_000)
    ap.add_argument("--json", default=None, help="Also write the results here.")
    ap.add_argument("--only", default=None, help="Run only this task (validate, score, graph or propagation).")
    ap.add_argument("--runs", default=None, help="Where the score task writes its runs (default: a new temp dir).")
    ap.add_argument("--child", nargs=3, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        task, engine, cores = args.child
        print(json.dumps(child(task, engine, int(cores), args.data, args.nodes, args.runs)))
        return
    if args.runs is None:
        args.runs = tempfile.mkdtemp(prefix="fk-engines-")
    print(f"machine: {os.cpu_count()} cores; load {os.getloadavg()}; data {args.data}; graph {args.nodes:,} nodes")
    results = []
    for task, engine, cores in CASES:
        if args.only and task != args.only:
            continue
        r = run_case(task, engine, cores, args)
        if task == "score" and engine == "spark" and "run" in r:
            r["features_vs_duckdb"] = compare_features(Path(args.runs) / "duckdb0", Path(r["run"]))
        results.append(r)
        print(json.dumps(r), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
