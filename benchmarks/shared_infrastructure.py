"""Shared infrastructure: carrier NAT IPs, giant communities and threat feeds, before and after hot-from-data.

Worlds (simulated here, seeds fixed): the ``adaptive`` scenario seed 0 is scored; ``demo-small`` seed 1000 is the
training world (thresholds and models; it has no carrier NAT). ``adaptive`` holds ``honest_carrier_nat``
accounts (12 mobile-carrier NAT IPs, each the exit of 20-200 unrelated honest accounts), honest group buys, and
attackers that route part of their traffic through carrier NAT and residential proxies.

Two configurations of the same code:

* **before** -- ``graph={"hot": "fixed"}`` (an entity is hot only above the fixed 200-account cap) and
  ``list_min_weight=0`` (every list entry trusted as listed): the kit's behaviour before this change;
* **after** -- the defaults: hot entities decided from each medium's degree distribution and carrier-NAT-like
  use (steady IPs dropped from the shared view, other hot entities paired by time), list entries weighted by
  how many accounts share the resource and how many of them look honest.

Measured against the scored world's labels (never read by the kit): the largest communities of the
shared-media view and how many ring members (group scalpers, coupon abusers, crowd scalpers) sit in a community
of more than 500 accounts; recall of those typologies (combined flag and graph stage); precision; every
look-alike's false-positive rate. Then a **threat feed**: the world's ``proxy_ips`` blacklist plus the IPs of
every labelled attack event (orders, coupon claims, paid interactions -- so also the carrier NAT IPs attackers
passed through) plus the 12 honest carrier NAT IPs: the honest accounts the default rule ``proxy_ip_order``
would flag and the decisions' blacklist layer would block, and the precision of those accounts, trusted as
listed and weighted (counted on the events with the store a run reads; no second scoring). Last, ``demo-small`` seed 0 trained on seed 1000 (no carrier NAT)
before and after, to show nothing got worse there.

Usage::

    flock /tmp/fk-heavy.lock .venv/bin/python benchmarks/shared_infrastructure.py [--work DIR] [--quick] [--reuse-runs]

Writes ``benchmarks/shared_infrastructure.md`` (``--quick``: the adaptive world only, no threat feed, no
demo-small check; not written to the repository file). ``--reuse-runs`` reads the runs an earlier invocation left
in ``--work`` instead of scoring again (their seconds come from their manifests) to re-make the tables.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import pandas as pd

from fraudkit.capability.lists import ListStore, weigh_lists
from fraudkit.data.contract import HONEST_LOOKALIKES, is_fraud_typology
from fraudkit.data.dataset import load_dataset
from fraudkit.evaluation.metrics import evaluate_run
from fraudkit.pipeline.score import score_dataset
from fraudkit.simulation import simulate

RINGS = ("group_scalper", "coupon_abuser", "crowd_scalper")
CONFIGS = {"before": dict(params={"graph": {"hot": "fixed"}}, list_min_weight=0.0),
           "after": dict(params=None, list_min_weight=0.5)}
GIANT = 500


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default="/tmp/fraudkit-shared-infra")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--reuse-runs", action="store_true")
    args = ap.parse_args(argv)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    load0 = os.getloadavg()
    worlds = {}
    for scen, seed in (("adaptive", 0), ("demo-small", 1000)) + ((("demo-small", 0),) if not args.quick else ()):
        path = work / f"{scen}-{seed}"
        if not (path / "labels.parquet").is_file():
            simulate(scen, path, seed=seed, force=True, progress=False)
        worlds[(scen, seed)] = path
    train = worlds[("demo-small", 1000)]
    scored = worlds[("adaptive", 0)]
    labels = pd.read_parquet(scored / "labels.parquet")

    rows, comm, timing = {}, {}, {}
    for name, cfg in CONFIGS.items():
        run = work / f"run-adaptive-{name}"
        timing[f"adaptive {name}"] = _score(scored, run, train, cfg, args.reuse_runs)
        rows[name] = _figures(run, labels)
        comm[name] = _communities(run, labels)

    feed_rows = {}
    if not args.quick:
        store = _threat_feed(scored, labels)
        t = time.time()
        feed_rows = _feed_figures(scored, labels, store)
        timing["threat feed (lists only)"] = time.time() - t
        d0 = worlds[("demo-small", 0)]
        for name, cfg in CONFIGS.items():
            run = work / f"run-demo-{name}"
            timing[f"demo-small {name}"] = _score(d0, run, train, cfg, args.reuse_runs)
            rows[f"demo-small {name}"] = _figures(run, pd.read_parquet(d0 / "labels.parquet"))

    text = _report(rows, comm, feed_rows, timing, labels, work, load0, time.time() - t0, store if feed_rows else None,
                   reused=args.reuse_runs)
    print(text)
    if not args.quick:
        Path(__file__).with_suffix(".md").write_text(text, encoding="utf-8")


def _score(data, run, train, cfg, reuse) -> tuple:
    """Score ``data`` into ``run`` (or reuse the run there); return the run's seconds and creation time."""
    if not (reuse and (run / "manifest.json").is_file()):
        score_dataset(data, run, train=train, seed=0, force=True, **cfg)
    m = json.loads((run / "manifest.json").read_text(encoding="utf-8"))
    return float(m["timings"]["total"]), m["created"]


