"""Community attackers: paid fake engagement on buyers' notes.

A campaign is one supplier working through an order book: a few buyers
(low-popularity authors) each paying for engagement on a few of their notes.
Suppliers differ in how they produce it (see docs/simulator.md):

``offline_script``
    protocol scripts: no real device or forged parameters, proxies, regular
    gaps, likes without views.
``device_farm``
    a rack of batch-bought iPhones cloned into sandboxes, behind a few proxy
    /24s, acting on each target in synchronised waves.
``nurtured_account``
    long-warmed accounts with ordinary browsing that do paid engagement; a
    ban wave mid-window moves the survivors to cheap phones.
``crowd_engagement``
    real people on their own devices doing a few paid tasks each.
"""

from __future__ import annotations

import numpy as np

from fraudkit.randomness import check_random_state
from fraudkit.simulation import catalog as cat
from fraudkit.simulation.population import (
    EVENT_KEYS,
    add_activity_block,
    event_block,
    make_devices,
    reactions,
    sample_ips,
)
from fraudkit.simulation.world import DAY_US, HOUR_US, MIN_US, SEC_US, TYPOLOGY_CODES, Events, World, component_seed

__all__ = ["build_community_attacks", "attacker_accounts", "scatter_ips", "carrier_nat_ips"]


def build_community_attacks(world: World) -> None:
    """Add every community campaign's accounts, devices, labels and paid interactions."""
    A = world.scenario.attackers
    buyers_rng = check_random_state(component_seed(world.seed, "buyers"))
    for name, fn in (("offline_script", _offline_script), ("device_farm", _device_farm),
                     ("nurtured_account", _nurtured), ("crowd_engagement", _crowd)):
        cfg = getattr(A, name)
        if cfg.campaigns <= 0 or cfg.accounts_per_campaign <= 0:
            continue
        rng = check_random_state(component_seed(world.seed, name))
        camps = world.new_campaigns(cfg.campaigns)
        targets = [_buyer_targets(world, buyers_rng, cid, cfg.targets_per_campaign) for cid in camps]
        windows = [_window(world, rng, cfg) for _ in camps]
        world.interaction_parts.append(fn(world, rng, cfg, camps, targets, windows))


def attacker_accounts(world: World, rng, n, reg_us, *, dev1, home_ip, virtual_fraction=0.3,
                      channel_p=(0.7, 0.06, 0.14, 0.10), p_mobile=0.0, web_frac=0.0, household=None,
                      phone=None) -> np.ndarray:
    """Add ``n`` attacker-controlled accounts with fixed resources; return their indices."""
    if phone is None:
        phone = cat.sample_phones(rng, n, virtual_fraction)
    hh = np.arange(n) + world.n_households if household is None else household
    return world.accounts.add(
        reg_us=np.asarray(reg_us, dtype=np.int64), phone=np.asarray(phone, dtype=object),
        channel=rng.choice(np.array(["app", "web", "mini_program", "third_party"], dtype=object), n, p=channel_p),
        dev1=np.asarray(dev1, dtype=np.int64), dev2=np.full(n, -1, dtype=np.int64),
        dev_new=np.asarray(dev1, dtype=np.int64), switch_us=np.full(n, np.iinfo(np.int64).max, dtype=np.int64),
        p_dev2=np.zeros(n), web_frac=np.broadcast_to(web_frac, (n,)).astype(float),
        home_ip=np.asarray(home_ip, dtype=np.uint32), campus_ip=np.zeros(n, dtype=np.uint32), p_campus=np.zeros(n),
        nat_ip=np.zeros(n, dtype=np.uint32),
        p_mobile=np.broadcast_to(p_mobile, (n,)).astype(float), vpn_ip=np.zeros(n, dtype=np.uint32),
        carrier=rng.integers(0, 3, n).astype(np.int8), household=np.asarray(hh, dtype=np.int64),
        pref=rng.integers(0, len(cat.NOTE_CATEGORIES), n).astype(np.int8), honest=np.zeros(n, dtype=bool),
    )


def scatter_ips(rng, ip, fraction) -> np.ndarray:
    """Replace a ``fraction`` of IPs by fresh residential-looking ones (dial-up proxies)."""
    ip = ip.copy()
    hit = rng.random(len(ip)) < fraction
    ip[hit] = sample_ips(rng, int(hit.sum()), "residential")
    return ip


