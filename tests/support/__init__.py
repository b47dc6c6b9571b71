"""Harnesses the tests share, and the benchmarks borrow (never the other way round)."""