def _figures(run, labels) -> dict:
    t = evaluate_run(run).set_index("typology")
    out = {"precision": t.loc["all_fraud", "precision_combined"], "recall": t.loc["all_fraud", "recall_combined"]}
    for typ in RINGS:
        if typ in t.index:
            out[f"recall {typ}"] = t.loc[typ, "recall_combined"]
            out[f"graph recall {typ}"] = t.loc[typ, "recall_graph"]
    for typ in HONEST_LOOKALIKES:
        if typ in t.index and t.loc[typ, "n_labelled"] > 0:
            out[f"FPR {typ}"] = t.loc[typ, "fpr_combined"]
    out["FPR all honest"] = t.loc["all_honest", "fpr_combined"]
    hot = Path(run) / "graph" / "hot_entities.parquet"
    if hot.is_file():
        h = pd.read_parquet(hot)
        out["hot entities"] = ", ".join(f"{k[0]} {k[1]} {v}" for k, v in h.groupby(["entity_type", "action"]).size().items())
    return out


def _communities(run, labels) -> dict:
    c = pd.read_parquet(Path(run) / "graph" / "communities.parquet")
    c = c[c["view"] == "shared"]
    p = pd.read_parquet(Path(run) / "graph" / "community_profiles.parquet")
    p = p[p["view"] == "shared"][["community", "flagged"]]
    cf = c.merge(p, on="community", how="left")
    cf["flagged"] = cf["flagged"].astype("boolean").fillna(False).astype(bool)
    sizes = c.drop_duplicates("community")["community_size"].sort_values(ascending=False)
    acc = labels[labels["entity_type"] == "account"]
    ring = set(acc.loc[acc["typology"].isin(RINGS), "entity_id"].astype(str))
    nat = set(acc.loc[acc["typology"] == "honest_carrier_nat", "entity_id"].astype(str))
    in_giant = c[c["community_size"] > GIANT]
    ids = c["account_id"].astype(str)
    per = {}
    for typ in RINGS:
        members = set(acc.loc[acc["typology"] == typ, "entity_id"].astype(str))
        x = cf[cf["account_id"].astype(str).isin(members)]
        per[typ] = (len(x), float(x["community_size"].median()) if len(x) else float("nan"),
                    int((x["community_size"] >= 100).sum()), int(x["flagged"].sum()))
    return {"per_typology": per, "largest": sizes.head(3).tolist(), "n_giant": int((sizes > GIANT).sum()),
            "ring_in_giant": int(in_giant["account_id"].astype(str).isin(ring).sum()),
            "ring_in_view": int(ids.isin(ring).sum()), "nat_in_giant": int(in_giant["account_id"].astype(str).isin(nat).sum())}