def carrier_nat_ips(world: World, rng, ip, fraction) -> np.ndarray:
    """Send a ``fraction`` of actions through carrier NAT IPs honest users share (no draw when 0).

    The ``honest_carrier_nat`` IPs when the scenario has them, else the ordinary carrier pool.
    """
    if fraction <= 0 or not len(ip):
        return ip
    pool = world.ip_pools.get("carrier_nat")
    if pool is None or not len(pool):
        pool = world.ip_pools["carrier"]
    ip = ip.copy()
    hit = rng.random(len(ip)) < fraction
    ip[hit] = pool[rng.integers(0, len(pool), int(hit.sum()))]
    return ip


# --- typologies -----------------------------------------------------------------


def _offline_script(world, rng, cfg, camps, targets, windows) -> Events:
    code = TYPOLOGY_CODES["offline_script"]
    parts = []
    for cid, (tnotes, tauthors), (w0, w1) in zip(camps, targets, windows):
        n = cfg.accounts_per_campaign
        aged = rng.random(n) < 0.5
        reg = np.where(aged, w0 - (rng.uniform(30, 700, n) * DAY_US), w0 - rng.uniform(1, 30, n) * DAY_US).astype(np.int64)
        proxies = proxy_pool(world, rng, 10 * n)
        # devices: real ones (evasion), none at all (pure protocol), or forged parameter sets
        real = rng.random(n) < cfg.real_devices
        nodev = (~real) & (rng.random(n) < 0.4)
        forged = ~(real | nodev)
        dev = np.full(n, -1, dtype=np.int64)
        dev[real] = make_devices(world, rng, int(real.sum()), w0 - (rng.uniform(60, 900, real.sum()) * DAY_US).astype(np.int64))
        n_forged = int(np.ceil(forged.sum() / max(cfg.accounts_per_device, 1)))
        if n_forged:
            fdev = _forged_devices(world, rng, n_forged, w0 - (rng.uniform(0, 180, n_forged) * DAY_US).astype(np.int64),
                                   cfg.device_spoof)
            dev[forged] = fdev[np.arange(forged.sum()) % n_forged]
        acc = attacker_accounts(world, rng, n, reg, dev1=dev, home_ip=proxies[rng.integers(0, len(proxies), n)],
                                virtual_fraction=0.35)
        # each account runs one burst through its targets, with machine-regular gaps
        k = np.clip(rng.poisson(cfg.actions_per_account, n), 1, len(tnotes))
        rep = np.repeat(np.arange(n), k)
        order = _ranks(rep)
        tgt = _pick_distinct(rng, rep, order, len(tnotes))
        gap = 20 * SEC_US / cfg.rate_scale
        t0 = w0 + (rng.random(n) * max(w1 - w0 - k.max() * gap, HOUR_US)).astype(np.int64)
        ts = t0[rep] + (gap * (order + 0.04 * rng.standard_normal(len(rep)))).astype(np.int64)
        sticky = world.accounts["home_ip"][acc[rep]]
        ip = np.where(rng.random(len(rep)) < 0.7, proxies[rng.integers(0, len(proxies), len(rep))], sticky)
        ip = carrier_nat_ips(world, rng, scatter_ips(rng, ip, cfg.ip_scatter), cfg.carrier_nat)
        action = rng.choice(["like", "collect"], len(rep), p=[0.8, 0.2])
        for a in ("like", "collect"):
            s = action == a
            parts.append(event_block(ts[s], acc[rep][s], dev[rep][s], ip[s], a, world.ids("note", tnotes[tgt[s]]), code, cid))
        fol = rng.random(len(rep)) < 0.1
        parts.append(event_block(ts[fol] + 2 * SEC_US, acc[rep][fol], dev[rep][fol], ip[fol], "follow",
                         world.ids("account", tauthors[tgt[fol]]), code, cid))
        label_campaign(world, "offline_script", cid, acc, dev[dev >= 0])
    return Events.concat(parts, EVENT_KEYS)


