"""Step 3, risk identification: every detector, on one scoring contract (:mod:`.base`).

Stage 1 (single entity): the rule engine (:mod:`.expressions`, :mod:`.rules`) and the behaviour
models (:mod:`.models`). Stage 2 (groups): :mod:`.group`. Stage 3 (graphs): :mod:`.graph`.
"""
