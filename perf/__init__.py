"""Benchmarks of the suite's speed and cost (scripts, not tests; see docs/performance.md)."""