def _device_farm(world, rng, cfg, camps, targets, windows) -> Events:
    code = TYPOLOGY_CODES["device_farm"]
    parts = []
    for cid, (tnotes, tauthors), (w0, w1) in zip(camps, targets, windows):
        n = cfg.accounts_per_campaign
        n_ids = int(np.ceil(n / max(cfg.accounts_per_device, 1)))
        n_phys = max(1, int(np.ceil(n_ids / 3)))
        setup = world.start_us - int(rng.uniform(20, 300) * DAY_US)
        model = _pick_model(rng, "ios")
        phys = make_devices(world, rng, n_phys, setup, models=model, rooted=0.6 * (1 - cfg.device_spoof))
        clones = _clone(world, phys[np.arange(n_ids) % n_phys], setup + (rng.random(n_ids) * 5 * DAY_US).astype(np.int64))
        dev = clones[np.arange(n) % n_ids]
        real = rng.random(n) < cfg.real_devices
        dev[real] = make_devices(world, rng, int(real.sum()), world.start_us - (rng.uniform(60, 900, real.sum()) * DAY_US).astype(np.int64))
        base24 = sample_ips(rng, rng.integers(1, 3), "datacenter") & np.uint32(0xFFFFFF00)
        farm_ips = base24[rng.integers(0, len(base24), 64)] | rng.integers(2, 254, 64).astype(np.uint32)
        world.proxy_ips_used.append(farm_ips)
        reg = setup - (rng.uniform(1, 300, n) * DAY_US).astype(np.int64)
        acc = attacker_accounts(world, rng, n, reg, dev1=dev, home_ip=farm_ips[rng.integers(0, 64, n)],
                                virtual_fraction=0.4, channel_p=(0.9, 0.0, 0.05, 0.05))
        add_activity_block(world, f"device_farm:{cid}", acc, rng.lognormal(-1.0, 0.5, n), rng)
        # one synchronised wave per target: every recruited account within minutes
        k = np.clip(rng.poisson(cfg.actions_per_account, n), 1, len(tnotes))
        rep = np.repeat(np.arange(n), k)
        tgt = _pick_distinct(rng, rep, _ranks(rep), len(tnotes))
        wave = w0 + (rng.random(len(tnotes)) * (w1 - w0 - HOUR_US)).astype(np.int64)
        ts = wave[tgt] + (rng.random(len(rep)) * 5 * MIN_US / cfg.rate_scale).astype(np.int64)
        props = np.tile([1.0, 0.4, 0.02, 0.05, 0.2], (len(rep), 1))
        ev = reactions(world, rng, acc[rep], ts, tnotes[tgt], props, typ=code, camp=cid)
        # the farm's proxy ranges rotate exit addresses inside its /24s
        m = len(ev)
        ev.cols["ip"] = base24[rng.integers(0, len(base24), m)] | rng.integers(2, 254, m).astype(np.uint32)
        ev.cols["ip"] = carrier_nat_ips(world, rng, scatter_ips(rng, ev.cols["ip"], cfg.ip_scatter), cfg.carrier_nat)
        world.proxy_ips_used.append(ev.cols["ip"])
        parts.append(ev)
        label_campaign(world, "device_farm", cid, acc, dev)
    return Events.concat(parts, EVENT_KEYS)


