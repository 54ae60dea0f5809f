"""fraudkit: find fake traffic, device farms, scalpers and coupon abusers.

The five-step process (perception -> capability -> identification -> mitigation
-> evaluation) over one data contract (:mod:`fraudkit.data.contract`).
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
