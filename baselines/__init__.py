"""Benchmark methods shipped with the suite; each module is a plugin registered through the
``isnet_benchmarks.methods`` entry-point group, exactly as a third-party package would be."""
