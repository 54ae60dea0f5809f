"""E-commerce attackers: group scalpers, crowd scalpers and coupon abusers.

``group_scalper``
    one operator, many accounts sharing a few phones, devices and two or three
    addresses typed with small variations; switches accounts in quick
    succession to dodge per-account limits on limited-stock items.
``crowd_scalper``
    recruited real users buying the same discounted items on their own
    devices, shipping to a few consolidation addresses (or, a ``home_fraction``
    of the parcels, to their own homes); receipts aligned.
``coupon_abuser``
    bulk accounts registered just before a promotion on virtual-operator
    numbers, emulators and proxies; claim at the opening, order with the coupon.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fraudkit.randomness import check_random_state
from fraudkit.simulation import catalog as cat
from fraudkit.simulation.commerce import claim_events, order_events
from fraudkit.simulation.community import attacker_accounts, carrier_nat_ips, label_campaign, proxy_pool, scatter_ips
from fraudkit.simulation.population import add_activity_block, make_devices, sample_ips
from fraudkit.simulation.world import DAY_US, HOUR_US, MIN_US, SEC_US, TYPOLOGY_CODES, World, component_seed

__all__ = ["build_ecommerce_attacks"]


def build_ecommerce_attacks(world: World) -> None:
    """Add every e-commerce campaign's accounts, devices, orders, claims and labels."""
    A = world.scenario.attackers
    for name, fn in (("group_scalper", _group_scalper), ("crowd_scalper", _crowd_scalper),
                     ("coupon_abuser", _coupon_abuser)):
        cfg = getattr(A, name)
        if cfg.campaigns <= 0 or cfg.accounts_per_campaign <= 0:
            continue
        rng = check_random_state(component_seed(world.seed, name))
        for cid in world.new_campaigns(cfg.campaigns):
            fn(world, rng, cfg, cid)


