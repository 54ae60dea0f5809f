"""Scenario configuration: a frozen dataclass tree read from YAML.

A scenario file is YAML with the sections below; every key has a default, so a
file only states what differs. ``extends: <name>`` starts from another named
scenario (or a path) and overrides it key by key. Unknown keys are rejected
with an error naming the key, the section and the file.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from datetime import datetime
from pathlib import Path

from fraudkit.data.yamlfile import read_yaml
from fraudkit.errors import FraudkitError

__all__ = [
    "Scenario",
    "PopulationConfig",
    "LookalikeConfig",
    "EcommerceConfig",
    "AttackerConfig",
    "AttackersConfig",
    "MarketConfig",
    "ScenarioError",
    "load_scenario",
    "list_scenarios",
    "scenario_to_dict",
    "SCENARIO_DIR",
]

TRAIN_SEED_OFFSET = 1000
"""The demo's training world is the same scenario simulated with ``seed + TRAIN_SEED_OFFSET``."""

SCENARIO_DIR = Path(__file__).resolve().parent / "scenarios"
"""Folder holding the named scenarios (``fraudkit/simulation/scenarios/<name>.yaml``)."""


class ScenarioError(FraudkitError):
    """A scenario file is missing, malformed or has an unknown key."""


@dataclass(frozen=True)
class PopulationConfig:
    """Honest users, their devices, networks and content.

    Parameters
    ----------
    n_accounts : int, default=5000
        Honest accounts (attackers come on top; crowd workers are recruited
        from these).
    new_account_fraction : float, default=0.05
        Share of honest accounts registered inside the window.
    history_years : float, default=5.0
        Oldest registrations are this many years before the window.
    views_per_day : float, default=1.6
        Median daily views of an account (lognormal across accounts).
    activity_sigma : float, default=1.4
        Lognormal sigma of the per-account activity rate (heavy tail).
    p_like, p_collect, p_comment, p_share, p_follow : float
        Chance that a view is followed by that action (per-account propensity
        varies around it). Defaults 0.22, 0.07, 0.025, 0.015, 0.02.
    author_fraction : float, default=0.15
        Share of accounts that publish notes.
    notes_per_author : float, default=4.0
        Mean notes per author (geometric).
    note_popularity_sigma : float, default=1.8
        Lognormal sigma of author and note popularity (Zipf-like tail).
    web_fraction : float, default=0.05
        Share of honest actions from the web (no device id).
    second_device_fraction : float, default=0.2
        Share of accounts that also use a second device (tablet, old phone).
    phone_upgrade_fraction : float, default=0.03
        Share of accounts that switch to a new phone inside the window.
    reinstall_fraction : float, default=0.03
        Share of devices re-registered after an app reinstall: new device id,
        same fingerprint (an honest look-alike of cloning).
    emulator_fraction : float, default=0.008
        Honest emulator users (gamers, developers).
    rooted_fraction : float, default=0.02
        Honest rooted or jailbroken devices.
    virtual_phone_fraction : float, default=0.03
        Honest phones on virtual-operator prefixes (170, 171, 165, 167).
    no_phone_fraction : float, default=0.06
        Accounts without a bound phone.
    mobile_ip_fraction : float, default=0.35
        Share of actions over the mobile network (carrier NAT IPs that change).
    vpn_fraction : float, default=0.015
        Honest accounts that route half their traffic through commercial VPNs.
    """

    n_accounts: int = 5000
    new_account_fraction: float = 0.05
    history_years: float = 5.0
    views_per_day: float = 1.6
    activity_sigma: float = 1.4
    p_like: float = 0.22
    p_collect: float = 0.07
    p_comment: float = 0.025
    p_share: float = 0.015
    p_follow: float = 0.02
    author_fraction: float = 0.15
    notes_per_author: float = 4.0
    note_popularity_sigma: float = 1.8
    web_fraction: float = 0.05
    second_device_fraction: float = 0.2
    phone_upgrade_fraction: float = 0.03
    reinstall_fraction: float = 0.03
    emulator_fraction: float = 0.008
    rooted_fraction: float = 0.02
    virtual_phone_fraction: float = 0.03
    no_phone_fraction: float = 0.06
    mobile_ip_fraction: float = 0.35
    vpn_fraction: float = 0.015


