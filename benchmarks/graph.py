"""Stage-3 graph benchmarks: timings, peak memory, data sizes, and per-typology evidence.

Usage
-----
    .venv/bin/python benchmarks/graph.py communities --edges 1000000
        detect_communities (leiden, louvain) vs igraph's own community_multilevel on one graph
    .venv/bin/python benchmarks/graph.py scenario --scenario demo-small [--data DIR] [--pieces]
        the graph stage's own run (stages.graph.run on the Dataset, or on the generated frames): its per-step
        seconds, rows in, nodes and edges per view, peak RSS; total, load average. --pieces first times the
        building blocks one by one as well (they double-count: the stage runs them again)
    .venv/bin/python benchmarks/graph.py evaluate --scenario demo-small --train-seed 0 --test-seed 1 [--via-dataset]
        threshold for precision 0.9 set on the train seed's dataset, recall / FPR per typology on the test seed;
        --via-dataset hands the stage a Dataset (the DuckDB path a loaded dataset takes) instead of frames
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fraudkit.data.contract import FRAUD_TYPOLOGIES, HONEST_LOOKALIKES  # noqa: E402


def _peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _timed(label, fn, *a, **kw):
    t = time.perf_counter()
    out = fn(*a, **kw)
    print(f"{label:34s} {time.perf_counter() - t:8.2f} s   peak RSS {_peak_mb():8.0f} MB", flush=True)
    return out


def bench_communities(n_edges, seed=0):
    import igraph as ig

    from fraudkit.identification.graph.communities import detect_communities

    rng = np.random.default_rng(seed)
    n = max(n_edges // 10, 10)
    size = 50
    # planted blocks: 70% of edges inside blocks of 50, the rest random
    m_in = int(n_edges * 0.7)
    blk = rng.integers(0, n // size, m_in)
    s_in, d_in = blk * size + rng.integers(0, size, m_in), blk * size + rng.integers(0, size, m_in)
    s_out, d_out = rng.integers(0, n, n_edges - m_in), rng.integers(0, n, n_edges - m_in)
    e = pd.DataFrame({"src": np.r_[s_in, s_out], "dst": np.r_[d_in, d_out], "weight": rng.uniform(0.1, 1, n_edges)})
    planted = np.arange(n) // size
    print(f"graph: {n:,} nodes, {len(e):,} edges; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for method in ("leiden", "louvain"):
        p = _timed(f"detect_communities({method})", detect_communities, e, method=method, seed=0)
        m = pd.Series(p.membership, index=p.nodes).reindex(np.arange(n)).fillna(-1).to_numpy()
        print(f"    {p.n_communities:,} communities, modularity {p.modularity:.4f}, "
              f"NMI with the planted blocks {_nmi(planted, m):.3f}")

    def plm():
        import networkit as nk

        nk.setSeed(seed, False)
        g = nk.Graph(n, weighted=True)
        g.addEdges((e["weight"].to_numpy(float), (e["src"].to_numpy(np.uint64), e["dst"].to_numpy(np.uint64))))
        g.removeSelfLoops()
        g.removeMultiEdges()  # igraph/leidenalg sum parallel edges; here the first weight is kept (few)
        t = time.perf_counter()
        part = nk.community.PLM(g, refine=True).run().getPartition()
        print(f"    (PLM alone {time.perf_counter() - t:.2f} s on {nk.getMaxNumberOfThreads()} threads)")
        return g, part
    g, part = _timed("networkit PLM (refine)", plm)
    import networkit as nk

    m = np.asarray(part.getVector())
    full = ig.Graph(n=n, edges=np.c_[e["src"].to_numpy(), e["dst"].to_numpy()])  # the kit's graph: parallel edges kept
    q = full.modularity(pd.factorize(m)[0].tolist(), weights=e["weight"].to_numpy().tolist())
    print(f"    {part.numberOfSubsets():,} communities, modularity {q:.4f}, NMI with the planted blocks "
          f"{_nmi(planted, m):.3f}")

    def raw():
        g = ig.Graph(n=n, edges=np.c_[e["src"].to_numpy(), e["dst"].to_numpy()])
        return g.community_multilevel(weights=e["weight"].to_numpy().tolist())
    cl = _timed("igraph community_multilevel (raw)", raw)
    print(f"    {len(cl):,} communities, modularity {cl.modularity:.4f}")


def _nmi(a, b):
    from sklearn.metrics import normalized_mutual_info_score

    return normalized_mutual_info_score(a, b)


def _load(args, seed):
    if args.data:
        from fraudkit.data.dataset import load_dataset
        from fraudkit.pipeline.stages.graph import _COLS

        # validated when it was simulated; read only the columns the graph stage reads (what the stage holds)
        ds = load_dataset(args.data, validate=False)
        labels = ds.labels
        tables = {t: ds.to_pandas(t, columns=[c for c in _COLS[t] if c in ds.table(t).columns])
                  for t in _COLS if ds.has(t)}
        return tables, labels
    from fraudkit.simulation import generate, load_scenario

    d = generate(load_scenario(args.scenario), seed=seed)
    labels = d.pop("labels")
    return d, labels


def bench_scenario(args):
    from fraudkit.pipeline.context import RunContext
    from fraudkit.pipeline.stages import graph as stage

    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stdout)
    if args.pieces:
        bench_pieces(args)
    t0 = time.perf_counter()
    load0 = os.getloadavg()
    if args.data:
        from fraudkit.data.dataset import load_dataset

        ds = load_dataset(args.data, validate=False)  # validated when it was simulated
        print(f"data {args.data}: " + ", ".join(f"{t}={int(ds.table(t).count().execute()):,}"
                                                for t in ("accounts", "bindings", "logins", "interactions",
                                                          "orders", "coupon_claims") if ds.has(t)))
    else:
        ds, _ = _load(args, args.seed)
        print("rows: " + ", ".join(f"{k}={len(v):,}" for k, v in ds.items()))
    out = stage.run(ds, context=RunContext(seed=0))
    wall = time.perf_counter() - t0
    t = out.artifacts["timings"]
    with pd.option_context("display.width", 200, "display.max_rows", 100):
        print(t.to_string(index=False))
    print(f"notes: {out.notes}")
    print(f"stages.graph.run {t['seconds'].iloc[-1]:.1f} s (wall incl. opening the data {wall:.1f} s), "
          f"peak RSS {_peak_mb():.0f} MB")
    print(f"load average before {' '.join(f'{x:.1f}' for x in load0)}, after "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} cores")


def bench_pieces(args):
    from fraudkit.identification.graph.communities import detect_communities
    from fraudkit.capability.graphs import build_hetero_graph, coaction_projection, shared_entity_projection
    from fraudkit.identification.graph.propagation import label_propagation
    from fraudkit.capability.r_ab import r_ab_edges
    from fraudkit.pipeline.stages import graph as stage

    t0 = time.perf_counter()
    d, _ = _timed(f"load/generate {args.data or args.scenario}", _load, args, args.seed)
    print("rows: " + ", ".join(f"{k}={len(v):,}" for k, v in d.items()))
    g = _timed("build_hetero_graph", build_hetero_graph, d)
    print(f"    {g.n_nodes:,} nodes, {len(g.edges):,} edges")
    if "logins" in d:
        e = _timed("shared_entity_projection(device)", shared_entity_projection, d["logins"], entity="device_id", time="ts")
        print(f"    {len(e):,} edges")
    c = _timed("coaction_projection(3D, >=2 targets)", coaction_projection, d["interactions"], window="3D",
               actions=stage.DEFAULTS["coaction_actions"], min_coactions=2, max_degree=2 * stage.DEFAULTS["max_degree"])
    print(f"    {len(c):,} edges")
    if "orders" in d:
        r = _timed("r_ab_edges", r_ab_edges, d["orders"], d.get("products"), d.get("promotions"))
        print(f"    {len(r):,} edges")
        from fraudkit.capability.r_ab import consolidation_scores
        cs = _timed("consolidation_scores", consolidation_scores, d["orders"])
        print(f"    {cs.attrs['n_tests']:,} orders tested")
    p = _timed("detect_communities(coaction)", detect_communities, c, seed=0)
    print(f"    {p.n_communities:,} communities")
    cap, _ = _timed("capture test (stratified by category)", stage._capture_evidence, p, d, stage.DEFAULTS)
    print(f"    {int((cap['score'] >= 0.5).sum()):,} accounts confirmed")
    keys = pd.Index(d["accounts"]["account_id"])
    from fraudkit.capability.graphs import edges_to_sparse
    adj = edges_to_sparse(keys.get_indexer(c["src"]), keys.get_indexer(c["dst"]), c["weight"].to_numpy(), n=len(keys))
    _timed("label_propagation(coaction, 100 seeds)", label_propagation, adj, np.arange(min(100, len(keys))))
    print(f"pieces total {time.perf_counter() - t0:.1f} s, peak RSS {_peak_mb():.0f} MB")
    del d, g, c, p, cap, adj


def evaluate(args):
    from fraudkit.identification.base import threshold_for_precision
    from fraudkit.pipeline.context import RunContext
    from fraudkit.pipeline.stages import graph as stage

    res = {}
    for role, seed in (("train", args.train_seed), ("test", args.test_seed)):
        d, labels = _load(args, seed)
        if args.via_dataset:  # the path a loaded dataset takes (DuckDB reductions and loading)
            from fraudkit.data.dataset import Dataset

            d = Dataset.from_tables(d, validate=False)
        out = stage.run(d, context=RunContext(seed=0))
        lab = labels[labels["entity_type"] == "account"].drop_duplicates("entity_id").set_index("entity_id")["typology"]
        res[role] = (out.scores, lab)
        res[f"{role}_notes"] = labels.loc[(labels["entity_type"] == "note")
                                          & (labels["typology"] == "engagement_buyer"), "entity_id"].unique()
    rows = []
    methods = [m for m in ("community_screening", "capture", "consolidation", "label_propagation", "graph")
               if (res["train"][0]["method"] == m).any()]
    for method in methods:
        s_tr, lab_tr = res["train"]
        s_tr = s_tr[s_tr["entity_type"] == "account"]
        s = s_tr[s_tr["method"] == method].set_index("entity_id")["score"]
        y = lab_tr.reindex(s.index).isin(FRAUD_TYPOLOGIES).to_numpy()
        thr = threshold_for_precision(s.to_numpy(), y, args.precision)
        s_te, lab_te = res["test"]
        s_te = s_te[s_te["entity_type"] == "account"]
        st = s_te[s_te["method"] == method].set_index("entity_id")["score"]
        ty = lab_te.reindex(st.index).fillna("unlabelled")
        flag = st > thr
        fraud = ty.isin(FRAUD_TYPOLOGIES)
        prec = fraud[flag].mean() if flag.any() else float("nan")
        own = s_te[s_te["method"] == method].set_index("entity_id")["flagged"].reindex(st.index).fillna(False)
        row = {"method": method, "threshold": thr, "test_precision": prec, "n_flagged": int(flag.sum()),
               "own_threshold_precision": fraud[own].mean() if own.any() else float("nan"),
               "own_threshold_n_flagged": int(own.sum())}
        for t in FRAUD_TYPOLOGIES + HONEST_LOOKALIKES + ("unlabelled",):
            m = ty == t
            if m.any():
                row[("recall_" if t in FRAUD_TYPOLOGIES else "fpr_") + t] = flag[m].mean()
        for t in FRAUD_TYPOLOGIES + HONEST_LOOKALIKES:
            m = ty == t
            if m.any():
                row[("own_recall_" if t in FRAUD_TYPOLOGIES else "own_fpr_") + t] = own[m].mean()
        rows.append(row)
    # engagement buyers are notes: recall of captured notes at the stage's own significance threshold
    s_te_all, _ = res["test"]
    nl = res["test_notes"]
    ns = s_te_all[(s_te_all["entity_type"] == "note")]
    if len(nl) and len(ns):
        fl = pd.Series(ns["flagged"].to_numpy(), index=ns["entity_id"].to_numpy())
        rec = fl.reindex(nl).fillna(False).mean()
        prec = pd.Index(ns.loc[ns["flagged"], "entity_id"]).isin(nl).mean() if ns["flagged"].any() else float("nan")
        for r in rows:
            if r["method"] in ("capture", "graph"):
                r["recall_engagement_buyer(notes, own threshold)"] = rec
                r["precision_notes(own threshold)"] = prec
    out = pd.DataFrame(rows).set_index("method").T
    with pd.option_context("display.float_format", "{:.3f}".format, "display.width", 200):
        print(f"{args.scenario}: threshold for precision {args.precision} set on seed {args.train_seed}, "
              f"measured on seed {args.test_seed} (accounts)")
        print(out.to_string())


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("communities")
    c.add_argument("--edges", type=int, default=1_000_000)
    for name in ("scenario", "evaluate"):
        s = sub.add_parser(name)
        s.add_argument("--scenario", default="demo-small")
        s.add_argument("--data", default=None)
        s.add_argument("--seed", type=int, default=0)
        s.add_argument("--train-seed", type=int, default=0)
        s.add_argument("--test-seed", type=int, default=1)
        s.add_argument("--precision", type=float, default=0.9)
        s.add_argument("--pieces", action="store_true", help="scenario: time the building blocks first")
        s.add_argument("--via-dataset", action="store_true",
                       help="evaluate: hand the stage a Dataset built from the generated frames")
    args = ap.parse_args(argv)
    if args.cmd == "communities":
        bench_communities(args.edges)
    elif args.cmd == "scenario":
        bench_scenario(args)
    else:
        evaluate(args)


if __name__ == "__main__":
    main()