def _targets(world, rng, n, limited_first=True):
    c = world.commerce
    pool = np.flatnonzero(c["limited"]) if limited_first else np.array([], dtype=np.int64)
    disc = np.flatnonzero((c["discount"] > 0) & ~c["limited"])
    pick = list(rng.choice(pool, size=min(len(pool), max(1, n // 2)), replace=False)) if len(pool) else []
    pick += list(rng.choice(disc, size=min(len(disc), n - len(pick)), replace=False))
    return np.array(pick, dtype=np.int64)


def _group_scalper(world, rng, cfg, cid):
    code = TYPOLOGY_CODES["group_scalper"]
    c = world.commerce
    n = cfg.accounts_per_campaign
    n_dev = max(1, int(np.ceil(n / max(cfg.accounts_per_device, 1))))
    dev = make_devices(world, rng, n_dev, world.start_us - (rng.uniform(30, 400, n_dev) * DAY_US).astype(np.int64),
                       tier=[0, 1], rooted=0.3 * (1 - cfg.device_spoof))
    real = rng.random(n) < cfg.real_devices
    acc_dev = dev[np.arange(n) % n_dev]
    acc_dev[real] = make_devices(world, rng, int(real.sum()), world.start_us - (rng.uniform(60, 900, real.sum()) * DAY_US).astype(np.int64))
    phones = cat.sample_phones(rng, max(2, n // 4), 0.3)
    batches = world.start_us - (rng.uniform(10, 200, 3) * DAY_US).astype(np.int64)
    reg = batches[rng.integers(0, 3, n)] + (rng.exponential(2, n) * HOUR_US).astype(np.int64)
    home = sample_ips(rng, 2, "residential")
    hh_row = world.n_households + int(rng.integers(0, 4000))
    acc = attacker_accounts(world, rng, n, reg, dev1=acc_dev, home_ip=home[rng.integers(0, 2, n)],
                            phone=phones[rng.integers(0, len(phones), n)], p_mobile=0.25,
                            household=np.full(n, hh_row))
    add_activity_block(world, f"group_scalper:{cid}", acc, rng.lognormal(-1.2, 0.6, n), rng)
    bases = world.households[world.n_households + rng.integers(0, 4096, 3)]
    targets = _targets(world, rng, cfg.targets_per_campaign)
    promos = [p for p in c["promos"] if np.isin(targets, p["products"]).any()] or c["promos"][:1]
    k = np.maximum(1, rng.poisson(cfg.actions_per_account, n))
    parts = []
    for p in promos:
        feat = targets[np.isin(targets, p["products"])]
        if not len(feat):
            feat = targets
        # account switching: the operator walks through the accounts one after another
        order = rng.permutation(np.repeat(np.arange(n), np.maximum(1, k // len(promos))))
        gap = rng.uniform(15, 60, len(order)) * SEC_US / cfg.rate_scale
        ts = p["start"] + int(rng.uniform(0, 3) * SEC_US) + np.cumsum(gap).astype(np.int64)
        ts = np.minimum(ts, p["end"] - SEC_US)
        a = acc[order]
        prod = feat[rng.integers(0, len(feat), len(order))]
        qty = np.where(c["limited"][prod], 1, rng.integers(1, 4, len(order)))
        dev, ip = world.resolve(a, ts, rng)
        ip = np.where(rng.random(len(a)) < 0.3 * (1 - cfg.ip_scatter), sample_ips(rng, len(a), "datacenter"), ip)
        ip = carrier_nat_ips(world, rng, scatter_ips(rng, ip, cfg.ip_scatter), cfg.carrier_nat)
        world.proxy_ips_used.append(ip)
        base = bases[rng.integers(0, len(bases), len(a))]
        if cfg.vary_strings:  # many typing styles, a fresh receiver phone typed differently on every order
            addr = cat.typed_address_variants(rng, base)
            rphone = cat.typed_phones(rng, cat.sample_phones(rng, len(a), 0.3))
        else:
            addr = np.array([cat.address_variants(rng, b, 1)[0] for b in base], dtype=object)
            rphone = phones[rng.integers(0, len(phones), len(a))]
        recv = ts + (rng.lognormal(np.log(2.0), 0.3, len(a)) * DAY_US).astype(np.int64)
        parts.append(order_events(world, rng, a, ts, prod, qty=qty, addr=addr, rphone=rphone, received=recv,
                                  typ=code, camp=cid, dev=dev, ip=ip))
    world.order_parts.extend(parts)
    label_campaign(world, "group_scalper", cid, acc, acc_dev)


def _crowd_scalper(world, rng, cfg, cid):
    code = TYPOLOGY_CODES["crowd_scalper"]
    c = world.commerce
    A = world.accounts
    taken = getattr(world, "crowd_workers", np.array([], dtype=np.int64))
    cand = np.flatnonzero(A["honest"] & (A["reg_us"] < world.start_us - 30 * DAY_US))
    cand = cand[~np.isin(cand, taken)]
    recruits = rng.choice(cand, size=min(cfg.accounts_per_campaign, len(cand) // 5), replace=False)
    n = len(recruits)
    if n == 0:
        return
    hubs = world.stations[rng.integers(0, len(world.stations), int(rng.integers(1, 4)))]
    collector = cat.sample_phones(rng, 1, 0.0)[0]
    targets = _targets(world, rng, cfg.targets_per_campaign, limited_first=False)
    fest = c["promos"][0]
    k = np.maximum(1, rng.poisson(cfg.actions_per_account, n))
    a = np.repeat(recruits, k)
    m = len(a)
    span = (fest["end"] - fest["start"]) / cfg.rate_scale
    ts = fest["start"] + (rng.exponential(0.15, m) * span).astype(np.int64)
    ts = np.minimum(ts, fest["end"] - SEC_US)
    prod = targets[rng.integers(0, len(targets), m)]
    addr = hubs[rng.integers(0, len(hubs), m)]
    if cfg.home_fraction > 0:  # some parcels go to the worker's own home, not a consolidation point
        home = rng.random(m) < cfg.home_fraction
        addr[home] = world.households[A["household"][a[home]] % len(world.households)]
    rphone = np.where(rng.random(m) < 0.3, collector, A["phone"][a])
    rphone = np.array([p if p is not None else collector for p in rphone], dtype=object)
    pickup = fest["end"] + int(rng.uniform(0.5, 2) * DAY_US)
    recv = pickup + (rng.random(m) * 4 * HOUR_US).astype(np.int64)
    ev = order_events(world, rng, a, ts, prod, qty=rng.integers(1, 3, m), addr=addr, rphone=rphone,
                      received=recv, typ=code, camp=cid)
    world.order_parts.append(ev)
    world.label("account", world.ids("account", recruits), "crowd_scalper", cid)


def _coupon_abuser(world, rng, cfg, cid):
    code = TYPOLOGY_CODES["coupon_abuser"]
    c = world.commerce
    promo = c["promos"][int(rng.integers(0, len(c["promos"])))] if rng.random() < 0.4 else c["promos"][0]
    n = cfg.accounts_per_campaign
    reg = promo["start"] - (rng.uniform(0.5, 3, n) * DAY_US).astype(np.int64)
    reg = np.maximum(reg, world.start_us - 3 * DAY_US)
    n_dev = max(1, int(np.ceil(n / max(cfg.accounts_per_device, 1))))
    emulate = 0.85 * (1 - cfg.device_spoof)
    dev = make_devices(world, rng, n_dev, reg.min() - (rng.uniform(0, 60, n_dev) * DAY_US).astype(np.int64),
                       emulator=emulate)
    acc_dev = dev[np.arange(n) % n_dev]
    real = rng.random(n) < cfg.real_devices
    acc_dev[real] = make_devices(world, rng, int(real.sum()), world.start_us - (rng.uniform(60, 900, real.sum()) * DAY_US).astype(np.int64))
    proxies = proxy_pool(world, rng, max(6, 3 * n))
    acc = attacker_accounts(world, rng, n, reg, dev1=acc_dev, home_ip=proxies[rng.integers(0, len(proxies), n)],
                            virtual_fraction=0.6, channel_p=(0.75, 0.1, 0.15, 0.0))
    # claims right at the opening, then an order with the coupon on a cheap item
    k = np.clip(rng.poisson(cfg.actions_per_account - 1, n) + 1, 1, 3)
    a = np.repeat(acc, k)
    m = len(a)
    late = rng.random(m) < 0.3
    cts = promo["start"] + np.where(late, rng.random(m) * 12 * 60, rng.exponential(3, m)) * MIN_US / cfg.rate_scale
    cts = cts.astype(np.int64) + SEC_US
    cts = np.maximum(np.minimum(cts, promo["end"] - HOUR_US), world.accounts["reg_us"][a] + MIN_US)
    dev, ip = world.resolve(a, cts, rng)
    ip = carrier_nat_ips(world, rng, scatter_ips(rng, ip, cfg.ip_scatter), cfg.carrier_nat)
    claims = claim_events(world, rng, a, cts, promo["id"], typ=code, camp=cid, dev=dev, ip=ip)
    world.claim_parts.append(claims)
    cheap = np.flatnonzero(c["price"] * (1 - c["discount"]) < 3 * c["coupon_value"])
    cheap = cheap[np.isin(cheap, promo["products"])] if np.isin(cheap, promo["products"]).any() else cheap
    use = rng.random(m) < 0.85
    ots = np.minimum(cts[use] + (rng.exponential(10, use.sum()) * MIN_US).astype(np.int64), world.end_us - SEC_US)
    drops = world.households[world.n_households + rng.integers(0, 4096, 2)]
    if cfg.vary_strings:
        addr = cat.typed_address_variants(rng, drops[rng.integers(0, 2, use.sum())])
        rphone = cat.typed_phones(rng, cat.sample_phones(rng, int(use.sum()), 0.6))
    else:
        addr = np.array([cat.address_variants(rng, drops[j], 1)[0] for j in rng.integers(0, 2, use.sum())], dtype=object)
        own = world.accounts["phone"][a[use]]
        pool = cat.sample_phones(rng, 3, 0.6)[rng.integers(0, 3, use.sum())]
        rphone = np.where((rng.random(use.sum()) < 0.6) & ~pd.isna(own), own, pool)
    world.order_parts.append(order_events(world, rng, a[use], ots, rng.choice(cheap, use.sum()), qty=np.ones(use.sum(), dtype=np.int64),
                                          coupon=claims.cols["coupon"][use], addr=addr, rphone=rphone,
                                          typ=code, camp=cid, dev=dev[use], ip=ip[use]))
    label_campaign(world, "coupon_abuser", cid, acc, acc_dev)