@dataclass(frozen=True)
class LookalikeConfig:
    """Honest groups that look like attackers on naive signals.

    Parameters
    ----------
    shared_device_families : float, default=0.03
        Families sharing one device, as a fraction of honest accounts
        (each family has 2 to 4 accounts) -> ``honest_shared_device``.
    campus_ips : int, default=3
        Campus / office NAT IPs -> ``honest_shared_ip``.
    accounts_per_campus : int, default=150
        Accounts behind each campus IP.
    public_wifi_ips : int, default=10
        Public Wi-Fi IPs used occasionally by random accounts (not labelled).
    viral_notes : int, default=3
        Notes going viral -> ``honest_viral_fan`` for the fans in the burst.
    fans_per_viral : int, default=200
        Fans liking a viral note within about an hour.
    flash_sales : int, default=3
        Live-stream flash sales with an honest crowd -> ``honest_flash_sale``.
    buyers_per_flash : int, default=120
        Honest buyers of the flash item within minutes of the start.
    carrier_nat_ips : int, default=0
        Mobile-carrier NAT IPs each shared by many unrelated honest accounts that
        reach the platform through it all day -> ``honest_carrier_nat``. Off by
        default (the earlier scenarios' seeded output is unchanged).
    accounts_per_carrier_nat : int, default=110
        Mean accounts behind each carrier NAT IP; sizes are drawn uniformly
        from a fifth of it to nearly twice it (20 to 200 at the default).
    group_buys : int, default=0
        Honest group buys: colleagues ordering the same item within an hour,
        all shipped to their office front desk -> ``honest_group_buy``.
    buyers_per_group_buy : int, default=6
        Mean colleagues per group buy (3 at least).
    """

    shared_device_families: float = 0.03
    campus_ips: int = 3
    accounts_per_campus: int = 150
    public_wifi_ips: int = 10
    viral_notes: int = 3
    fans_per_viral: int = 200
    flash_sales: int = 3
    buyers_per_flash: int = 120
    carrier_nat_ips: int = 0
    accounts_per_carrier_nat: int = 110
    group_buys: int = 0
    buyers_per_group_buy: int = 6


@dataclass(frozen=True)
class EcommerceConfig:
    """Merchants, products, promotions and honest orders.

    Parameters
    ----------
    enabled : bool, default=True
        False simulates the content community only (no e-commerce tables).
    n_merchants : int, default=200
    products_per_merchant : float, default=8.0
        Mean products per merchant (heavy-tailed).
    discounted_fraction : float, default=0.3
        Products discounted during promotions.
    limited_fraction : float, default=0.04
        Limited-stock flash-sale products (deep discounts).
    orders_per_day : float, default=0.05
        Mean orders per account per ordinary day (lognormal across accounts).
    festival_day : float, default=0.6
        Start of the shopping festival as a fraction of the window.
    festival_days : int, default=3
    festival_boost : float, default=4.0
        Order-rate multiplier during the festival.
    coupon_claim_fraction : float, default=0.15
        Share of accounts active during the festival that claim a coupon.
    coupon_use_fraction : float, default=0.5
        Share of honest claims used in an order.
    coupon_value : float, default=20.0
        Coupon face value (subtracted from the paid price, floored at 0.01).
    """

    enabled: bool = True
    n_merchants: int = 200
    products_per_merchant: float = 8.0
    discounted_fraction: float = 0.3
    limited_fraction: float = 0.04
    orders_per_day: float = 0.05
    festival_day: float = 0.6
    festival_days: int = 3
    festival_boost: float = 4.0
    coupon_claim_fraction: float = 0.15
    coupon_use_fraction: float = 0.5
    coupon_value: float = 20.0


@dataclass(frozen=True)
class AttackerConfig:
    """One attacker typology: campaign structure and evasion knobs.

    Parameters
    ----------
    campaigns : int
        Number of campaigns (operators, for scalpers and coupon abusers).
    accounts_per_campaign : int
        Accounts per campaign.
    actions_per_account : float
        Mean paid actions (likes, orders, claims) per account and campaign.
    targets_per_campaign : int, default=2
        Buyer notes (community) or target products (e-commerce) per campaign.
    accounts_per_device : float, default=1.0
        Accounts sharing one device.
    rate_scale : float, default=1.0
        Speed of the attack; below 1 throttles it under rate thresholds
        (gaps and windows stretch by ``1 / rate_scale``).
    ip_scatter : float, default=0.0
        Share of actions from scattered residential-looking IPs instead of
        proxy ranges.
    device_spoof : float, default=0.0
        Share of forged devices whose parameters are made consistent
        (no contradictions, no emulator flag).
    real_devices : float, default=0.0
        Share of accounts moved onto real, honest-looking devices.
    vary_strings : bool, default=False
        Group scalpers and coupon abusers type their drop addresses in many styles (Chinese and English,
        with or without province / city / district, 单元 dropped, dash forms, Chinese numerals, full-width
        digits, notes) and name a fresh receiver phone on every order, typed in varied formats. Off keeps
        the small Chinese variations and the shared phone pool of earlier versions (and their seeded output).
    carrier_nat : float, default=0.0
        Share of paid actions sent through mobile-carrier NAT IPs that honest users share (the
        ``honest_carrier_nat`` IPs when the scenario has them, else the ordinary carrier pool).
    home_fraction : float, default=0.0
        Crowd scalpers: share of orders shipped to the worker's own home instead of a consolidation
        address (the rest go to the collector's parcel stations).
    """

    campaigns: int = 2
    accounts_per_campaign: int = 20
    actions_per_account: float = 10.0
    targets_per_campaign: int = 2
    accounts_per_device: float = 1.0
    rate_scale: float = 1.0
    ip_scatter: float = 0.0
    device_spoof: float = 0.0
    real_devices: float = 0.0
    vary_strings: bool = False
    carrier_nat: float = 0.0
    home_fraction: float = 0.0