def _threat_feed(world, labels) -> ListStore:
    """The world's lists plus a feed of attack IPs and the honest carrier NAT IPs (list ``proxy_ips``)."""
    base = pd.read_parquet(world / "list_entries.parquet")
    store = ListStore(base, audit=None)
    ev = labels[labels["typology"].map(lambda t: bool(is_fraud_typology([t])[0]))]
    ips = []
    for table, key, etype in (("orders", "order_id", "order"), ("coupon_claims", "claim_id", "coupon_claim"),
                              ("interactions", "event_id", "interaction")):
        t = pd.read_parquet(world / f"{table}.parquet", columns=[key, "ip"])
        ips.append(t.loc[t[key].isin(ev.loc[ev["entity_type"] == etype, "entity_id"]), "ip"].dropna())
    attack = pd.unique(pd.concat(ips))
    nat_codes = labels.loc[labels["typology"] == "honest_carrier_nat", "campaign_id"].unique()
    nat = [".".join(str((int(c) >> s) & 255) for s in (24, 16, 8, 0)) for c in nat_codes]
    start = pd.read_parquet(world / "logins.parquet", columns=["ts"])["ts"].min() - pd.Timedelta(days=30)
    store.add("blacklist", "proxy_ips", "ip", attack, reason="threat feed: IPs seen in attacks", actor="intel_feed",
              at=start)
    store.add("blacklist", "proxy_ips", "ip", nat, reason="threat feed: IPs seen in attacks", actor="intel_feed",
              at=start)
    store.attrs = {"n_attack_ips": len(attack), "n_nat_ips": len(nat)}
    return store


def _feed_figures(world, labels, store) -> dict:
    """What the feed acts on, trusted as listed (before) and weighted by sharing (after), read from the events.

    ``proxy_ip_order`` (the default rule reading the feed) flags an account with an order from a listed IP; the
    decisions' blacklist layer blocks every order and interaction from one. Both are evaluated here directly with
    the store the run would read (each event at its own time), without scoring the world again.
    """
    ds = load_dataset(world)
    acc = labels[labels["entity_type"] == "account"]
    fraud = set(acc.loc[acc["typology"].map(lambda x: bool(is_fraud_typology([x])[0])), "entity_id"].astype(str))
    nat = set(acc.loc[acc["typology"] == "honest_carrier_nat", "entity_id"].astype(str))
    n_honest = ds.to_pandas("accounts", columns=["account_id"])["account_id"].astype(str)
    n_honest = int((~n_honest.isin(fraud)).sum())
    weighted = weigh_lists(store, ds)
    out = {}
    for name, st in (("before", store), ("after", weighted.store)):
        f = {}
        for table in ("orders", "interactions"):
            t = ds.to_pandas(table, columns=["account_id", "ip", "ts"])
            hit = st.contains("proxy_ips", t["ip"], list_type="blacklist", entity_type="ip", as_of=t["ts"].to_numpy())
            f[table] = set(t.loc[hit, "account_id"].astype(str))
        for what, accs in (("flagged by proxy_ip_order (an order from a listed IP)", f["orders"]),
                           ("blocked by the blacklist layer (any event from a listed IP)", f["orders"] | f["interactions"])):
            honest = {a for a in accs if a not in fraud}
            out.setdefault(f"honest accounts {what}", {})[name] = len(honest)
            out.setdefault(f"share of honest accounts {what}", {})[name] = len(honest) / n_honest
            out.setdefault(f"carrier NAT accounts {what}", {})[name] = len(honest & nat)
            out.setdefault(f"precision of the accounts {what}", {})[name] = (len(accs & fraud) / len(accs)
                                                                            if accs else float("nan"))
            out.setdefault(f"fraud accounts {what}", {})[name] = len(accs & fraud)
    w = weighted.weights[weighted.weights["list_name"] == "proxy_ips"]
    out["proxy_ips entries acting"] = {"before": str(len(w)), "after": f"{int(w['acts'].sum())} of {len(w)}"}
    out["_collateral"] = weighted.collateral
    return out


