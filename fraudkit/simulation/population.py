"""Honest population: accounts, devices, networks, notes, daily activity, look-alikes.

Activity is heavy-tailed (lognormal rates), follows a daily rhythm, and every
like, collect, comment, share or follow of a person follows a view. The
look-alikes built here (family devices, campus IPs, carrier NAT IPs, viral fans) are labelled
so evaluation can measure false positives on them.
"""

from __future__ import annotations

import numpy as np

from fraudkit.randomness import check_random_state
from fraudkit.simulation import catalog as cat
from fraudkit.simulation.world import ACTION_CODES, DAY_US, HOUR_US, MIN_US, SEC_US, Events, World, component_seed

__all__ = ["build_population", "make_devices", "activity_day", "add_activity_block", "viral_bursts",
           "sample_ips", "EVENT_KEYS"]

EVENT_KEYS = ("ts", "acc", "dev", "ip", "action", "target", "typ", "camp")

_RESIDENTIAL = (36, 39, 42, 58, 59, 60, 61, 101, 106, 110, 111, 113, 114, 115, 116, 117, 118, 119, 120,
                121, 122, 123, 124, 125, 171, 175, 180, 182, 183, 202, 218, 219, 220, 221, 222)
_CARRIER = ((39, 144), (39, 156), (112, 96), (112, 97), (223, 104), (223, 160), (117, 136), (120, 229))
_DATACENTER = ((47, 96), (47, 100), (47, 242), (101, 132), (119, 28), (121, 40), (139, 224), (8, 210),
               (43, 128), (45, 76), (103, 116), (106, 52), (114, 55), (116, 62))


def sample_ips(rng: np.random.Generator, n: int, kind: str = "residential") -> np.ndarray:
    """Random IPv4 addresses (uint32) of a network kind: residential, carrier or datacenter."""
    if kind == "residential":
        o1 = rng.choice(_RESIDENTIAL, size=n)
        o2 = rng.integers(0, 256, size=n)
    else:
        table = np.array(_CARRIER if kind == "carrier" else _DATACENTER)
        pick = table[rng.integers(0, len(table), size=n)]
        o1, o2 = pick[:, 0], pick[:, 1]
    low = rng.integers(1, 65534, size=n)
    return ((o1.astype(np.uint32) << 24) | (o2.astype(np.uint32) << 16) | low.astype(np.uint32)).astype(np.uint32)


def make_devices(world: World, rng: np.random.Generator, n: int, first_seen_us, *, tier=None,
                 models=None, emulator=0.0, rooted=0.0, app_versions=None) -> np.ndarray:
    """Add ``n`` consistent devices (model fixes OS and screen) and return their indices."""
    M = cat.DEVICE_MODELS
    if models is None:
        pool = [i for i, m in enumerate(M) if (tier is None or m[4] in np.atleast_1d(tier)) and m[0] != "SM-G955N"]
        w = np.array([M[i][5] for i in pool])
        models = np.array(pool)[rng.choice(len(pool), size=n, p=w / w.sum())]
    models = np.broadcast_to(np.asarray(models), (n,))
    is_emu = rng.random(n) < emulator
    models = np.where(is_emu, len(M) - 1, models)
    model = np.array([M[i][0] for i in models], dtype=object)
    os_ = np.array([M[i][1] for i in models], dtype=object)
    screen = np.array([M[i][2] for i in models], dtype=object)
    osv = np.array([M[i][3][k % len(M[i][3])] for i, k in zip(models, rng.integers(0, 6, size=n))], dtype=object)
    if app_versions is None:
        v, p = zip(*cat.APP_VERSIONS)
        app_versions = rng.choice(np.array(v, dtype=object), size=n, p=np.array(p) / sum(p))
    root = (rng.random(n) < rooted) | (is_emu & (rng.random(n) < 0.5))
    return world.add_devices(model=model, os=os_, os_version=osv, screen=screen,
                             app_version=np.asarray(app_versions, dtype=object),
                             is_emulator=is_emu, is_rooted=root, fingerprint=cat.fingerprints(rng, n),
                             first_seen_us=np.broadcast_to(np.asarray(first_seen_us, dtype=np.int64), (n,)).copy())


