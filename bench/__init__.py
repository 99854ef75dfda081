"""Benchmarks, each run as ``python -m bench.<name>``: ``bench.run`` (``make bench``: validate +
publish against the Arrow floor and Frictionless, see its docstring), ``bench.history`` (publish
cost as a dataset's history grows; also run by ``bench.run``), ``bench.index_bench`` (the HTTP
index)."""