def _fmt(v):
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def _report(rows, comm, feed_rows, timing, labels, work, load0, seconds, store, reused=False):
    n_acc = int((labels["entity_type"] == "account").sum())
    lines = ["# Shared infrastructure: carrier NAT, giant communities, threat feeds", "",
             "Generated by `flock /tmp/fk-heavy.lock .venv/bin/python benchmarks/shared_infrastructure.py"
             f"{' --reuse-runs' if reused else ''}` "
             f"({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.machine()}, {os.cpu_count()} CPUs, "
             f"load average at start {load0[0]:.2f} / {load0[1]:.2f} / {load0[2]:.2f}, {seconds / 60:.1f} min for this "
             "invocation). "
             f"Scored world: `adaptive` seed 0 ({n_acc:,} labelled accounts); trained on `demo-small` seed 1000. "
             "**before** = `graph={'hot': 'fixed'}` and `list_min_weight=0` (fixed 200-account cap, lists trusted "
             "as listed); **after** = the defaults (hot entities from the data, lists weighted by sharing). "
             "Labels are read only to measure.", "",
             "## Shared-media view communities (adaptive seed 0)", "",
             "| | largest three | communities > 500 | ring members in them (of those in the view) | carrier NAT accounts in them |",
             "|---|---|---|---|---|"]
    for name, c in comm.items():
        lines.append(f"| {name} | {', '.join(map(str, c['largest']))} | {c['n_giant']} | "
                     f"{c['ring_in_giant']} of {c['ring_in_view']} | {c['nat_in_giant']} |")
    lines += ["", "Where each ring typology's members sit in the shared view: members in the view, the median size of "
              "their community, how many sit in a community of 100 or more accounts, how many in a community "
              "that screens as suspicious (flagged).", "",
              "| typology | before: members, median size, in >= 100, in a flagged community | after |", "|---|---|---|"]
    for typ in RINGS:
        cells = [", ".join(_fmt(v) for v in comm[n]["per_typology"][typ]) for n in comm]
        lines.append(f"| {typ} | " + " | ".join(cells) + " |")
    lines += ["", "## Recall, precision, false-positive rates (combined flag; graph stage where named)", ""]
    names = [n for n in rows if not n.startswith("demo-small")]
    keys = [k for k in rows[names[0]] if k != "hot entities"]
    lines += ["| figure | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    lines += [f"| {k} | " + " | ".join(_fmt(rows[n].get(k, "")) for n in names) + " |" for k in keys]
    lines += ["", "Hot entities of the shared view (after): " + rows["after"].get("hot entities", "none") + ".", ""]
    if feed_rows:
        lines += ["## Threat feed listing attack IPs and honest carrier NAT IPs (adaptive seed 0)", "",
                  f"The feed adds {store.attrs['n_attack_ips']} IPs seen in labelled attack events and the "
                  f"{store.attrs['n_nat_ips']} honest carrier NAT IPs to the world's `proxy_ips` blacklist, which the "
                  "default rule `proxy_ip_order` and the decisions' blacklist layer read. before = every entry "
                  "trusted; after = `weigh_lists` (entries on shared, honestly used resources suspended). Counted "
                  "on the events directly with the store a run reads (each event at its own time).", "",
                  "| figure | before | after |", "|---|---|---|"]
        for k, v in feed_rows.items():
            if not k.startswith("_"):
                lines.append(f"| {k} | {_fmt(v['before'])} | {_fmt(v['after'])} |")
        col = feed_rows["_collateral"]
        lines += ["", "The collateral table a run writes (`RUN/lists/list_collateral.parquet`) for this feed:", "",
                  "| " + " | ".join(col.columns) + " |", "|---" * len(col.columns) + "|"]
        lines += ["| " + " | ".join(_fmt(v) for v in r) + " |" for r in col.itertuples(index=False)]
        lines += ["", "## demo-small seed 0 trained on seed 1000 (no carrier NAT): no worse", "",
                  "| figure | before | after |", "|---|---|---|"]
        b, a = rows["demo-small before"], rows["demo-small after"]
        for k in b:
            if k != "hot entities":
                lines.append(f"| {k} | {_fmt(b[k])} | {_fmt(a.get(k, ''))} |")
        lines += ["", "Hot entities of the shared view (after): " + a.get("hot entities", "none") + ".", ""]
    lines += ["## Timings", "", ("Runs reused from an earlier invocation in the work folder; seconds from their "
                                 "manifests." if reused else "Seconds of each scoring run (its manifest's total)."),
              "", "| run | seconds | made at |", "|---|---|---|"]
    lines += [f"| {k} | {v[0]:.0f} | {v[1]} |" if isinstance(v, tuple) else f"| {k} | {v:.0f} | |"
              for k, v in timing.items()]
    lines += ["", f"Work folder: `{work}`.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
