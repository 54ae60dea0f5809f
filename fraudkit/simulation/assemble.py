"""Build a world and turn it into contract tables, whole or day by day.

``build_world`` runs every component once (entities, attackers, orders);
``iter_event_chunks`` then yields the event tables (interactions, logins,
orders, coupon claims) and their labels one chunk of days at a time, so
``simulate`` can write the ``large`` scenario with bounded memory.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from fraudkit.data.contract import ACTIONS, LABEL_TABLE, TABLES, TYPOLOGIES
from fraudkit.randomness import check_random_state
from fraudkit.simulation import catalog as cat
from fraudkit.simulation.commerce import CLAIM_KEYS, ORDER_KEYS, build_shop, honest_orders
from fraudkit.simulation.community import build_community_attacks
from fraudkit.simulation.ecommerce import build_ecommerce_attacks
from fraudkit.simulation.market import intelligence, list_entries
from fraudkit.simulation.population import EVENT_KEYS, activity_day, build_population, viral_bursts
from fraudkit.simulation.world import SEC_US, Events, World

__all__ = ["build_world", "static_tables", "iter_event_chunks", "EVENT_TABLES", "empty_table", "arrow_schema",
           "arrow_to_pandas"]

EVENT_TABLES = ("interactions", "logins", "orders", "coupon_claims")


def build_world(scenario, seed: int) -> World:
    """Run every simulator component for ``scenario``; events are generated later, by chunk."""
    world = World(scenario, seed)
    build_population(world)
    world.viral = viral_bursts(world)
    if scenario.ecommerce.enabled:
        build_shop(world)
    build_community_attacks(world)
    if scenario.ecommerce.enabled:
        build_ecommerce_attacks(world)
        honest_orders(world)
    world.attack_events = Events.concat(world.interaction_parts + [world.viral], EVENT_KEYS)
    world.orders_all = Events.concat(world.order_parts, ORDER_KEYS)
    world.claims_all = Events.concat(world.claim_parts, CLAIM_KEYS)
    return world


def static_tables(world: World) -> dict[str, pd.DataFrame]:
    """Entity tables (accounts, devices, notes, shop, lists, intelligence) and the labels known so far.

    Returns ``(tables, labels)``: a dict of contract-typed DataFrames and the
    entity labels (accounts, devices, notes); event labels come with the chunks.
    """
    A, D, N = world.accounts, world.devices, world.notes
    ids = world.ids
    out = {
        "accounts": pd.DataFrame({
            "account_id": ids("account", np.arange(A.n)), "registered_at": _ts(A["reg_us"]),
            "register_channel": A["channel"], "phone": A["phone"]}),
        "devices": pd.DataFrame({
            "device_id": ids("device", np.arange(D.n)), "model": D["model"], "os": D["os"],
            "os_version": D["os_version"], "screen": D["screen"], "app_version": D["app_version"],
            "is_emulator": D["is_emulator"].astype(bool), "is_rooted": D["is_rooted"].astype(bool),
            "fingerprint": D["fingerprint"], "first_seen": _ts(D["first_seen_us"])}),
        "notes": pd.DataFrame({
            "note_id": ids("note", np.arange(N.n)), "author_id": ids("account", N["author"]),
            "created_at": _ts(N["created_us"]),
            "category": np.array(cat.NOTE_CATEGORIES, dtype=object)[N["category"].astype(np.int64)]}),
    }
    b = pd.concat(world.bindings, ignore_index=True)
    out["bindings"] = pd.DataFrame({
        "account_id": ids("account", b["acc"].to_numpy()), "provider": b["provider"].astype(object),
        "binding_id": ids("binding", np.arange(len(b))), "bound_at": _ts(b["bound_at"].to_numpy())})
    if world.commerce is not None:
        c = world.commerce
        out["merchants"] = pd.DataFrame({"merchant_id": ids("merchant", np.arange(len(c["m_cat"]))),
                                         "category": c["m_cat"]})
        out["products"] = pd.DataFrame({
            "product_id": ids("product", np.arange(len(c["price"]))), "merchant_id": ids("merchant", c["p_merchant"]),
            "category": c["p_cat"], "price": c["price"].astype(float), "discount": c["discount"].astype(float),
            "limited_stock": c["limited"].astype(bool)})
        P = c["promos"]
        out["promotions"] = pd.DataFrame({
            "promotion_id": np.array([p["id"] for p in P], dtype=np.int64),
            "name": np.array([p["name"] for p in P], dtype=object),
            "starts_at": _ts([p["start"] for p in P]), "ends_at": _ts([p["end"] for p in P])})
    out["list_entries"] = list_entries(world)
    out["intelligence"] = intelligence(world)
    labels = pd.concat(world.labels, ignore_index=True) if world.labels else empty_table(LABEL_TABLE.name)
    return {k: _conform(k, v) for k, v in out.items()}, labels


def iter_event_chunks(world: World, progress=None):
    """Yield ``(event_tables, labels)`` per chunk of ``scenario.chunk_days`` days."""
    step = max(1, int(world.scenario.chunk_days))
    seq = {"interaction": 0, "login": 0, "order": 0, "coupon_claim": 0}
    att, orders, claims = world.attack_events, world.orders_all, world.claims_all
    att_day, ord_day, clm_day = world.day_of(att.cols["ts"]), world.day_of(orders.cols["ts"]), world.day_of(claims.cols["ts"])
    for d0 in range(0, world.days, step):
        days = range(d0, min(world.days, d0 + step))
        parts = [activity_day(world, blk, d) for d in days for blk in world.activity_blocks]
        inrange = (att_day >= d0) & (att_day < d0 + step)
        ev = Events.concat(parts + [att.take(np.flatnonzero(inrange))], EVENT_KEYS)
        ev = ev.take(np.flatnonzero(ev.cols["ts"] < world.end_us))
        o = orders.take(np.flatnonzero((ord_day >= d0) & (ord_day < d0 + step)))
        c = claims.take(np.flatnonzero((clm_day >= d0) & (clm_day < d0 + step)))
        tables, labels = {}, []
        tables["interactions"], lab = _interactions(world, ev, seq)
        labels.append(lab)
        tables["logins"] = _logins(world, [ev, o, c], seq)
        if world.commerce is not None:
            tables["orders"], lab = _orders(world, o, seq)
            labels.append(lab)
            tables["coupon_claims"], lab = _claims(world, c, seq)
            labels.append(lab)
        if progress is not None:
            progress.update(len(days))
        yield tables, pd.concat(labels, ignore_index=True)


def empty_table(name: str) -> pd.DataFrame:
    spec = LABEL_TABLE if name == LABEL_TABLE.name else TABLES[name]
    return _conform(name, pd.DataFrame({c.name: [] for c in spec.columns}))


# --- private helpers ----------------------------------------------------------

_ACTION_ARROW = pa.array(ACTIONS, pa.string())
_TYPS = np.array(TYPOLOGIES, dtype=object)


def _ts(us):
    return np.asarray(us, dtype=np.int64).astype("datetime64[us]")


def _next_ids(world, seq, kind, n):
    out = world.ids(kind, np.arange(seq[kind], seq[kind] + n))
    seq[kind] += n
    return out


def arrow_schema(name):
    """The pyarrow schema of a contract table (every column nullable at the Arrow level)."""
    spec = LABEL_TABLE if name == LABEL_TABLE.name else TABLES[name]
    typ = {"id": pa.int64(), "int": pa.int64(), "float": pa.float64(), "bool": pa.bool_(),
           "timestamp": pa.timestamp("us"), "string": pa.string()}
    return pa.schema([pa.field(c.name, typ[c.dtype]) for c in spec.columns])


def arrow_to_pandas(name, table) -> pd.DataFrame:
    """An event table chunk as a contract-typed pandas DataFrame."""
    return _conform(name, table.to_pandas(coerce_temporal_nanoseconds=False))


def _table(name, cols):
    return pa.Table.from_arrays([cols[f.name] for f in arrow_schema(name)], schema=arrow_schema(name))


def _ts_arrow(us):
    return pa.array(np.asarray(us, dtype=np.int64), type=pa.int64()).cast(pa.timestamp("us"))


def _dev_ids(world, dev):
    return pa.array(world.ids("device", np.maximum(dev, 0)), mask=np.asarray(dev) < 0)


def _opt_id(x):
    return pa.array(np.asarray(x, dtype=np.int64), mask=np.asarray(x) < 0)


def _ip_str(ip):
    ip = np.asarray(ip, dtype=np.uint32)
    parts = [pc.cast(pa.array(((ip >> s) & 255).astype(np.uint8)), pa.string()) for s in (24, 16, 8, 0)]
    out = pc.binary_join_element_wise(*parts, ".") if len(ip) else pa.array([], pa.string())
    return pc.if_else(pa.array(ip == 0), pa.scalar(None, pa.string()), out) if (ip == 0).any() else out


def _event_labels(entity_type, ids, typ, camp):
    hit = typ >= 0
    return pd.DataFrame({"entity_type": entity_type, "entity_id": ids[hit], "typology": _TYPS[typ[hit]],
                         "campaign_id": camp[hit]})


def _interactions(world, ev, seq):
    ev = ev.take(np.argsort(ev.cols["ts"], kind="stable"))
    c = ev.cols
    eid = _next_ids(world, seq, "interaction", len(ev))
    t = _table("interactions", {
        "event_id": pa.array(eid), "ts": _ts_arrow(c["ts"]), "account_id": pa.array(world.ids("account", c["acc"])),
        "device_id": _dev_ids(world, c["dev"]), "ip": _ip_str(c["ip"]),
        "action": _ACTION_ARROW.take(pa.array(c["action"].astype(np.int32))), "target_id": pa.array(c["target"])})
    return t, _event_labels("interaction", eid, c["typ"], c["camp"])


def _logins(world, batches, seq):
    batches = [b for b in batches if len(b)]
    acc = np.concatenate([b.cols["acc"] for b in batches] or [np.zeros(0, np.int64)])
    dev = np.concatenate([b.cols["dev"] for b in batches] or [np.zeros(0, np.int64)])
    ts = np.concatenate([b.cols["ts"] for b in batches] or [np.zeros(0, np.int64)])
    ip = np.concatenate([b.cols["ip"] for b in batches] or [np.zeros(0, np.uint32)])
    day = world.day_of(ts)
    o = np.lexsort((ts, dev, day, acc))
    acc, dev, ts, ip, day = acc[o], dev[o], ts[o], ip[o], day[o]
    first = np.r_[True, (acc[1:] != acc[:-1]) | (dev[1:] != dev[:-1]) | (day[1:] != day[:-1])][: len(acc)]
    acc, dev, ts, ip = acc[first], dev[first], ts[first], ip[first]
    rng = check_random_state([world.seed, 7, seq["login"]])
    lts = ts - (rng.uniform(1, 30, len(ts)) * SEC_US).astype(np.int64)
    lts = np.maximum(lts, np.maximum(world.accounts["reg_us"][acc], world.start_us))
    # a login cannot come before the platform first saw its device (the event it precedes can be that moment)
    has_dev = dev >= 0
    lts[has_dev] = np.maximum(lts[has_dev], world.devices["first_seen_us"][dev[has_dev]])
    o = np.argsort(lts, kind="stable")
    return _table("logins", {"login_id": pa.array(_next_ids(world, seq, "login", len(o))),
                             "account_id": pa.array(world.ids("account", acc[o])), "device_id": _dev_ids(world, dev[o]),
                             "ip": _ip_str(ip[o]), "ts": _ts_arrow(lts[o])})


def _orders(world, o, seq):
    o = o.take(np.argsort(o.cols["ts"], kind="stable"))
    c = o.cols
    oid = _next_ids(world, seq, "order", len(o))
    recv = c["received"]
    t = _table("orders", {
        "order_id": pa.array(oid), "ts": _ts_arrow(c["ts"]), "account_id": pa.array(world.ids("account", c["acc"])),
        "device_id": _dev_ids(world, c["dev"]), "ip": _ip_str(c["ip"]),
        "product_id": pa.array(world.ids("product", c["product"])), "quantity": pa.array(c["qty"].astype(np.int64)),
        "paid_price": pa.array(c["paid"].astype(float)), "coupon_id": _opt_id(c["coupon"]),
        "promotion_id": _opt_id(c["promo"]), "address": pa.array(c["addr"], pa.string()),
        "receiver_phone": pa.array(c["rphone"], pa.string()),
        "received_at": pa.array(np.maximum(recv, 0), mask=recv < 0).cast(pa.timestamp("us"))})
    return t, _event_labels("order", oid, c["typ"], c["camp"])


def _claims(world, cl, seq):
    cl = cl.take(np.argsort(cl.cols["ts"], kind="stable"))
    c = cl.cols
    cid = _next_ids(world, seq, "coupon_claim", len(cl))
    t = _table("coupon_claims", {
        "claim_id": pa.array(cid), "ts": _ts_arrow(c["ts"]), "account_id": pa.array(world.ids("account", c["acc"])),
        "device_id": _dev_ids(world, c["dev"]), "ip": _ip_str(c["ip"]),
        "promotion_id": pa.array(c["promo"].astype(np.int64)), "coupon_id": pa.array(c["coupon"].astype(np.int64))})
    return t, _event_labels("coupon_claim", cid, c["typ"], c["camp"])


_PANDAS_DTYPE = {"id": "int64", "int": "int64", "float": "float64", "bool": "bool", "timestamp": "datetime64[us]",
                 "string": "object"}


def _conform(name, df):
    """Columns in contract order with contract dtypes (nullable ids as Int64)."""
    spec = LABEL_TABLE if name == LABEL_TABLE.name else TABLES[name]
    out = {}
    for col in spec.columns:
        s = df[col.name] if col.name in df else pd.Series([], dtype="object")
        dtype = _PANDAS_DTYPE[col.dtype]
        if col.dtype == "id" and col.nullable:
            dtype = "Int64"
        if col.dtype == "timestamp":
            s = pd.Series(s).astype("datetime64[us]")
        elif str(getattr(s, "dtype", "")) != dtype:
            s = pd.Series(s).astype(dtype)
        out[col.name] = pd.Series(s).reset_index(drop=True)
    return pd.DataFrame(out)
