"""Risk perception inputs: threat-intel lists and black-market prices."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fraudkit.randomness import check_random_state, spawn
from fraudkit.simulation.catalog import ip_to_str
from fraudkit.simulation.world import DAY_US, World, component_seed

__all__ = ["list_entries", "intelligence"]

_ITEMS = {  # item: (base price in CNY, rise after the ban wave)
    "aged_account": (12.0, 0.6),
    "new_account": (1.5, 0.3),
    "like_per_100": (6.0, 0.5),
    "collect_per_100": (8.0, 0.4),
    "follower_per_1000": (35.0, 0.3),
    "sms_code": (0.8, 0.15),
    "proxy_ip_day": (3.0, 0.05),
}


def list_entries(world: World) -> pd.DataFrame:
    """A third-party ``proxy_ips`` blacklist (partial coverage, a few honest VPNs) and a few other lists."""
    M = world.scenario.market
    rng = check_random_state(component_seed(world.seed, "market"))
    used = np.unique(np.concatenate(world.proxy_ips_used)) if world.proxy_ips_used else np.zeros(0, np.uint32)
    dc = used[(used >> np.uint32(24)) != 0]
    listed = dc[rng.random(len(dc)) < M.blacklist_coverage]
    vpn = world.ip_pools.get("vpn", np.zeros(0, np.uint32))
    vpn = rng.choice(vpn, size=min(M.honest_vpn_listed, len(vpn)), replace=False) if len(vpn) else vpn
    ips = np.concatenate([listed, vpn]).astype(np.uint32)
    n = len(ips)
    added = world.start_us - (rng.uniform(1, 90, n) * DAY_US).astype(np.int64)
    rows = [pd.DataFrame({"list_type": "blacklist", "list_name": "proxy_ips", "entity_type": "ip",
                          "entity_id": ip_to_str(ips), "scope": "global", "reason": "threat-intel proxy feed",
                          "added_at": added, "expires_at": added + 180 * DAY_US})]
    # carrier NAT IPs wrongly graylisted after complaints (honest look-alike in a list)
    carrier = world.ip_pools["carrier"][:3]
    rows.append(pd.DataFrame({"list_type": "graylist", "list_name": "high_velocity_ips", "entity_type": "ip",
                              "entity_id": ip_to_str(carrier), "scope": "scene:like",
                              "reason": "many accounts per day", "added_at": world.start_us - 10 * DAY_US,
                              "expires_at": world.start_us + 20 * DAY_US}))
    if world.commerce is not None:
        fest = world.commerce["promos"][0]
        phones = world.accounts["phone"][~world.accounts["honest"]]
        phones = np.array([p for p in phones if p is not None and p[:3] in ("170", "171", "165", "167")], dtype=object)
        phones = phones[rng.random(len(phones)) < 0.3]
        rows.append(pd.DataFrame({"list_type": "graylist", "list_name": "sms_platform_phones", "entity_type": "phone",
                                  "entity_id": phones, "scope": f"promotion:{fest['id']}",
                                  "reason": "number seen on an SMS-code platform",
                                  "added_at": fest["start"] - 2 * DAY_US, "expires_at": -1}))
    df = pd.concat(rows, ignore_index=True)
    df.insert(0, "entry_id", world.ids("entry", np.arange(len(df))))
    df["added_at"] = _ts(df["added_at"])
    exp = df["expires_at"].to_numpy(dtype=np.int64)
    df["expires_at"] = pd.Series(np.where(exp < 0, np.datetime64("NaT"), exp.astype("datetime64[us]")),
                                 dtype="datetime64[us]")
    return df


def intelligence(world: World) -> pd.DataFrame:
    """Daily black-market prices per source; they rise after the mid-window ban wave."""
    M = world.scenario.market
    rng = spawn(component_seed(world.seed, "market"), 1)[0]
    days = np.arange(world.days)
    ban = world.scenario.attackers.ban_wave_day * world.days
    rows = []
    for s in range(max(1, M.intel_sources)):
        source = ("qq_group", "telegram_channel", "task_platform", "forum", "reseller_site")[s % 5] + (f"_{s // 5}" if s >= 5 else "")
        for item, (base, rise) in _ITEMS.items():
            ramp = np.clip((days - ban) / 4.0, 0, 1) * rise
            p = base * rng.lognormal(0, 0.15) * (1 + ramp) * rng.lognormal(0, 0.05, len(days))
            rows.append(pd.DataFrame({"date": world.start_us + days * DAY_US, "item": item,
                                      "price": np.round(p, 2), "source": source}))
    df = pd.concat(rows, ignore_index=True)
    df["date"] = _ts(df["date"])
    return df


def _ts(us):
    return pd.Series(np.asarray(us, dtype=np.int64).astype("datetime64[us]"))
