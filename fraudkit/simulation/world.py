"""The simulator's internal state: entity arrays, ids, resources, labels.

Entities are built with internal row indices (``0..n-1`` per entity type);
public ids come from a keyed Feistel permutation of those indices, so ids are
int64, unique, in random order and computable chunk by chunk without a global
shuffle. Nothing here is public API.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from fraudkit.data.contract import ACTIONS, TYPOLOGIES
from fraudkit.randomness import check_random_state
from fraudkit.simulation.catalog import HOURLY_RHYTHM

__all__ = ["World", "Cols", "IdMaker", "Events", "DAY_US", "HOUR_US", "MIN_US", "SEC_US", "ACTION_CODES",
           "TYPOLOGY_CODES", "component_seed"]

SEC_US = 1_000_000
MIN_US = 60 * SEC_US
HOUR_US = 60 * MIN_US
DAY_US = 24 * HOUR_US

ACTION_CODES = {a: i for i, a in enumerate(ACTIONS)}
TYPOLOGY_CODES = {t: i for i, t in enumerate(TYPOLOGIES)}

_COMPONENTS = ("ids", "population", "lookalikes", "commerce", "market", "offline_script", "device_farm",
               "nurtured_account", "crowd_engagement", "group_scalper", "crowd_scalper", "coupon_abuser",
               "buyers", "activity", "carrier_nat", "group_buy")


def component_seed(seed: int, name: str) -> np.random.SeedSequence:
    """Independent seed sequence of one simulator component (stable when others change)."""
    return np.random.SeedSequence(int(seed), spawn_key=(_COMPONENTS.index(name),))


class IdMaker:
    """Keyed bijection of internal indices onto 40-bit ids (four-round Feistel)."""

    _TYPES = ("account", "device", "note", "merchant", "product", "promotion", "order", "interaction",
              "coupon_claim", "coupon", "login", "binding", "campaign", "entry")

    def __init__(self, seed: int):
        rng = check_random_state(component_seed(seed, "ids"))
        self._keys = {t: rng.integers(1, 2**20, size=4, dtype=np.uint64) for t in self._TYPES}

    def __call__(self, kind: str, idx) -> np.ndarray:
        x = np.atleast_1d(np.asarray(idx, dtype=np.uint64))
        m = np.uint64(2**20 - 1)
        left, right = x >> np.uint64(20), x & m
        for k in self._keys[kind]:
            f = ((right * np.uint64(0x9E3779B1) + k) ^ (right >> np.uint64(5))) * np.uint64(0x85EBCA6B)
            left, right = right, left ^ ((f >> np.uint64(11)) & m)
        return ((left << np.uint64(20)) | right).astype(np.int64) + 1


class Cols:
    """Column store grown block by block (amortised doubling); ``[name]`` is a view of the filled rows."""

    def __init__(self):
        self._buf: dict[str, np.ndarray] = {}
        self.n = 0

    def add(self, **cols) -> np.ndarray:
        sizes = {len(v) for v in cols.values()}
        if len(sizes) != 1:
            raise ValueError(f"columns of different lengths: {sizes}")
        m = sizes.pop()
        if self._buf and set(cols) != set(self._buf):
            raise KeyError(f"columns differ: {sorted(set(cols) ^ set(self._buf))}")
        start, self.n = self.n, self.n + m
        for k, v in cols.items():
            v = np.asarray(v)
            buf = self._buf.get(k)
            if buf is None:
                buf = np.empty(max(16, 2 * m), dtype=v.dtype)
            elif len(buf) < self.n:
                grown = np.empty(max(2 * len(buf), self.n), dtype=buf.dtype)
                grown[:start] = buf[:start]
                buf = grown
            buf[start:self.n] = v
            self._buf[k] = buf
        return np.arange(start, self.n, dtype=np.int64)

    def __getitem__(self, name) -> np.ndarray:
        return self._buf[name][: self.n]

    def set(self, name, idx, values):
        """Overwrite ``name`` at ``idx`` (used when attackers take over resources)."""
        self._buf[name][np.asarray(idx)] = values


@dataclass
class Events:
    """A batch of events with internal indices (interactions, orders or claims)."""

    cols: dict = field(default_factory=dict)

    @staticmethod
    def concat(batches, keys) -> "Events":
        batches = [b for b in batches if b is not None and len(b)]
        if not batches:
            return Events({k: np.empty(0, dtype=np.int64) for k in keys})
        return Events({k: np.concatenate([b.cols[k] for b in batches]) for k in keys})

    def __len__(self):
        return len(next(iter(self.cols.values()))) if self.cols else 0

    def take(self, idx) -> "Events":
        return Events({k: v[idx] for k, v in self.cols.items()})


class World:
    """Mutable build state of one simulation run."""

    def __init__(self, scenario, seed: int):
        self.scenario = scenario
        self.seed = int(seed)
        self.ids = IdMaker(seed)
        self.start_us = int(pd.Timestamp(scenario.start).value // 1000)
        self.days = int(scenario.days)
        self.end_us = self.start_us + self.days * DAY_US
        self.accounts = Cols()
        self.devices = Cols()
        self.notes = Cols()
        self.bindings: list[pd.DataFrame] = []
        self.labels: list[pd.DataFrame] = []
        self.activity_blocks: list[dict] = []
        self.interaction_parts: list[Events] = []
        self.order_parts: list[Events] = []
        self.claim_parts: list[Events] = []
        self.campaigns = 0
        self.ip_pools: dict[str, np.ndarray] = {}
        self.proxy_ips_used: list[np.ndarray] = []
        self.commerce = None  # filled by commerce.build_shop
        self.households = None  # address strings per household

    # --- ids and labels -------------------------------------------------------

    def new_campaigns(self, n: int) -> np.ndarray:
        idx = np.arange(self.campaigns, self.campaigns + n)
        self.campaigns += n
        return self.ids("campaign", idx)

    def label(self, entity_type: str, entity_ids, typology: str, campaign_ids):
        entity_ids = np.asarray(entity_ids, dtype=np.int64)
        camp = np.broadcast_to(np.asarray(campaign_ids, dtype=np.int64), entity_ids.shape)
        self.labels.append(pd.DataFrame({"entity_type": entity_type, "entity_id": entity_ids,
                                         "typology": typology, "campaign_id": camp}))

    # --- time -----------------------------------------------------------------

    def day_of(self, ts_us) -> np.ndarray:
        return (np.asarray(ts_us) - self.start_us) // DAY_US

    def day_start(self, day) -> int:
        return self.start_us + int(day) * DAY_US

    # --- resources --------------------------------------------------------------

    def add_devices(self, **cols) -> np.ndarray:
        return self.devices.add(**cols)

    def resolve(self, acc: np.ndarray, ts: np.ndarray, rng: np.random.Generator):
        """Device index (-1 = none) and IP (uint32) an account uses at ``ts``.

        Follows each account's habits: its phone (switching to the new one
        after ``switch_us``), a second device sometimes, the web sometimes,
        home broadband, the carrier's changing NAT IPs (or the one shared
        carrier NAT IP of an ``honest_carrier_nat`` account), campus Wi-Fi in
        the daytime, a VPN, and now and then a public hotspot.
        """
        A = self.accounts
        n = len(acc)
        dev = np.where(ts >= A["switch_us"][acc], A["dev_new"][acc], A["dev1"][acc])
        dev2 = A["dev2"][acc]
        use2 = (dev2 >= 0) & (rng.random(n) < A["p_dev2"][acc])
        dev = np.where(use2, dev2, dev)
        dev = np.where(rng.random(n) < A["web_frac"][acc], -1, dev)

        hour = (ts - self.start_us) // HOUR_US
        hod = hour % 24
        ip = A["home_ip"][acc].copy()
        u = rng.random(n)
        mobile = u < A["p_mobile"][acc]
        pool = self.ip_pools["carrier"]
        h = (acc.astype(np.uint64) * np.uint64(2654435761) + (hour // 3).astype(np.uint64) * np.uint64(40503)
             + A["carrier"][acc].astype(np.uint64) * np.uint64(7919))
        ip = np.where(mobile, pool[(h % np.uint64(len(pool))).astype(np.int64)], ip)
        nat = A["nat_ip"][acc]
        ip = np.where(mobile & (nat > 0), nat, ip)
        campus = A["campus_ip"][acc]
        on_campus = (campus > 0) & (hod >= 8) & (hod < 23) & (rng.random(n) < A["p_campus"][acc])
        ip = np.where(on_campus, campus, ip)
        vpn = A["vpn_ip"][acc]
        ip = np.where((vpn > 0) & (rng.random(n) < 0.5), vpn, ip)
        wifi = self.ip_pools["wifi"]
        hotspot = rng.random(n) < 0.012
        ip = np.where(hotspot, wifi[rng.integers(0, len(wifi), n)], ip)
        return dev.astype(np.int64), ip.astype(np.uint32)

    def rhythm_for(self, n, rng, rhythm=HOURLY_RHYTHM):
        hours = rng.choice(24, size=n, p=rhythm)
        return hours * HOUR_US + rng.integers(0, HOUR_US, size=n)