def _nurtured(world, rng, cfg, camps, targets, windows) -> Events:
    code = TYPOLOGY_CODES["nurtured_account"]
    A = world.scenario.attackers
    ban = world.start_us + int(A.ban_wave_day * world.days * DAY_US)
    parts = []
    for cid, (tnotes, tauthors), (w0, w1) in zip(camps, targets, windows):
        n = cfg.accounts_per_campaign
        reg = world.start_us - (rng.uniform(60, 400, n) * DAY_US).astype(np.int64)
        n_dev = int(np.ceil(n / max(cfg.accounts_per_device, 1)))
        dev = make_devices(world, rng, n_dev, reg.min() - (rng.uniform(0, 200, n_dev) * DAY_US).astype(np.int64),
                           tier=[0, 1])[np.arange(n) % n_dev]
        studio = sample_ips(rng, 3, "residential")
        acc = attacker_accounts(world, rng, n, reg, dev1=dev, home_ip=studio[rng.integers(0, 3, n)],
                                virtual_fraction=0.05, p_mobile=0.3, web_frac=0.02,
                                channel_p=(0.62, 0.08, 0.15, 0.15))
        banned = rng.random(n) < A.ban_fraction
        until = np.where(banned, ban, world.end_us)
        # survivors move to cheap phones after the ban wave
        move = ~banned
        t_move = ban + (rng.uniform(0.2, 2.0, move.sum()) * DAY_US).astype(np.int64)
        cheap = make_devices(world, rng, int(move.sum()), t_move - HOUR_US, tier=0)
        world.accounts.set("dev_new", acc[move], cheap)
        world.accounts.set("switch_us", acc[move], t_move)
        rate = world.scenario.population.views_per_day * rng.lognormal(0, 0.6, n)
        add_activity_block(world, f"nurtured_account:{cid}", acc, rate, rng, until_us=until)
        k = np.clip(rng.poisson(cfg.actions_per_account, n), 1, len(tnotes))
        rep = np.repeat(np.arange(n), k)
        tgt = _pick_distinct(rng, rep, _ranks(rep), len(tnotes))
        span = max(w1 - w0, HOUR_US)
        ts = w0 + (rng.random(len(rep)) * span).astype(np.int64)
        ts = ts - ts % DAY_US + world.rhythm_for(len(rep), rng)
        ok = ts < until[rep]
        props = np.tile([1.0, 0.3, 0.15, 0.05, 0.25], (int(ok.sum()), 1))
        ev = reactions(world, rng, acc[rep][ok], ts[ok], tnotes[tgt][ok], props, typ=code, camp=cid)
        ev.cols["ip"] = carrier_nat_ips(world, rng, scatter_ips(rng, ev.cols["ip"], cfg.ip_scatter), cfg.carrier_nat)
        parts.append(ev)
        label_campaign(world, "nurtured_account", cid, acc, np.concatenate([dev, cheap]))
    return Events.concat(parts, EVENT_KEYS)


