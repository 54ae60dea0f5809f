"""A small synthetic world for the shared-infrastructure tests: households, one carrier NAT IP, one ring.

* 300 households on their own home IPs (1-3 accounts each, one device per account);
* a carrier NAT IP used all day for 14 days by 60 unrelated, old, active accounts of those households;
* a ring of 12 new accounts on 3 devices and one IP, logging in one after another within 20 minutes on each
  of 3 days, all shipping to one drop address.
"""

import numpy as np
import pandas as pd

T0 = pd.Timestamp("2024-06-01")
NAT_IP = "39.144.0.7"
RING_IP = "101.7.7.7"


def infra_world(seed=0):
    rng = np.random.default_rng(seed)
    sizes = rng.choice([1, 2, 3], size=300, p=[0.5, 0.35, 0.15])
    hh = np.repeat(np.arange(300), sizes)
    n = len(hh)
    acc = np.array([f"h{i:04d}" for i in range(n)], dtype=object)
    rows = []
    for day in range(14):  # one home login a day for most accounts
        on = rng.random(n) < 0.6
        rows.append(pd.DataFrame({"account_id": acc[on], "device_id": "d" + pd.Series(acc[on]),
                                  "ip": [f"58.1.{h // 250}.{h % 250 + 1}" for h in hh[on]],
                                  "ts": T0 + pd.Timedelta(days=day) + pd.to_timedelta(rng.integers(0, 86400, on.sum()), "s")}))
    nat = rng.choice(acc, 60, replace=False)
    for day in range(14):  # the NAT: every member most days, at any hour
        on = nat[rng.random(60) < 0.7]
        rows.append(pd.DataFrame({"account_id": on, "device_id": "d" + pd.Series(on), "ip": NAT_IP,
                                  "ts": T0 + pd.Timedelta(days=day) + pd.to_timedelta(rng.integers(0, 86400, len(on)), "s")}))
    ring = np.array([f"r{i:02d}" for i in range(12)], dtype=object)
    for day in (3, 7, 11):  # account switching: one after another
        rows.append(pd.DataFrame({"account_id": ring, "device_id": [f"rd{i % 3}" for i in range(12)], "ip": RING_IP,
                                  "ts": T0 + pd.Timedelta(days=day, hours=20) + pd.to_timedelta(np.arange(12) * 90, "s")}))
    logins = pd.concat(rows, ignore_index=True)
    logins.insert(0, "login_id", np.arange(len(logins)))
    accounts = pd.DataFrame({"account_id": np.r_[acc, ring],
                             "registered_at": np.r_[[T0 - pd.Timedelta(days=400)] * n, [T0 - pd.Timedelta(days=5)] * 12],
                             "register_channel": "app", "phone": None})
    orders = pd.DataFrame({"order_id": np.arange(12), "account_id": ring, "device_id": [f"rd{i % 3}" for i in range(12)],
                           "ip": RING_IP, "product_id": 1, "address": "drop address 9", "receiver_phone": None,
                           "ts": T0 + pd.Timedelta(days=7, hours=21) + pd.to_timedelta(np.arange(12), "min")})
    return {"accounts": accounts, "logins": logins, "orders": orders}, set(nat), set(ring)