_ATTACKER_DEFAULTS = {
    "offline_script": dict(campaigns=3, accounts_per_campaign=20, actions_per_account=25.0,
                           accounts_per_device=1.0),
    "device_farm": dict(campaigns=3, accounts_per_campaign=40, actions_per_account=12.0,
                        accounts_per_device=5.0),
    "nurtured_account": dict(campaigns=3, accounts_per_campaign=25, actions_per_account=6.0,
                             accounts_per_device=2.0),
    "crowd_engagement": dict(campaigns=4, accounts_per_campaign=30, actions_per_account=2.5,
                             accounts_per_device=1.0),
    "group_scalper": dict(campaigns=3, accounts_per_campaign=15, actions_per_account=3.0,
                          targets_per_campaign=3, accounts_per_device=4.0),
    "crowd_scalper": dict(campaigns=3, accounts_per_campaign=20, actions_per_account=2.0,
                          targets_per_campaign=3, accounts_per_device=1.0),
    "coupon_abuser": dict(campaigns=3, accounts_per_campaign=30, actions_per_account=1.5,
                          targets_per_campaign=4, accounts_per_device=3.0),
}
"""Per-typology defaults of :class:`AttackerConfig` (documented in docs/simulator.md)."""


def _attacker(name):
    return field(default_factory=lambda: AttackerConfig(**_ATTACKER_DEFAULTS[name]))


@dataclass(frozen=True)
class AttackersConfig:
    """One :class:`AttackerConfig` per fraud typology (``engagement_buyer``
    is the target of community campaigns, not an attacker of its own).

    ``ban_wave_day`` (fraction of the window, default 0.5) is when the
    platform bans a wave of nurtured accounts; ``ban_fraction`` (default 0.3)
    of them stop, the rest move to cheap phones. ``crowd_campaigns_per_worker``
    (default 2.0) sizes the pool of crowd workers: ``campaigns *
    accounts_per_campaign / crowd_campaigns_per_worker`` honest accounts
    (at least one campaign's worth), so workers take tasks from several
    campaigns.
    """

    offline_script: AttackerConfig = _attacker("offline_script")
    device_farm: AttackerConfig = _attacker("device_farm")
    nurtured_account: AttackerConfig = _attacker("nurtured_account")
    crowd_engagement: AttackerConfig = _attacker("crowd_engagement")
    group_scalper: AttackerConfig = _attacker("group_scalper")
    crowd_scalper: AttackerConfig = _attacker("crowd_scalper")
    coupon_abuser: AttackerConfig = _attacker("coupon_abuser")
    ban_wave_day: float = 0.5
    ban_fraction: float = 0.3
    crowd_campaigns_per_worker: float = 2.0


@dataclass(frozen=True)
class MarketConfig:
    """Threat intelligence and lists.

    Parameters
    ----------
    blacklist_coverage : float, default=0.35
        Share of attacker proxy IPs on the ``proxy_ips`` blacklist.
    honest_vpn_listed : int, default=5
        Honest VPN IPs also on that blacklist (false entries).
    intel_sources : int, default=3
        Black-market channels observed each day.
    """

    blacklist_coverage: float = 0.35
    honest_vpn_listed: int = 5
    intel_sources: int = 3


@dataclass(frozen=True)
class Scenario:
    """A complete, resolved simulation scenario.

    Parameters
    ----------
    name : str
    description : str
        One line for ``fraudkit scenarios``.
    seed : int, default=0
    start : str, default="2024-06-01"
        First day of the window (platform-local date).
    days : int, default=14
        Window length in days.
    population, lookalikes, ecommerce, attackers, market
        The sections; see their classes.
    chunk_days : int, default=1
        Days generated and written per chunk by :func:`simulate`.
    """

    name: str = "custom"
    description: str = ""
    seed: int = 0
    start: str = "2024-06-01"
    days: int = 14
    population: PopulationConfig = field(default_factory=PopulationConfig)
    lookalikes: LookalikeConfig = field(default_factory=LookalikeConfig)
    ecommerce: EcommerceConfig = field(default_factory=EcommerceConfig)
    attackers: AttackersConfig = field(default_factory=AttackersConfig)
    market: MarketConfig = field(default_factory=MarketConfig)
    chunk_days: int = 1

    @property
    def start_datetime(self) -> datetime:
        return datetime.fromisoformat(str(self.start))