def _crowd(world, rng, cfg, camps, targets, windows) -> Events:
    code = TYPOLOGY_CODES["crowd_engagement"]
    acc_all = world.accounts
    honest = np.flatnonzero(acc_all["honest"] & (acc_all["reg_us"] < world.start_us - 60 * DAY_US))
    per_worker = max(1.0, world.scenario.attackers.crowd_campaigns_per_worker)
    pool_n = max(cfg.accounts_per_campaign, int(round(cfg.campaigns * cfg.accounts_per_campaign / per_worker)))
    pool_n = min(len(honest) // 5, pool_n)
    pool = rng.choice(honest, size=pool_n, replace=False)
    world.crowd_workers = pool
    parts, seen = [], set()
    for cid, (tnotes, tauthors), (w0, w1) in zip(camps, targets, windows):
        workers = rng.choice(pool, size=min(cfg.accounts_per_campaign, len(pool)), replace=False)
        n = len(workers)
        k = np.clip(rng.poisson(cfg.actions_per_account, n), 1, len(tnotes))
        rep = np.repeat(np.arange(n), k)
        tgt = _pick_distinct(rng, rep, _ranks(rep), len(tnotes))
        ts = w0 + (rng.random(len(rep)) * max(w1 - w0, HOUR_US)).astype(np.int64)
        ts = ts - ts % DAY_US + world.rhythm_for(len(rep), rng)
        props = np.tile([0.97, 0.35, 0.1, 0.03, 0.3], (len(rep), 1))
        ev = reactions(world, rng, workers[rep], ts, tnotes[tgt], props, typ=code, camp=cid)
        parts.append(ev)
        new = np.array([w for w in workers if w not in seen], dtype=np.int64)
        seen.update(new.tolist())
        world.label("account", world.ids("account", new), "crowd_engagement", cid)
    return Events.concat(parts, EVENT_KEYS)


# --- private helpers ----------------------------------------------------------


def _window(world, rng, cfg):
    span = world.end_us - world.start_us
    length = int(min(rng.uniform(1.0, 3.0) * DAY_US / max(cfg.rate_scale, 0.05), span * 0.8))
    w0 = world.start_us + int(rng.random() * (span - length))
    return w0, w0 + length


def _buyer_targets(world, rng, cid, n_targets):
    """Pick (or create) a few low-popularity buyers and their notes; label them."""
    N = world.notes
    if getattr(world, "_low_authors", None) is None:
        pops = world.author_pop
        authors = np.array(list(pops))
        world._low_authors = authors[np.argsort(np.array(list(pops.values())))[: max(3, int(len(authors) * 0.6))]]
    low = world._low_authors
    by_author = world.note_sampler.notes_by_author()
    n_buyers = max(1, int(np.ceil(n_targets / 3)))
    buyers = rng.choice(low, size=min(n_buyers, len(low)), replace=False)
    notes = []
    for i in range(n_targets):
        b = buyers[i % len(buyers)]
        own = by_author.get(int(b), ())
        taken = set(notes)
        free = [x for x in np.asarray(own).tolist() if x not in taken]
        if free:
            notes.append(int(rng.choice(free)))
        else:
            created = world.start_us - int(rng.uniform(1, 20) * DAY_US)
            notes.append(world.note_sampler.add_note(int(b), created))
    notes = np.array(notes, dtype=np.int64)
    authors = world.notes["author"][notes]
    world.label("note", world.ids("note", notes), "engagement_buyer", cid)
    world.label("account", world.ids("account", np.unique(authors)), "engagement_buyer", cid)
    return notes, authors


def label_campaign(world, typology, cid, acc, dev):
    world.label("account", world.ids("account", acc), typology, cid)
    dev = np.unique(np.asarray(dev)[np.asarray(dev) >= 0])
    if len(dev):
        world.label("device", world.ids("device", dev), typology, cid)


def _ranks(rep):
    """0, 1, 2... within each run of equal values of a sorted ``rep``."""
    starts = np.r_[0, np.flatnonzero(np.diff(rep)) + 1]
    counts = np.diff(np.r_[starts, len(rep)])
    return np.arange(len(rep)) - np.repeat(starts, counts)


def _pick_distinct(rng, rep, rank, n_targets):
    """A distinct target per action of each account (``rank < n_targets`` guaranteed by the caller)."""
    n_acc = rep.max() + 1 if len(rep) else 0
    offset = rng.integers(0, n_targets, n_acc)
    step = rng.choice([s for s in range(1, n_targets + 1) if np.gcd(s, n_targets) == 1] or [1], n_acc)
    return (offset[rep] + rank * step[rep]) % n_targets


def proxy_pool(world, rng, n):
    """Exit IPs an attacker rents: part from the commercial pool honest VPN users share, part dedicated."""
    shared = world.ip_pools["vpn"]
    own = sample_ips(rng, n, "datacenter")
    k = min(len(shared), max(1, n // 4))
    pool = np.concatenate([own, rng.choice(shared, size=k, replace=False)])
    world.proxy_ips_used.append(pool)
    return pool


def _pick_model(rng, os_):
    idx = [i for i, m in enumerate(cat.DEVICE_MODELS) if m[1] == os_ and m[0] != "SM-G955N"]
    w = np.array([cat.DEVICE_MODELS[i][5] for i in idx])
    return int(rng.choice(idx, p=w / w.sum()))


def _clone(world, src, first_seen):
    D = world.devices
    cols = {k: D[k][src] for k in ("model", "os", "os_version", "screen", "app_version", "is_emulator",
                                    "is_rooted", "fingerprint")}
    return world.add_devices(**cols, first_seen_us=np.asarray(first_seen, dtype=np.int64))


def _forged_devices(world, rng, n, first_seen, spoof):
    """Devices a script reports: mismatched model, screen and OS unless spoofed consistently."""
    idx = make_devices(world, rng, n, first_seen, emulator=0.3 * (1 - spoof))
    D = world.devices
    bad = rng.random(n) >= spoof
    M = cat.DEVICE_MODELS
    other = rng.integers(0, len(M), n)
    screen = D["screen"][idx].copy()
    screen[bad] = np.array([M[i][2] for i in other[bad]], dtype=object)
    screen[bad & (rng.random(n) < 0.3)] = "1080x1920"
    osv = D["os_version"][idx].copy()
    flip = bad & (rng.random(n) < 0.4)
    osv[flip] = np.array([M[i][3][0] for i in other[flip]], dtype=object)
    app = D["app_version"][idx].copy()
    odd = bad & (rng.random(n) < 0.6)
    app[odd] = rng.choice(np.array(cat.ODD_APP_VERSIONS, dtype=object), odd.sum())
    D.set("screen", idx, screen[:])
    D.set("os_version", idx, osv)
    D.set("app_version", idx, app)
    return idx
