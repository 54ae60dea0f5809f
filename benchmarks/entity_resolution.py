"""Entity resolution of addresses and phones: pair precision / recall and throughput.

Usage::

    python benchmarks/entity_resolution.py [--rows 1000000] [--bases 200000] [--seed 0] [--no-world]

Prints and writes ``benchmarks/entity_resolution.md``:

1. pair precision and recall of :func:`fraudkit.capability.entity_resolution.canonical_address` on the
   labelled variants ``tests/capability/address_variants.csv`` (and by typing style);
2. ``--rows`` generated address strings: ``--bases`` simulator home addresses, 60 % of rows the address as
   stored, 40 % typed in the simulator's ``vary_strings`` styles; pair precision / recall against the base
   address, wall time, rows/s and the load average; the same for as many generated phone strings;
3. (unless ``--no-world``) ``demo-small`` with ``vary_strings`` on for group scalpers and coupon abusers:
   distinct address keys per campaign as raw strings, with ``r_ab.normalize_address`` and with
   ``canonical_address`` (each group-scalper campaign has 3 true addresses, each coupon-abuser one 2).
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from fraudkit.capability.entity_resolution import address_pairs, canonical_address, canonical_phone, pair_scores
from fraudkit.capability.r_ab import normalize_address
from fraudkit.simulation import catalog as cat

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = ROOT / "tests" / "capability" / "address_variants.csv"
OUT = Path(__file__).with_name("entity_resolution.md")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--bases", type=int, default=200_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-world", action="store_true", help="skip the simulated world")
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args(argv)
    md = [f"# Entity resolution of addresses and phones\n",
          f"`python benchmarks/entity_resolution.py --rows {args.rows} --bases {args.bases} --seed {args.seed}` "
          f"on {os.cpu_count()} cores (shared machine).\n"]
    md += _labelled()
    md += _throughput(args.rows, args.bases, args.seed)
    if not args.no_world:
        md += _world(args.seed)
    text = "\n".join(md) + "\n"
    args.out.write_text(text, encoding="utf-8")
    print(text)
    print(f"wrote {args.out}")
    return 0


def _labelled():
    d = pd.read_csv(VARIANTS)
    r = pd.concat([d, canonical_address(d["address"])], axis=1)
    s = pair_scores(r)
    main_key = r.groupby("entity_id")["address_key"].agg(lambda k: k.value_counts().index[0])
    r["on_main_key"] = r["address_key"].to_numpy() == main_key.loc[r["entity_id"]].to_numpy()
    by_style = r.groupby("style").agg(rows=("address", "size"), on_entity_key=("on_main_key", "mean"),
                                      mean_confidence=("confidence", "mean")).round(3)
    out = ["## Labelled variants\n",
           f"`{VARIANTS.relative_to(ROOT)}`: {d['entity_id'].nunique()} addresses ({len(d)} strings; 37 true "
           f"addresses in up to 8 of 11 typing styles and 10 hard negatives).\n",
           "| pairs (true) | pairs (predicted) | correct | precision | recall |", "|---|---|---|---|---|",
           f"| {s['true_pairs']} | {s['predicted_pairs']} | {s['correct_pairs']} | {s['precision']:.4f} | "
           f"{s['recall']:.4f} |\n",
           "Share of each style's rows on their address's majority key, and mean confidence:\n",
           _markdown(by_style.reset_index()), ""]
    print("\n".join(out))
    return out


def _throughput(rows, bases, seed):
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    base = cat.make_addresses(rng, bases)
    which = rng.integers(0, bases, rows)
    strings = base[which].copy()
    typed = rng.random(rows) < 0.4
    strings[typed] = cat.typed_address_variants(rng, base[which[typed]])
    phones = cat.sample_phones(rng, bases, 0.03)
    phone_rows = cat.typed_phones(rng, phones[which])
    t_gen = time.perf_counter() - t0
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    r = canonical_address(strings)
    t_addr = time.perf_counter() - t0
    load1 = os.getloadavg()
    t0 = time.perf_counter()
    ph = canonical_phone(phone_rows)
    t_phone = time.perf_counter() - t0
    load2 = os.getloadavg()
    s = address_pairs(r["address_key"], base[which])
    ps = address_pairs(ph["phone_key"], phones[which])
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    n_distinct = len(set(strings))
    out = [f"## {rows:,} generated strings\n",
           f"{bases:,} simulator home addresses; 60 % of rows the stored address, 40 % a `vary_strings` typing "
           f"({n_distinct:,} distinct strings, generated in {t_gen:.1f} s). Phones: the same rows' numbers "
           f"typed in six formats.\n",
           "| input | wall s | rows/s | distinct keys | pair precision | pair recall | load average (1 min) |",
           "|---|---|---|---|---|---|---|",
           f"| addresses | {t_addr:.1f} | {rows / t_addr:,.0f} | {r['address_key'].nunique():,} | "
           f"{s['precision']:.4f} | {s['recall']:.4f} | {load0[0]:.1f} → {load1[0]:.1f} |",
           f"| phones | {t_phone:.1f} | {rows / t_phone:,.0f} | {ph['phone_key'].nunique():,} | "
           f"{ps['precision']:.4f} | {ps['recall']:.4f} | {load1[0]:.1f} → {load2[0]:.1f} |\n",
           f"Peak resident memory of the process {rss:,.0f} MB. Truth is the base address string, so two "
           f"households whose generated addresses differ only in a part another typing drops (say the city) "
           f"count as a precision loss when merged.\n"]
    print("\n".join(out))
    return out


def _world(seed):
    from fraudkit.simulation import simulate

    with tempfile.TemporaryDirectory(prefix="fraudkit-er-") as tmp:
        scen = Path(tmp) / "varied.yaml"
        scen.write_text("extends: demo-small\nattackers:\n  group_scalper: {vary_strings: true}\n"
                        "  coupon_abuser: {vary_strings: true}\n", encoding="utf-8")
        simulate(str(scen), Path(tmp) / "data", seed=seed, progress=False)
        o = pd.read_parquet(Path(tmp) / "data" / "orders.parquet")
        lab = pd.read_parquet(Path(tmp) / "data" / "labels.parquet")
    acc = lab[(lab.entity_type == "account") & lab.typology.isin(["group_scalper", "coupon_abuser"])]
    acc = acc.drop_duplicates("entity_id")[["entity_id", "typology", "campaign_id"]]
    o = o.merge(acc, left_on="account_id", right_on="entity_id", how="left")
    o["normalize_address"] = normalize_address(o["address"])["address"]
    o["canonical_address"] = canonical_address(o["address"])["address_key"]
    att = o[o["typology"].notna()]
    g = att.groupby(["typology", "campaign_id"]).agg(orders=("address", "size"), raw=("address", "nunique"),
                                                     normalize_address=("normalize_address", "nunique"),
                                                     canonical_address=("canonical_address", "nunique"))
    honest = o["typology"].isna() & o["canonical_address"].isin(set(att["canonical_address"]))
    # a proxy for every "many accounts ship to one address" rule: accounts whose address key (of any of
    # their orders) is shared by at least 3 accounts, per typology and for honest accounts
    o["who"] = o["typology"].fillna("honest")
    shared = {}
    for col in ("address", "normalize_address", "canonical_address"):
        n_acc = o.groupby(col)["account_id"].nunique()
        hit = o[o[col].map(n_acc).fillna(0) >= 3].groupby("who")["account_id"].nunique()
        shared[col] = (hit / o.groupby("who")["account_id"].nunique()).fillna(0).round(3)
    shared = pd.DataFrame(shared).rename_axis("accounts").reset_index()
    out = [f"## demo-small, seed {seed}, `vary_strings: true` for group scalpers and coupon abusers\n",
           f"{len(o):,} orders; distinct address keys overall: raw {o['address'].nunique():,}, "
           f"`normalize_address` {o['normalize_address'].nunique():,}, `canonical_address` "
           f"{o['canonical_address'].nunique():,}. Honest orders on an attacker's canonical key: "
           f"{int(honest.sum())}.\n",
           "Distinct address keys per campaign (true: 3 per group-scalper campaign, 2 per coupon-abuser one):\n",
           _markdown(g.reset_index()), "",
           "Share of accounts with an order to an address key that at least 3 accounts ship to (the signal of "
           "the address rules and the shared-address graph links, once they use the key):\n",
           _markdown(shared), ""]
    print("\n".join(out))
    return out


def _markdown(df):
    rows = [" | ".join(map(str, df.columns)), " | ".join("---" for _ in df.columns)]
    rows += [" | ".join(map(str, r)) for r in df.itertuples(index=False)]
    return "\n".join(f"| {r} |" for r in rows)


if __name__ == "__main__":
    raise SystemExit(main())
