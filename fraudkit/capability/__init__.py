"""Step 2, capability building: what identification is computed from.

Per-entity behaviour features and behaviour sequences, accumulation factors, scoped lists, graph
construction (the heterogeneous graph and account-account projections) and the R(A,B) co-purchase
weights. Pure transforms: nothing here is fitted and nothing reads labels.
"""
