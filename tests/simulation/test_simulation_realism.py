"""Realism and leak tests of the simulator on ``micro`` and ``demo-small``.

They check that campaigns have the configured structure, that honest
behaviour is heavy-tailed with a daily rhythm, that the look-alikes exist and
look like attackers on naive signals, that attackers leave the traces the
source talks describe, and that no single raw column separates fraud from
honest rows (see :func:`test_no_single_raw_column_separates_fraud`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from fraudkit.data.contract import FRAUD_TYPOLOGIES, TABLES
from fraudkit.simulation import generate, load_scenario
from fraudkit.simulation.catalog import DEVICE_MODELS


@pytest.fixture(scope="module")
def demo():
    return generate("demo-small")


@pytest.fixture(scope="module")
def micro():
    return generate("micro")


def _ids(t, typology, entity_type):
    lab = t["labels"]
    return set(lab.loc[(lab.typology == typology) & (lab.entity_type == entity_type), "entity_id"])


def _fraud_accounts(t):
    lab = t["labels"]
    fr = lab[(lab.entity_type == "account") & lab.typology.isin(FRAUD_TYPOLOGIES) & (lab.typology != "engagement_buyer")]
    return set(fr.entity_id)


# --- campaign structure ---------------------------------------------------------


@pytest.mark.parametrize("typology", ["offline_script", "device_farm", "nurtured_account", "group_scalper",
                                      "crowd_scalper", "coupon_abuser"])
def test_campaign_counts_and_sizes_match_the_scenario(demo, typology):
    cfg = getattr(load_scenario("demo-small").attackers, typology)
    lab = demo["labels"]
    acc = lab[(lab.typology == typology) & (lab.entity_type == "account")]
    sizes = acc.groupby("campaign_id").size()
    assert len(sizes) == cfg.campaigns
    assert (sizes == cfg.accounts_per_campaign).all()


def test_crowd_workers_come_from_a_shared_pool(demo):
    cfg = load_scenario("demo-small").attackers
    lab = demo["labels"]
    ev = lab[(lab.typology == "crowd_engagement") & (lab.entity_type == "interaction")]
    it = demo["interactions"].set_index("event_id").loc[ev.entity_id]
    per_campaign = it.assign(c=ev.campaign_id.to_numpy()).groupby("c")["account_id"].nunique()
    assert len(per_campaign) == cfg.crowd_engagement.campaigns
    assert (per_campaign == cfg.crowd_engagement.accounts_per_campaign).all()
    # workers take tasks from several campaigns
    n_workers = len(_ids(demo, "crowd_engagement", "account"))
    assert n_workers < per_campaign.sum()


@pytest.mark.parametrize("typology", ["offline_script", "device_farm", "nurtured_account", "crowd_engagement"])
def test_paid_actions_per_account_within_tolerance(demo, typology):
    cfg = getattr(load_scenario("demo-small").attackers, typology)
    it = demo["interactions"]
    paid = it[it.event_id.isin(_ids(demo, typology, "interaction")) & it.action.isin(["like"])]
    per_account_campaign = paid.groupby("account_id").size() / max(1, 1 if typology != "crowd_engagement" else 1)
    expected = min(cfg.actions_per_account, cfg.targets_per_campaign)
    mean = per_account_campaign.mean()
    if typology == "offline_script":
        mean = mean / 0.8  # scripts split their actions 80/20 between likes and collects
    if typology == "crowd_engagement":
        mean = paid.groupby(["account_id"]).size().sum() / (cfg.campaigns * cfg.accounts_per_campaign)
    assert 0.6 * expected <= mean <= 1.4 * expected, (mean, expected)


def test_farm_clones_share_every_parameter_and_fingerprint(demo):
    dev = demo["devices"][demo["devices"].device_id.isin(_ids(demo, "device_farm", "device"))]
    groups = dev.groupby("fingerprint")
    assert (groups.size() >= 2).mean() > 0.8
    assert (groups[["model", "screen", "os_version", "app_version"]].nunique() == 1).all().all()
    # batch-bought: one model per farm
    lab = demo["labels"]
    camp = lab[(lab.typology == "device_farm") & (lab.entity_type == "device")].set_index("entity_id")["campaign_id"]
    assert (dev.assign(c=dev.device_id.map(camp)).groupby("c")["model"].nunique() == 1).all()


def test_honest_devices_never_contradict_the_catalogue_but_scripts_do(demo):
    screen = {m[0]: m[2] for m in DEVICE_MODELS}
    dev = demo["devices"]
    wrong = dev.screen != dev.model.map(screen)
    fraud = dev.device_id.isin(set(demo["labels"].query("entity_type == 'device'").entity_id))
    assert not wrong[~fraud].any()
    assert wrong[dev.device_id.isin(_ids(demo, "offline_script", "device"))].mean() > 0.3


def test_scripts_like_without_views_and_people_always_view_first(demo):
    it = demo["interactions"]
    views = it[it.action == "view"].groupby(["account_id", "target_id"])["ts"].min()
    likes = it[it.action == "like"]
    first_view = pd.MultiIndex.from_frame(likes[["account_id", "target_id"]])
    seen = views.reindex(first_view).to_numpy()
    viewed_before = pd.notna(seen) & (seen <= likes.ts.to_numpy())
    script = likes.event_id.isin(_ids(demo, "offline_script", "interaction")).to_numpy()
    honest = ~likes.account_id.isin(_fraud_accounts(demo)).to_numpy()
    assert viewed_before[honest].all()
    assert viewed_before[script].mean() < 0.05


def test_script_gaps_are_regular_and_honest_gaps_are_not(demo):
    it = demo["interactions"].sort_values("ts")

    def cv(df):
        g = df.groupby("account_id")["ts"].apply(lambda s: np.diff(s.astype("int64").to_numpy()))
        g = g[g.apply(len) >= 4]
        return g.apply(lambda d: d.std() / d.mean())

    script = cv(it[it.event_id.isin(_ids(demo, "offline_script", "interaction")) & (it.action != "follow")])
    honest_acc = it.loc[~it.account_id.isin(_fraud_accounts(demo)), "account_id"].drop_duplicates().head(300)
    honest = cv(it[it.account_id.isin(honest_acc)])
    assert script.median() < 0.2 < 1.0 < honest.median()


def test_consolidation_addresses_are_few_and_scalper_addresses_vary(demo):
    lab = demo["labels"]
    o = demo["orders"]
    for typ, most in (("crowd_scalper", 3), ("group_scalper", None)):
        ids = lab[(lab.typology == typ) & (lab.entity_type == "order")].set_index("entity_id")["campaign_id"]
        mine = o[o.order_id.isin(ids.index)].assign(c=lambda d: d.order_id.map(ids))
        per = mine.groupby("c")["address"].nunique()
        if most:
            assert (per <= most).all()
        else:  # a few base addresses typed many ways
            assert (per > 3).all()
            bases = mine.groupby("c")["address"].apply(lambda s: s.str.split("号").str[0].nunique())
            assert (bases <= 3).all()


def test_crowd_scalper_receipts_are_aligned(demo):
    lab = demo["labels"]
    ids = lab[(lab.typology == "crowd_scalper") & (lab.entity_type == "order")].set_index("entity_id")["campaign_id"]
    o = demo["orders"][demo["orders"].order_id.isin(ids.index)].assign(c=lambda d: d.order_id.map(ids))
    spread = o.groupby("c")["received_at"].agg(lambda s: (s.max() - s.min()) / pd.Timedelta(hours=1))
    assert (spread <= 4).all()


def test_coupon_abusers_register_just_before_and_claim_at_the_opening(demo):
    acc = demo["accounts"].set_index("account_id")
    ab = _ids(demo, "coupon_abuser", "account")
    claims = demo["coupon_claims"]
    mine = claims[claims.claim_id.isin(_ids(demo, "coupon_abuser", "coupon_claim"))]
    promo = demo["promotions"].set_index("promotion_id")["starts_at"]
    lead = (mine.promotion_id.map(promo) - mine.account_id.map(acc.registered_at)) / pd.Timedelta(days=1)
    assert lead.between(0, 3.1).all()
    after = (mine.ts - mine.promotion_id.map(promo)) / pd.Timedelta(minutes=1)
    assert (after >= 0).all() and (after < 10).mean() > 0.5
    virtual = acc.phone.str[:3].isin(["170", "171", "165", "167"])
    honest = ~acc.index.isin(_fraud_accounts(demo))
    assert virtual[list(ab)].mean() > 3 * virtual[honest].mean() > 0


def test_nurtured_survivors_move_to_cheap_new_phones(demo):
    sc = load_scenario("demo-small")
    ban = pd.Timestamp(sc.start) + pd.Timedelta(days=sc.attackers.ban_wave_day * sc.days)
    tier = {m[0]: m[4] for m in DEVICE_MODELS}
    it = demo["interactions"]
    nur = it[it.account_id.isin(_ids(demo, "nurtured_account", "account")) & it.device_id.notna()]
    late = nur[nur.ts > ban + pd.Timedelta(days=2)]
    dev = demo["devices"].set_index("device_id")
    used = dev.loc[late.device_id.unique().astype("int64")]
    assert len(late) > 0 and (used.first_seen >= ban).mean() > 0.8
    assert (used.model.map(tier) == 0).mean() > 0.8


# --- honest behaviour -------------------------------------------------------------


def test_honest_activity_is_heavy_tailed(demo):
    it = demo["interactions"]
    honest = it[~it.account_id.isin(_fraud_accounts(demo))]
    per = honest.groupby("account_id").size().sort_values(ascending=False)
    assert per.head(max(1, len(per) // 100)).sum() / per.sum() > 0.10
    views = honest[honest.action == "view"].groupby("target_id").size().sort_values(ascending=False)
    assert views.head(max(1, len(views) // 100)).sum() / views.sum() > 0.10
    # Zipf-like: log count falls roughly linearly in log rank over the head
    r = np.arange(1, 201)
    slope = np.polyfit(np.log(r), np.log(views.to_numpy()[:200]), 1)[0]
    assert -2.5 < slope < -0.3


def test_daily_rhythm(demo):
    it = demo["interactions"]
    hour = it.loc[~it.account_id.isin(_fraud_accounts(demo)), "ts"].dt.hour
    share = hour.value_counts(normalize=True).sort_index()
    assert share.loc[19:22].mean() > 3 * share.loc[2:5].mean()
    assert share.idxmax() in (19, 20, 21, 22)


def test_lookalikes_exist_in_the_stated_sizes(demo):
    L = load_scenario("demo-small").lookalikes
    lab = demo["labels"].query("entity_type == 'account'")
    size = lambda typ: lab[lab.typology == typ].groupby("campaign_id").size()  # noqa: E731
    assert size("honest_shared_device").between(2, 4).all()
    assert (size("honest_shared_ip") == L.accounts_per_campus).all() and len(size("honest_shared_ip")) == L.campus_ips
    # a fan of two viral notes (or a buyer in two flash sales) is labelled with the first group only
    for typ, n, groups in (("honest_viral_fan", L.fans_per_viral, L.viral_notes),
                           ("honest_flash_sale", L.buyers_per_flash, L.flash_sales)):
        s = size(typ)
        assert len(s) == groups and s.max() == n and s.min() >= 0.8 * n, (typ, s)


def test_lookalikes_look_like_attackers_on_naive_signals(demo):
    it = demo["interactions"]
    fraud = _fraud_accounts(demo)
    # more accounts behind the busiest honest IP (campus) than behind any farm IP
    per_ip = it.groupby("ip")["account_id"].nunique()
    honest_ips = it.loc[~it.account_id.isin(fraud), "ip"].unique()
    farm_ips = it.loc[it.event_id.isin(_ids(demo, "device_farm", "interaction")), "ip"].unique()
    assert per_ip.reindex(honest_ips).max() > per_ip.reindex(farm_ips).max()
    # the viral burst is faster than any paid burst: more likes in its busiest hour
    likes = it[it.action == "like"].assign(h=lambda d: d.ts.dt.floor("h"))
    hourly = likes.groupby(["target_id", "h"]).size()
    viral = _ids(demo, "honest_viral_fan", "account")
    viral_notes = set(demo["labels"].query("typology == 'honest_viral_fan'").campaign_id)
    buyer_notes = _ids(demo, "engagement_buyer", "note")
    top = hourly.groupby(level=0).max()
    assert top.reindex(list(viral_notes)).min() > top.reindex(list(buyer_notes)).max()
    assert len(viral) > 0
    # flash-sale crowds buy within minutes, like scalpers
    o = demo["orders"]
    crowd = demo["labels"].query("typology == 'honest_flash_sale'")
    flash = o.merge(crowd, left_on=["account_id", "promotion_id"], right_on=["entity_id", "campaign_id"])
    limited = flash.product_id.isin(demo["products"].query("limited_stock").product_id)
    start = flash.promotion_id.map(demo["promotions"].set_index("promotion_id")["starts_at"])
    assert limited.mean() > 0.9
    assert ((flash.ts - start) < pd.Timedelta(minutes=10)).mean() > 0.8


def test_buyers_are_notes_honest_users_mostly_ignore(demo):
    it = demo["interactions"]
    honest_views = it[(it.action == "view") & ~it.account_id.isin(_fraud_accounts(demo))]
    per_note = honest_views.groupby("target_id").size().reindex(demo["notes"].note_id, fill_value=0)
    buyers = per_note.reindex(list(_ids(demo, "engagement_buyer", "note")))
    assert buyers.median() < per_note.median()
    assert (per_note.rank(pct=True).reindex(buyers.index) < 0.8).mean() > 0.9


def test_blacklist_covers_only_part_of_attacker_proxies(demo):
    bl = set(demo["list_entries"].query("list_name == 'proxy_ips'").entity_id)
    it = demo["interactions"]
    att = it.loc[it.event_id.isin(_ids(demo, "offline_script", "interaction")), "ip"].unique()
    covered = np.isin(att, list(bl)).mean()
    assert 0.05 < covered < 0.7
    honest_ips = set(it.loc[~it.account_id.isin(_fraud_accounts(demo)), "ip"])
    assert bl & honest_ips  # honest VPN users are on it too


def test_black_market_prices_rise_after_the_ban_wave(demo):
    intel = demo["intelligence"]
    for item in ("aged_account", "like_per_100"):
        p = intel[intel["item"] == item].groupby("date")["price"].mean()
        assert p.tail(3).mean() > 1.2 * p.head(3).mean()


def test_evasive_scenario_throttles_scripts(demo):
    ev = generate("evasive")

    def median_gap(t):
        it = t["interactions"]
        s = it[it.event_id.isin(_ids(t, "offline_script", "interaction"))].sort_values("ts")
        gaps = s.groupby("account_id")["ts"].diff().dropna()
        return gaps.groupby(s.loc[gaps.index, "account_id"]).median().median()

    assert median_gap(ev) > 5 * median_gap(demo)
    dev = ev["devices"]
    spoofed = dev[dev.device_id.isin(_ids(ev, "offline_script", "device"))]
    screen = {m[0]: m[2] for m in DEVICE_MODELS}
    assert (spoofed.screen != spoofed.model.map(screen)).mean() < 0.2


# --- leak test ------------------------------------------------------------------------


def _encoded_auc(df, y, col, kind, train):
    """AUROC (direction-free) of one raw column scored on the rows not in ``train``."""
    s = df[col]
    test = ~train
    if kind == "string":
        v = s.fillna("<NA>")
        stats = pd.DataFrame({"v": v[train].to_numpy(), "y": y[train]}).groupby("v")["y"].agg(["sum", "count"])
        prior = y[train].mean()
        target = ((stats["sum"] + 10 * prior) / (stats["count"] + 10))
        scores = [v[test].map(target).fillna(prior).to_numpy(), v[test].map(stats["count"]).fillna(0).to_numpy()]
    elif kind == "timestamp":
        scores = [s.astype("int64").where(s.notna(), -1).to_numpy(dtype=float)[test]]
    else:
        scores = [pd.to_numeric(s.astype("float64") if kind != "bool" else s.astype(int)).fillna(-1).to_numpy()[test]]
    return max(max(a, 1 - a) for a in (roc_auc_score(y[test], x) for x in scores))


def test_no_single_raw_column_separates_fraud(demo):
    """No raw column separates fraud rows from honest rows: AUROC < 0.9 for every table and column.

    How it is computed, per table: a row is fraud when its entity is labelled
    with a fraud typology (events by their own label; accounts, devices and
    notes by theirs; logins and bindings by their account's). Rows are split
    in two halves *by account* (the acting account for event tables, the
    row's own key otherwise), so an encoding cannot memorise one account's
    own rows. Each column is turned into one number per row: numbers and ids
    as they are, timestamps as integers, booleans as 0/1, nulls as -1;
    strings by two encodings fit on the first half and applied to the second
    — target encoding (fraud rate of the value, smoothed towards the prior
    with weight 10) and frequency encoding (count in the first half). The
    AUROC of the score against the label on the second half, taken in the
    better direction and the better encoding, must stay below 0.9.
    """
    lab = demo["labels"]
    fr = lab[lab.typology.isin(FRAUD_TYPOLOGIES)]
    ids = lambda et: set(fr.loc[fr.entity_type == et, "entity_id"])  # noqa: E731
    accounts = ids("account")
    plan = {"accounts": ("account_id", accounts), "devices": ("device_id", ids("device")),
            "notes": ("note_id", ids("note")), "interactions": ("event_id", ids("interaction")),
            "orders": ("order_id", ids("order")), "coupon_claims": ("claim_id", ids("coupon_claim")),
            "logins": ("account_id", accounts), "bindings": ("account_id", accounts)}
    rng = np.random.default_rng(0)
    worst = {}
    for name, (key, positive) in plan.items():
        df = demo[name]
        y = df[key].isin(positive).to_numpy().astype(int)
        assert 0 < y.sum() < len(y), name
        group = df["account_id"] if "account_id" in df else df[key]
        coin = pd.Series(rng.random(group.nunique()), index=group.unique())
        train = (group.map(coin) < 0.5).to_numpy()
        for col in TABLES[name].column_names:
            worst[f"{name}.{col}"] = _encoded_auc(df, y, col, TABLES[name].column(col).dtype, train)
    leaks = {k: round(v, 3) for k, v in worst.items() if v >= 0.9}
    assert not leaks, leaks
    assert max(worst.values()) > 0.6  # the traces exist: some columns do carry signal


@pytest.mark.parametrize("seed", [0, 1])
def test_devices_are_first_seen_no_later_than_their_first_use(demo, seed):
    """``devices.first_seen`` is when the platform first saw the device: no login, interaction, order
    or claim uses it earlier. Logins are placed seconds before the event they open, which used to put
    some before the device's first sight (micro seed 1: a login 23 s early)."""
    t = demo if seed == 0 else generate("micro", seed=seed)
    first_seen = t["devices"].set_index("device_id")["first_seen"]
    uses = pd.concat([t[name][["device_id", "ts"]].dropna(subset=["device_id"])
                      for name in ("logins", "interactions", "orders", "coupon_claims")], ignore_index=True)
    first_use = uses.groupby("device_id")["ts"].min()
    early = first_use < first_seen.reindex(first_use.index)
    assert first_use.index.isin(first_seen.index).all()
    assert not early.any(), (f"{int(early.sum())} devices used before first_seen, e.g. "
                             f"{first_use[early].index[0]}: first used {first_use[early].iloc[0]}, "
                             f"first_seen {first_seen[first_use[early].index[0]]}")
