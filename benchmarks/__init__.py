"""The benchmark harness: plugin API, registries, runner, run store, evaluation, statistics
and reports. ``python -m benchmarks --help`` lists the commands."""
