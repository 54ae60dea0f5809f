"""The honest shop: merchants, products, promotions, orders, coupons, flash-sale crowds."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fraudkit.randomness import check_random_state, spawn
from fraudkit.simulation import catalog as cat
from fraudkit.simulation.world import DAY_US, HOUR_US, MIN_US, SEC_US, Events, World, component_seed

__all__ = ["build_shop", "honest_orders", "order_events", "claim_events", "ORDER_KEYS", "CLAIM_KEYS"]

ORDER_KEYS = ("ts", "acc", "dev", "ip", "product", "qty", "paid", "coupon", "promo", "addr", "rphone",
              "received", "typ", "camp")
CLAIM_KEYS = ("ts", "acc", "dev", "ip", "promo", "coupon", "typ", "camp")


def build_shop(world: World) -> None:
    """Merchants, products, promotions (festival + live-stream flash sales) and addresses."""
    E = world.scenario.ecommerce
    rng = check_random_state(component_seed(world.seed, "commerce"))
    n_m = max(3, E.n_merchants)
    m_cat = rng.integers(0, len(cat.PRODUCT_CATEGORIES), n_m)
    k = np.maximum(1, rng.geometric(1 / E.products_per_merchant, n_m))
    p_merchant = np.repeat(np.arange(n_m), k)
    n_p = len(p_merchant)
    p_cat = np.where(rng.random(n_p) < 0.85, m_cat[p_merchant], rng.integers(0, len(cat.PRODUCT_CATEGORIES), n_p))
    cats = np.array(cat.PRODUCT_CATEGORIES, dtype=object)[p_cat]
    base = np.array([cat.price_for(c) for c in cats], dtype=float)
    price = np.round(base * rng.lognormal(0, 0.6, n_p), 1) + 0.9
    limited = rng.random(n_p) < E.limited_fraction
    discounted = limited | (rng.random(n_p) < E.discounted_fraction)
    discount = np.where(limited, rng.uniform(0.35, 0.7, n_p), np.where(discounted, rng.choice([0.1, 0.15, 0.2, 0.3], n_p), 0.0))
    weight = rng.lognormal(0, 1.5, n_p) * np.repeat(rng.lognormal(0, 1.0, n_m), k)

    promos = []
    fest0 = world.start_us + int(E.festival_day * world.days) * DAY_US + 20 * HOUR_US
    fest1 = min(fest0 + E.festival_days * DAY_US, world.end_us - SEC_US)
    promos.append(dict(name="mid-year festival", start=fest0, end=fest1, products=np.flatnonzero(discounted),
                       kind="festival"))
    lim = np.flatnonzero(limited)
    n_live = world.scenario.lookalikes.flash_sales
    days = rng.choice(np.arange(1, max(2, world.days - 1)), size=n_live, replace=n_live > world.days - 2)
    for i, d in enumerate(sorted(days)):
        s = world.start_us + int(d) * DAY_US + int(rng.choice([19, 20, 21])) * HOUR_US
        feat = rng.choice(lim, size=min(2, len(lim)), replace=False) if len(lim) else np.array([0])
        promos.append(dict(name=f"live-stream flash sale {i + 1}", start=s, end=s + 2 * HOUR_US,
                           products=feat, kind="live"))
    for i, p in enumerate(promos):
        p["id"] = int(world.ids("promotion", [i])[0])
    world.commerce = dict(m_cat=np.array(cat.PRODUCT_CATEGORIES, dtype=object)[m_cat], p_merchant=p_merchant,
                          p_cat=cats, price=price, discount=discount, limited=limited, weight=weight,
                          promos=promos, n_coupons=0, coupon_value=E.coupon_value)
    n_hh = world.n_households
    world.households = cat.make_addresses(rng, n_hh + 4096, "home")  # spare rows for attacker homes
    world.offices = cat.make_addresses(rng, max(5, n_hh // 40), "office")
    # parcel stations: one per campus, then one per residential compound (shared by many households)
    world.n_campus_stations = max(1, len(world.ip_pools.get("campus", [])))
    world.stations = cat.make_addresses(rng, world.n_campus_stations + max(3, n_hh // 60), "station")


def new_coupons(world: World, n: int) -> np.ndarray:
    c = world.commerce
    ids = world.ids("coupon", np.arange(c["n_coupons"], c["n_coupons"] + n))
    c["n_coupons"] += n
    return ids


def order_events(world, rng, acc, ts, product, *, qty=None, coupon=None, addr=None, rphone=None,
                 received=None, typ=-1, camp=-1, dev=None, ip=None) -> Events:
    """Order lines at ``ts``; price, promotion, address and delivery filled in realistically."""
    c = world.commerce
    n = len(acc)
    if dev is None or ip is None:
        d2, i2 = world.resolve(acc, ts, rng)
        dev = d2 if dev is None else dev
        ip = i2 if ip is None else ip
    dev = np.where(dev < 0, world.accounts["dev1"][acc], dev)  # ordering needs the app
    qty = np.where(c["limited"][product], 1, rng.geometric(0.8, n)) if qty is None else qty
    promo = np.full(n, -1, dtype=np.int64)
    for p in c["promos"]:
        hit = (ts >= p["start"]) & (ts < p["end"]) & np.isin(product, p["products"])
        promo[hit] = p["id"]
    unit = c["price"][product] * np.where(promo >= 0, 1 - c["discount"][product], 1.0)
    coupon = np.full(n, -1, dtype=np.int64) if coupon is None else coupon
    paid = np.maximum(np.round(unit * qty - np.where(coupon >= 0, c["coupon_value"], 0.0), 2), 0.01)
    if addr is None:
        addr = _default_address(world, rng, acc)
    if rphone is None:
        rphone = _receiver_phone(world, rng, acc)
    if received is None:
        received = ts + (rng.lognormal(np.log(2.5), 0.45, n) * DAY_US).astype(np.int64)
        received[rng.random(n) < 0.02] = -1
    received = np.where(received >= world.end_us, -1, received)
    return Events(dict(ts=ts.astype(np.int64), acc=acc.astype(np.int64), dev=dev.astype(np.int64),
                       ip=ip.astype(np.uint32), product=product.astype(np.int64), qty=np.asarray(qty, dtype=np.int64),
                       paid=paid.astype(float), coupon=np.asarray(coupon, dtype=np.int64), promo=promo,
                       addr=np.asarray(addr, dtype=object), rphone=np.asarray(rphone, dtype=object),
                       received=np.asarray(received, dtype=np.int64),
                       typ=np.broadcast_to(np.int16(typ), (n,)).copy(), camp=np.broadcast_to(np.int64(camp), (n,)).copy()))


def claim_events(world, rng, acc, ts, promo_id, *, typ=-1, camp=-1, dev=None, ip=None) -> Events:
    """Coupon claims; returns the events (their ``coupon`` column holds the new coupon ids)."""
    n = len(acc)
    if dev is None or ip is None:
        d2, i2 = world.resolve(acc, ts, rng)
        dev = d2 if dev is None else dev
        ip = i2 if ip is None else ip
    return Events(dict(ts=ts.astype(np.int64), acc=acc.astype(np.int64), dev=np.asarray(dev, dtype=np.int64),
                       ip=np.asarray(ip, dtype=np.uint32), promo=np.broadcast_to(np.int64(promo_id), (n,)).copy(),
                       coupon=new_coupons(world, n), typ=np.broadcast_to(np.int16(typ), (n,)).copy(),
                       camp=np.broadcast_to(np.int64(camp), (n,)).copy()))


def honest_orders(world: World) -> None:
    """Ordinary orders, festival coupons and the honest flash-sale crowds."""
    E = world.scenario.ecommerce
    L = world.scenario.lookalikes
    rng = spawn(component_seed(world.seed, "commerce"), 1)[0]
    c = world.commerce
    honest = np.flatnonzero(world.accounts["honest"])
    reg = world.accounts["reg_us"]
    fest = c["promos"][0]
    boost = np.ones(world.days)
    f0, f1 = world.day_of(fest["start"]), world.day_of(fest["end"] - 1)
    boost[f0:f1 + 1] = E.festival_boost
    rate = E.orders_per_day * rng.lognormal(0, 1.0, len(honest)) * np.exp(-0.5)
    k = rng.poisson(rate * boost.sum())
    acc = np.repeat(honest, k)
    day = rng.choice(world.days, size=len(acc), p=boost / boost.sum())
    ts = world.start_us + day * DAY_US + world.rhythm_for(len(acc), rng)
    rush = (day == f0) & (rng.random(len(acc)) < 0.3)  # the festival opens at 20:00: a rush
    ts[rush] = fest["start"] + (rng.exponential(20, rush.sum()) * MIN_US).astype(np.int64)
    keep = ts > reg[acc] + MIN_US
    acc, ts = acc[keep], np.minimum(ts[keep], world.end_us - SEC_US)
    w = c["weight"] * np.where(c["discount"] > 0, 2.0, 1.0)
    product = rng.choice(len(w), size=len(acc), p=w / w.sum())
    parts = [order_events(world, rng, acc, ts, product)]

    # festival coupons: many claim at the opening minutes, some use them
    act = world.activity_blocks[0]["rate"]
    n_claim = int(E.coupon_claim_fraction * len(honest))
    ok = honest[reg[honest] < fest["start"]]
    if n_claim and len(ok):
        pw = np.sqrt(act[ok]) + 0.05
        who = rng.choice(ok, size=min(n_claim, len(ok)), replace=False, p=pw / pw.sum())
        early = rng.random(len(who)) < 0.5
        cts = np.where(early, fest["start"] + (rng.exponential(8, len(who)) * MIN_US).astype(np.int64),
                       fest["start"] + (rng.random(len(who)) * (fest["end"] - fest["start"])).astype(np.int64))
        claims = claim_events(world, rng, who, cts, fest["id"])
        world.claim_parts.append(claims)
        use = rng.random(len(who)) < E.coupon_use_fraction
        ots = np.minimum(cts[use] + (rng.exponential(3, use.sum()) * HOUR_US).astype(np.int64), fest["end"] - SEC_US)
        disc = fest["products"]
        prod = disc[rng.choice(len(disc), size=use.sum(), p=w[disc] / w[disc].sum())]
        parts.append(order_events(world, rng, who[use], ots, prod, coupon=claims.cols["coupon"][use]))

    # live-stream flash sales: an honest crowd buys the limited item within minutes
    old = honest[reg[honest] < world.start_us]
    for p in c["promos"][1:]:
        n = min(L.buyers_per_flash, len(old) // 4)
        if n <= 0:
            continue
        pw = np.sqrt(act[old]) + 0.05
        who = rng.choice(old, size=n, replace=False, p=pw / pw.sum())
        ts = p["start"] + (rng.exponential(90, n) * SEC_US).astype(np.int64) + SEC_US
        prod = rng.choice(p["products"], n)
        parts.append(order_events(world, rng, who, ts, prod, qty=np.ones(n, dtype=np.int64)))
        world.label("account", world.ids("account", who), "honest_flash_sale", p["id"])
        # live-stream coupons: viewers grab them in the first minutes
        n_c = min(len(old) // 4, int(E.coupon_claim_fraction * len(honest) / 3))
        if n_c > 0:
            fans = rng.choice(old, size=n_c, replace=False, p=pw / pw.sum())
            cts = p["start"] + (rng.exponential(4, n_c) * MIN_US).astype(np.int64) + SEC_US
            world.claim_parts.append(claim_events(world, rng, fans, cts, p["id"]))
    world.order_parts.extend(parts)
    _group_buys(world)


def _group_buys(world: World) -> None:
    """Honest group buys: colleagues order one item within the lunch hour, all to their office front desk."""
    L = world.scenario.lookalikes
    if L.group_buys <= 0 or L.buyers_per_group_buy <= 0:
        return
    rng = check_random_state(component_seed(world.seed, "group_buy"))
    c = world.commerce
    reg = world.accounts["reg_us"]
    honest = np.flatnonzero(world.accounts["honest"])
    old = honest[reg[honest] < world.start_us - 30 * DAY_US]
    w = c["weight"] * np.where(c["limited"], 0.0, 1.0)
    sizes = np.maximum(3, rng.poisson(L.buyers_per_group_buy, L.group_buys))
    sizes = np.minimum(sizes, max(3, len(old) // (2 * L.group_buys)))
    who = rng.choice(old, size=min(int(sizes.sum()), len(old)), replace=False)
    which = np.repeat(np.arange(L.group_buys), sizes)[: len(who)]
    prod = rng.choice(len(w), size=L.group_buys, p=w / w.sum())
    office = world.offices[rng.integers(0, len(world.offices), L.group_buys)]
    day = rng.integers(0, world.days, L.group_buys)
    start = world.start_us + day * DAY_US + rng.integers(11 * 60, 13 * 60, L.group_buys) * MIN_US
    ts = start[which] + (rng.random(len(who)) * 60 * MIN_US).astype(np.int64)
    ts = np.minimum(np.maximum(ts, reg[who] + MIN_US), world.end_us - SEC_US)
    world.order_parts.append(order_events(world, rng, who, ts, prod[which], qty=rng.integers(1, 3, len(who)),
                                          addr=office[which]))
    world.label("account", world.ids("account", who), "honest_group_buy", world.ids("product", prod[which]))


def _default_address(world, rng, acc):
    A = world.accounts
    hh = A["household"][acc]
    addr = world.households[hh % len(world.households)].copy()
    u = rng.random(len(acc))
    office = u < 0.12
    addr[office] = world.offices[(hh[office] * 7 + 3) % len(world.offices)]
    station = u > 0.7
    n_nb = len(world.stations) - world.n_campus_stations
    addr[station] = world.stations[world.n_campus_stations + (hh[station] * 13 + 5) % n_nb]
    campus = A["campus_ip"][acc] > 0
    if campus.any() and len(world.stations):
        cips = world.ip_pools["campus"]
        which = np.searchsorted(np.sort(cips), A["campus_ip"][acc[campus]])
        st = campus.copy()
        st[campus] = rng.random(campus.sum()) < 0.75
        addr[st] = world.stations[which[st[campus]] % world.n_campus_stations]
    return addr


def _receiver_phone(world, rng, acc):
    phone = world.accounts["phone"][acc].copy()
    missing = pd.isna(phone)
    other = rng.random(len(acc)) < 0.05
    fill = missing | other
    phone[fill] = cat.sample_phones(rng, int(fill.sum()), 0.03)
    return phone
