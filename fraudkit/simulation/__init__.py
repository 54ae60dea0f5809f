"""The platform simulator: a content community and a shop, with labelled attackers.

No public data set has fake likes, device farms or scalpers with ground
truth, so fraudkit simulates them. Honest users are heavy-tailed, follow a
daily rhythm and include look-alikes (family devices, campus IPs, viral fans,
flash-sale crowds); attackers leave the traces the source talks describe, and
can be tuned to evade (see ``docs/simulator.md``).

>>> from fraudkit.simulation import generate, load_scenario
>>> tables = generate(load_scenario("micro"))
>>> sorted(tables)[:3]
['accounts', 'bindings', 'coupon_claims']
"""

from __future__ import annotations

from fraudkit.simulation.config import (
    TRAIN_SEED_OFFSET,
    AttackerConfig,
    AttackersConfig,
    EcommerceConfig,
    LookalikeConfig,
    MarketConfig,
    PopulationConfig,
    Scenario,
    ScenarioError,
    list_scenarios,
    load_scenario,
)
from fraudkit.simulation.writer import SimulationSummary, generate, simulate

__all__ = [
    "generate",
    "simulate",
    "load_scenario",
    "list_scenarios",
    "Scenario",
    "SimulationSummary",
    "ScenarioError",
    "PopulationConfig",
    "LookalikeConfig",
    "EcommerceConfig",
    "AttackerConfig",
    "AttackersConfig",
    "MarketConfig",
    "TRAIN_SEED_OFFSET",
]
