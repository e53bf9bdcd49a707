"""One run, from its task to its record: what a run is (:mod:`.task`), how it trains and picks its
epoch (:mod:`.training`, :mod:`.batching`, :mod:`.distributed`, :mod:`.convergence`,
:mod:`.pretraining`), what it records beside its predictions (:mod:`.explanation_record`,
:mod:`.behaviour_record`, :mod:`.provenance`), and the process settings it computes under
(:mod:`.kernels`, :mod:`.allocator`).

This package's own import must stay free of torch: ``benchmarks/__init__.py`` pins the CPU
kernels through :mod:`.kernels` before anything imports torch.
"""
