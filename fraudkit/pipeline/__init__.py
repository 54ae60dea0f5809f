"""Wiring of ``fraudkit score``: the run context, the three identification stages, the operating
point set on a training world, decisions, and the run directory.
"""
