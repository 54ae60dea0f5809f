"""The data layer: the data contract, loading and validation (with quarantine), the dataset
fingerprint, atomic writes, the SQL source for point-in-time queries, the Ibis data layer, and external
formats (the generic graph format and adapters for real labelled sets).

Everything else in fraudkit reads data through this package.
"""
