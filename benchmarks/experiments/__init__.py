"""Experiment recipes registered with ``benchmarks.api.register_experiment``."""
