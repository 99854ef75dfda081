"""Benchmarks, each run as ``python -m bench.<name>`` (``bench.index_bench``: the HTTP index)."""
