"""The simulator's `vary_strings` option: typed address and phone variants, off by default."""

import numpy as np

from fraudkit.capability.entity_resolution import canonical_address, canonical_phone
from fraudkit.simulation import catalog as cat
from fraudkit.simulation.config import AttackerConfig, load_scenario


def test_option_is_off_by_default_everywhere():
    assert AttackerConfig().vary_strings is False
    for name in ("demo-small", "evasive", "ecommerce-promo"):
        attackers = load_scenario(name).attackers
        assert not attackers.group_scalper.vary_strings and not attackers.coupon_abuser.vary_strings


def test_typed_variants_are_varied_and_resolve_to_their_base():
    rng = np.random.default_rng(3)
    bases = cat.make_addresses(rng, 20)
    which = rng.integers(0, 20, 400)
    typed = cat.typed_address_variants(np.random.default_rng(4), bases[which])
    again = cat.typed_address_variants(np.random.default_rng(4), bases[which])
    assert typed.tolist() == again.tolist()                      # seeded
    assert len(set(typed)) > 150 and any(s.startswith(("Rm ", "Building ", "Unit ")) for s in typed)
    keys = canonical_address(typed)["address_key"].to_numpy()
    per_base = {b: len(set(keys[which == b])) for b in range(20)}
    assert max(per_base.values()) == 1 and len(set(keys)) == len(set(which))


def test_typed_phones_resolve_to_the_number():
    rng = np.random.default_rng(5)
    phones = cat.sample_phones(rng, 50, 0.3)
    typed = cat.typed_phones(rng, phones)
    assert len({p[:4] for p in typed}) > 3
    assert canonical_phone(typed)["phone_key"].tolist() == ["+86" + p for p in phones]
