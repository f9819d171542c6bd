"""The figures behind ``make bench`` (``benchmarks/run.py``): scenarios, the client agent, the report."""