def list_scenarios() -> dict[str, str]:
    """Return the named scenarios and their one-line descriptions.

    Examples
    --------
    >>> "micro" in list_scenarios()
    True
    """
    out = {}
    for path in sorted(SCENARIO_DIR.glob("*.yaml")):
        raw = _read_yaml(path)
        out[path.stem] = str(raw.get("description", "")).strip()
    return out


def load_scenario(name_or_path) -> Scenario:
    """Load a named scenario or a scenario YAML file into a :class:`Scenario`.

    Parameters
    ----------
    name_or_path : str, Path or Scenario
        A name from :func:`list_scenarios` or a path to a YAML file. A
        Scenario is returned as it is.

    Returns
    -------
    Scenario
        Frozen; defaults filled in for every key the file does not state.

    Raises
    ------
    ScenarioError
        Unknown name, unreadable file, unknown key or a value of the wrong type.

    Examples
    --------
    >>> s = load_scenario("micro")
    >>> s.name, s.days > 0
    ('micro', True)
    """
    if isinstance(name_or_path, Scenario):
        return name_or_path
    raw, path = _resolve(name_or_path, seen=())
    raw.setdefault("name", path.stem)
    return _build(Scenario, raw, str(path), "")


def scenario_to_dict(scenario: Scenario) -> dict:
    """The resolved scenario as plain data (written as ``scenario.yaml``)."""
    return dataclasses.asdict(scenario)


# --- private helpers ----------------------------------------------------------


def _read_yaml(path: Path) -> dict:
    try:
        raw = read_yaml(path, what="scenario file") or {}
    except FraudkitError as e:
        raise ScenarioError(str(e)) from None
    if not isinstance(raw, dict):
        raise ScenarioError(f"scenario file {path} must hold a mapping of keys, got {type(raw).__name__}.")
    return raw


def _resolve(name_or_path, seen) -> tuple[dict, Path]:
    text = str(name_or_path)
    path = Path(text)
    # a built-in name always wins over a file or folder of that name in the working directory; only a name that
    # is no built-in, or that looks like a path (a separator or a .yaml suffix), is read as a path
    builtin = SCENARIO_DIR / f"{text}.yaml"
    looks_like_path = isinstance(name_or_path, Path) or "/" in text or "\\" in text or text.endswith((".yaml", ".yml"))
    if not looks_like_path and (builtin.is_file() or not path.is_file()):
        path = builtin
        if not path.exists():
            names = ", ".join(list_scenarios())
            raise ScenarioError(f"no scenario named {text!r}. Fix: use one of {names}, or a path to a YAML file.")
    if not path.exists():
        raise ScenarioError(f"scenario file {path} does not exist. Fix: check the path.")
    if path.resolve() in seen:
        raise ScenarioError(f"scenario {path} extends itself (cycle through {', '.join(map(str, seen))}).")
    raw = _read_yaml(path)
    parent = raw.pop("extends", None)
    if parent is None:
        return raw, path
    base, _ = _resolve(parent, seen + (path.resolve(),))
    base.pop("name", None)
    base.pop("description", None)
    return _merge(base, raw), path


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _build(cls, raw: dict, file: str, section: str):
    if not isinstance(raw, dict):
        raise ScenarioError(f"{file}: section {section or 'top level'!r} must be a mapping, got {raw!r}.")
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(raw) - set(known) - ({"extends"} if cls is Scenario else set()))
    if unknown:
        where = f"section {section!r}" if section else "the top level"
        raise ScenarioError(
            f"{file}: unknown key {unknown[0]!r} in {where}. "
            f"Fix: remove it or use one of {', '.join(sorted(known))}."
        )
    kwargs = {}
    defaults = cls()
    for name, value in raw.items():
        if name == "extends":
            continue
        current = getattr(defaults, name)
        sub = f"{section}.{name}" if section else name
        if dataclasses.is_dataclass(current):
            merged = _merge(dataclasses.asdict(current), value if isinstance(value, dict) else {})
            if not isinstance(value, dict):
                _build(type(current), value, file, sub)  # raises with a clear message
            kwargs[name] = _build(type(current), merged, file, sub)
        else:
            kwargs[name] = _coerce(value, current, file, sub)
    return cls(**kwargs)


def _coerce(value, default, file, key):
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
    elif isinstance(default, int):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif isinstance(default, float):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif isinstance(default, str):
        return str(value)
    raise ScenarioError(
        f"{file}: key {key!r} must be {type(default).__name__}, got {value!r}. Fix: e.g. {key.split('.')[-1]}: {default!r}."
    )