def build_population(world: World) -> np.ndarray:
    """Create the honest accounts with their devices, networks, notes and look-alike groups."""
    sc = world.scenario
    P, L = sc.population, sc.lookalikes
    rng = check_random_state(component_seed(world.seed, "population"))
    n = int(P.n_accounts)
    start, end = world.start_us, world.end_us

    # registration: old accounts skewed to recent years, plus new sign-ups in the window
    new = rng.random(n) < P.new_account_fraction
    age_us = (rng.random(n) ** 1.6 * P.history_years * 365 + 1) * DAY_US
    reg = np.where(new, start + (rng.random(n) * (end - start - HOUR_US)).astype(np.int64), start - age_us.astype(np.int64))
    reg = reg + rng.integers(0, 60 * SEC_US, size=n)
    channel = rng.choice(np.array(["app", "web", "mini_program", "third_party"], dtype=object), size=n,
                         p=[0.62, 0.08, 0.15, 0.15])
    phone = cat.sample_phones(rng, n, P.virtual_phone_fraction)
    phone[rng.random(n) < P.no_phone_fraction] = None

    # households: singles, couples, families (share home IP and address)
    sizes = rng.choice([1, 2, 3, 4], size=n, p=[0.55, 0.28, 0.12, 0.05])
    hh = np.repeat(np.arange(n), sizes)[:n]
    rng.shuffle(hh)
    _, hh = np.unique(hh, return_inverse=True)
    n_hh = hh.max() + 1
    home_ips = sample_ips(rng, n_hh, "residential")

    # own phones: first seen up to three years ago, never after registration + a day
    # device ids reset on new phones and reinstalls: a third were first seen in the last three months
    life = np.where(rng.random(n) < 0.35, rng.random(n) * 90, rng.random(n) ** 0.8 * 3 * 365)
    life = (life * DAY_US).astype(np.int64)
    first_seen = np.minimum(start - life, reg + rng.integers(0, DAY_US, size=n))
    dev1 = make_devices(world, rng, n, first_seen, emulator=P.emulator_fraction, rooted=P.rooted_fraction)
    dev2 = np.full(n, -1, dtype=np.int64)
    has2 = rng.random(n) < P.second_device_fraction
    seen2 = np.minimum(first_seen[has2] + DAY_US * rng.integers(1, 300, has2.sum()), start - HOUR_US)
    dev2[has2] = make_devices(world, rng, int(has2.sum()), seen2)
    p_dev2 = np.where(has2, rng.uniform(0.05, 0.3, n), 0.0)

    # phone upgrades and app reinstalls (new device id; reinstall keeps the fingerprint)
    dev_new = dev1.copy()
    switch = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
    up = rng.random(n) < P.phone_upgrade_fraction
    t_up = start + (rng.random(up.sum()) * (end - start)).astype(np.int64)
    dev_new[up] = make_devices(world, rng, int(up.sum()), t_up)
    switch[up] = t_up
    re = (~up) & (rng.random(n) < P.reinstall_fraction)
    t_re = start + (rng.random(re.sum()) * (end - start)).astype(np.int64)
    dev_new[re] = _clone_devices(world, dev1[re], t_re)
    switch[re] = t_re

    web_frac = np.where(channel == "web", 0.5, P.web_fraction * rng.uniform(0, 2, n))
    p_mobile = np.clip(rng.beta(2, 2, n) * 2 * P.mobile_ip_fraction, 0, 0.95)
    vpn_ip = np.zeros(n, dtype=np.uint32)
    vpn = rng.random(n) < P.vpn_fraction
    # commercial VPN / proxy exit IPs: honest VPN users and attackers rent from the same providers
    vpn_pool = sample_ips(rng, max(20, n // 40), "datacenter")
    world.ip_pools["vpn"] = vpn_pool
    vpn_ip[vpn] = vpn_pool[rng.integers(0, len(vpn_pool), vpn.sum())]
    world.ip_pools["carrier"] = sample_ips(rng, max(200, int(1.5 * n)), "carrier")
    world.ip_pools["wifi"] = sample_ips(rng, max(1, L.public_wifi_ips), "residential")

    idx = world.accounts.add(
        reg_us=reg, channel=channel, phone=phone, dev1=dev1, dev2=dev2, dev_new=dev_new, switch_us=switch,
        p_dev2=p_dev2, web_frac=web_frac, home_ip=home_ips[hh], campus_ip=np.zeros(n, dtype=np.uint32),
        p_campus=np.zeros(n), nat_ip=np.zeros(n, dtype=np.uint32), p_mobile=p_mobile, vpn_ip=vpn_ip, carrier=rng.integers(0, 3, n).astype(np.int8),
        household=hh.astype(np.int64), pref=rng.integers(0, len(cat.NOTE_CATEGORIES), n).astype(np.int8),
        honest=np.ones(n, dtype=bool),
    )
    world.n_households = n_hh
    _bindings(world, rng, idx, reg, channel)
    _families(world, rng, idx, hh, reg)
    _campus(world, rng, idx, reg)
    _carrier_nat(world, idx)
    _notes(world, rng, idx, reg)

    rate = P.views_per_day * rng.lognormal(0, P.activity_sigma, n) * np.exp(-P.activity_sigma**2 / 4)
    add_activity_block(world, "honest", idx, rate, rng, from_us=reg)
    return idx


def add_activity_block(world: World, name: str, acc, rate, rng, *, from_us=None, until_us=None, scale=1.0):
    """Register accounts whose ordinary browsing :func:`activity_day` generates."""
    P = world.scenario.population
    n = len(acc)
    base = np.array([P.p_like, P.p_collect, P.p_comment, P.p_share, P.p_follow])
    props = np.clip(base[None, :] * rng.lognormal(0, 0.6, (n, 1)) * rng.lognormal(0, 0.3, (n, 5)), 0, 0.9)
    world.activity_blocks.append(dict(
        name=name, acc=np.asarray(acc), rate=np.asarray(rate, dtype=float) * scale, props=props,
        from_us=np.broadcast_to(world.start_us if from_us is None else from_us, (n,)).astype(np.int64),
        until_us=np.broadcast_to(world.end_us if until_us is None else until_us, (n,)).astype(np.int64),
        entropy=int(rng.integers(0, 2**62)),
    ))


def activity_day(world: World, block: dict, day: int) -> Events:
    """One day of ordinary browsing for one activity block (views, then reactions)."""
    rng = check_random_state([block["entropy"], day])
    ds = world.day_start(day)
    de = ds + DAY_US
    weekday = int(((ds // DAY_US) + 3) % 7)  # 1970-01-01 was a Thursday
    factor = 1.15 if weekday >= 5 else 1.0
    active = (block["from_us"] < de - HOUR_US) & (block["until_us"] > ds)
    nv = rng.poisson(block["rate"] * factor * active)
    pos = np.flatnonzero(nv)
    if len(pos) == 0:
        return Events.concat([], EVENT_KEYS)
    k = nv[pos]
    rep = np.repeat(np.arange(len(pos)), k)
    m = len(rep)
    nsess = np.minimum(k, 1 + np.minimum(rng.poisson(0.4 + 0.15 * np.sqrt(k)), 3))
    starts = world.rhythm_for(len(pos) * 4, rng).reshape(len(pos), 4)
    s = np.minimum((rng.random(m) * nsess[rep]).astype(np.int64), 3)
    spread = np.minimum(50 * MIN_US, 40 * SEC_US * k[rep])
    ts = ds + starts[rep, s] + (rng.random(m) * spread).astype(np.int64)
    b = pos[rep]
    ts = np.maximum(ts, block["from_us"][b] + MIN_US)
    ts = np.minimum(ts, np.minimum(de, block["until_us"][b]) - SEC_US)
    acc = block["acc"][b]
    pref = np.where(rng.random(m) < 0.55, world.accounts["pref"][acc], -1)
    note = world.note_sampler.sample(rng, pref, ds)
    return reactions(world, rng, acc, ts, note, block["props"][b])


def reactions(world: World, rng, acc, ts, note, props, *, typ=-1, camp=-1, view_lag=None) -> Events:
    """Views of ``note`` at ``ts`` and the reactions each view triggers (with ``props`` per view)."""
    m = len(acc)
    dev, ip = world.resolve(acc, ts, rng)
    note_ids = world.ids("note", note)
    parts = [event_block(ts, acc, dev, ip, "view", note_ids, typ, camp)]
    lags = {"like": 6, "collect": 10, "comment": 45, "share": 20, "follow": 15}
    for j, action in enumerate(("like", "collect", "comment", "share", "follow")):
        hit = rng.random(m) < props[:, j]
        if not hit.any():
            continue
        lag = (rng.lognormal(np.log(lags[action]), 0.8, hit.sum()) * SEC_US).astype(np.int64) + SEC_US
        tgt = note_ids[hit] if action != "follow" else world.ids("account", world.notes["author"][note[hit]])
        parts.append(event_block(ts[hit] + lag, acc[hit], dev[hit], ip[hit], action, tgt, typ, camp))
    return Events.concat(parts, EVENT_KEYS)


def viral_bursts(world: World) -> Events:
    """Notes going viral: hundreds of honest fans view and like within about an hour."""
    L = world.scenario.lookalikes
    rng = check_random_state(component_seed(world.seed, "lookalikes"))
    honest = np.flatnonzero(world.accounts["honest"])
    rate = world.activity_blocks[0]["rate"]
    parts = []
    n_fans = min(L.fans_per_viral, len(honest) // 4)
    for v in range(L.viral_notes if n_fans > 0 else 0):
        author = world.note_sampler.popular_author(rng)
        burst = world.start_us + int(rng.uniform(0.1, 0.9) * world.days * DAY_US)
        burst = burst - burst % DAY_US + int(rng.choice([12, 19, 20, 21])) * HOUR_US
        note = world.note_sampler.add_note(author, burst - int(rng.uniform(1, 6) * HOUR_US), hot=True)
        ok = honest[world.accounts["reg_us"][honest] < burst - DAY_US]
        w = np.sqrt(rate[ok]) + 0.05
        fans = rng.choice(ok, size=min(n_fans, len(ok)), replace=False, p=w / w.sum())
        ts = burst + (rng.lognormal(np.log(15), 0.9, len(fans)) * MIN_US).astype(np.int64)
        ts = np.minimum(ts, burst + 3 * HOUR_US)
        props = np.tile([0.9, 0.3, 0.08, 0.05, 0.15], (len(fans), 1))
        parts.append(reactions(world, rng, fans, ts, np.full(len(fans), note), props))
        world.label("account", world.ids("account", fans), "honest_viral_fan", world.ids("note", note))
    return Events.concat(parts, EVENT_KEYS)


# --- private helpers ----------------------------------------------------------


def event_block(ts, acc, dev, ip, action, target, typ, camp) -> Events:
    m = len(ts)
    return Events(dict(ts=np.asarray(ts, dtype=np.int64), acc=np.asarray(acc, dtype=np.int64),
                       dev=np.asarray(dev, dtype=np.int64), ip=np.asarray(ip, dtype=np.uint32),
                       action=np.full(m, ACTION_CODES[action], dtype=np.int8),
                       target=np.asarray(target, dtype=np.int64),
                       typ=np.broadcast_to(np.asarray(typ, dtype=np.int16), (m,)).copy(),
                       camp=np.broadcast_to(np.asarray(camp, dtype=np.int64), (m,)).copy()))


def _clone_devices(world: World, src, first_seen) -> np.ndarray:
    D = world.devices
    cols = {k: D[k][src] for k in ("model", "os", "os_version", "screen", "app_version", "is_emulator",
                                    "is_rooted", "fingerprint")}
    return world.add_devices(**cols, first_seen_us=np.asarray(first_seen, dtype=np.int64))


def _bindings(world, rng, idx, reg, channel):
    import pandas as pd

    rows = []
    for provider, p in (("wechat", 0.5), ("qq", 0.15), ("weibo", 0.1), ("apple", 0.12)):
        pp = np.where(channel == "third_party", min(1.0, p * 1.8), p)
        hit = rng.random(len(idx)) < pp
        rows.append(pd.DataFrame({"acc": idx[hit], "provider": provider,
                                  "bound_at": reg[hit] + (rng.exponential(60, hit.sum()) * DAY_US).astype(np.int64)}))
    df = pd.concat(rows, ignore_index=True)
    df["bound_at"] = np.minimum(df["bound_at"].to_numpy(), world.end_us - SEC_US)
    world.bindings.append(df)


def _families(world, rng, idx, hh, reg):
    L = world.scenario.lookalikes
    counts = np.bincount(hh)
    multi = np.flatnonzero(counts >= 2)
    n_fam = min(len(multi), int(round(L.shared_device_families * len(idx))))
    if n_fam == 0:
        return
    fam = rng.choice(multi, size=n_fam, replace=False)
    members = idx[np.isin(hh, fam)]
    fam_of = hh[members - idx[0]]
    first = world.start_us - (rng.random(n_fam) * 2 * 365 * DAY_US).astype(np.int64)
    shared = make_devices(world, rng, n_fam, first, tier=[0, 1])
    _, inv = np.unique(fam_of, return_inverse=True)
    dev = shared[inv]
    A = world.accounts
    kid = rng.random(len(members)) < 0.25
    A.set("dev2", members, dev)
    A.set("p_dev2", members, np.where(kid, 0.95, rng.uniform(0.3, 0.6, len(members))))
    world.label("account", world.ids("account", members), "honest_shared_device", world.ids("device", dev))


def _campus(world, rng, idx, reg):
    L = world.scenario.lookalikes
    size = min(L.accounts_per_campus, len(idx) // 8)
    if L.campus_ips <= 0 or size < 5:
        world.ip_pools["campus"] = np.zeros(0, dtype=np.uint32)
        return
    ips = sample_ips(rng, L.campus_ips, "residential")
    world.ip_pools["campus"] = ips
    members = rng.choice(idx, size=min(len(idx), L.campus_ips * size), replace=False)
    which = np.arange(len(members)) % L.campus_ips
    A = world.accounts
    A.set("campus_ip", members, ips[which])
    A.set("p_campus", members, rng.uniform(0.5, 0.9, len(members)))
    world.campus_members = (members, which)
    world.label("account", world.ids("account", members), "honest_shared_ip", ips[which].astype(np.int64))


def _carrier_nat(world, idx):
    """Mobile-carrier NAT IPs, each the exit of 20-200 unrelated honest accounts all day (own random stream)."""
    L = world.scenario.lookalikes
    if L.carrier_nat_ips <= 0 or L.accounts_per_carrier_nat <= 0:
        return
    rng = check_random_state(component_seed(world.seed, "carrier_nat"))
    A = world.accounts
    free = idx[A["campus_ip"][idx] == 0]
    lo, hi = max(2, L.accounts_per_carrier_nat // 5), max(3, int(L.accounts_per_carrier_nat * 1.8))
    sizes = rng.integers(lo, hi + 1, L.carrier_nat_ips)
    sizes = np.minimum(sizes, len(free) // (2 * L.carrier_nat_ips) + 1)
    ips = sample_ips(rng, L.carrier_nat_ips, "carrier")
    world.ip_pools["carrier_nat"] = ips
    members = rng.choice(free, size=int(sizes.sum()), replace=False)
    which = np.repeat(np.arange(L.carrier_nat_ips), sizes)
    A.set("nat_ip", members, ips[which])
    A.set("p_mobile", members, rng.uniform(0.6, 0.95, len(members)))
    world.label("account", world.ids("account", members), "honest_carrier_nat", ips[which].astype(np.int64))


def _notes(world, rng, idx, reg):
    P = world.scenario.population
    eligible = idx[reg < world.start_us - 7 * DAY_US]
    n_auth = max(5, int(P.author_fraction * len(idx)))
    authors = rng.choice(eligible, size=min(n_auth, len(eligible)), replace=False)
    pop = rng.lognormal(0, P.note_popularity_sigma, len(authors))
    k = rng.geometric(1 / P.notes_per_author, len(authors))
    note_author = np.repeat(authors, k)
    w = np.repeat(pop, k) * rng.lognormal(0, 0.8, len(note_author))
    pref = world.accounts["pref"][note_author]
    category = np.where(rng.random(len(note_author)) < 0.8, pref, rng.integers(0, len(cat.NOTE_CATEGORIES), len(note_author)))
    n = len(note_author)
    in_window = rng.random(n) < 0.25
    created = np.where(in_window, world.start_us + (rng.random(n) * world.days * DAY_US).astype(np.int64),
                       world.start_us - (rng.exponential(60, n) * DAY_US).astype(np.int64) - HOUR_US)
    created = np.maximum(created, world.accounts["reg_us"][note_author] + HOUR_US)
    world.notes.add(author=note_author, created_us=created, category=category.astype(np.int8), weight=w)
    world.author_pop = dict(zip(authors.tolist(), pop.tolist()))
    world.note_sampler = NoteSampler(world)


class NoteSampler:
    """Popularity-weighted sampling of notes published before a given time, by category."""

    def __init__(self, world: World):
        self.world = world
        w = world.notes["weight"]
        self._hot, self._low = np.quantile(w, 0.995), np.quantile(w, 0.05)
        self._build()

    def _build(self):
        self._dirty = False
        N = self.world.notes
        created, weight, category = N["created_us"], N["weight"], N["category"].astype(np.int64)
        self.order, self.created, self.cum = {}, {}, {}
        for c in range(-1, len(cat.NOTE_CATEGORIES)):
            sel = np.flatnonzero(category == c) if c >= 0 else np.arange(len(created))
            o = sel[np.argsort(created[sel], kind="stable")]
            self.order[c], self.created[c], self.cum[c] = o, created[o], np.cumsum(weight[o])

    def sample(self, rng, category, before_us) -> np.ndarray:
        if self._dirty:
            self._build()
        out = np.empty(len(category), dtype=np.int64)
        for c in np.unique(category):
            sel = np.flatnonzero(category == c)
            cnt = np.searchsorted(self.created[c], before_us)
            if cnt == 0:
                c, cnt = -1, max(1, np.searchsorted(self.created[-1], before_us))
            cum = self.cum[c]
            u = rng.random(len(sel)) * cum[cnt - 1]
            out[sel] = self.order[c][np.minimum(np.searchsorted(cum[:cnt], u, side="right"), cnt - 1)]
        return out

    def popular_author(self, rng) -> int:
        a = np.array(list(self.world.author_pop))
        p = np.array(list(self.world.author_pop.values()))
        top = a[np.argsort(-p)[: max(3, len(a) // 20)]]
        return int(rng.choice(top))

    def add_note(self, author, created_us, *, hot=False, weight=None) -> int:
        N = self.world.notes
        created_us = max(int(created_us), int(self.world.accounts["reg_us"][author]) + HOUR_US)
        if weight is None:
            weight = self._hot if hot else self._low
        i = N.add(author=np.array([author]), created_us=np.array([created_us], dtype=np.int64),
                  category=np.array([self.world.accounts["pref"][author]], dtype=np.int8),
                  weight=np.array([weight], dtype=float))[0]
        self._dirty = True
        return int(i)

    def notes_by_author(self) -> dict:
        """Note indices of each author, published before the window (computed once)."""
        if getattr(self, "_by_author", None) is None:
            N = self.world.notes
            old = np.flatnonzero(N["created_us"] < self.world.start_us)
            a = N["author"][old]
            o = np.argsort(a, kind="stable")
            keys, starts = np.unique(a[o], return_index=True)
            self._by_author = dict(zip(keys.tolist(), np.split(old[o], starts[1:])))
        return self._by_author
