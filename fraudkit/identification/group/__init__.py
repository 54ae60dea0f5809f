"""Stage 2, group mining: device clustering and frequent co-actions.
"""
