"""Benchmarks, each run as ``python -m bench.<name>``: ``bench.run`` (``make bench``: validate +
publish against the Arrow floor and Frictionless, see its docstring), ``bench.index_bench`` (the
HTTP index)."""
