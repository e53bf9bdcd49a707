"""The benchmark harness: plugin API, registries, runner, run store, evaluation, statistics
and reports. ``python -m benchmarks --help`` lists the commands.

Importing the harness before torch caps torch's CPU kernels at AVX2
(:func:`benchmarks.run.kernels.pin_cpu_kernels`), so that runs on AVX2 and AVX-512 machines
compute the same bits; ``ISNET_BENCHMARKS_KERNELS=native`` opts out.
"""

from benchmarks.run.kernels import pin_cpu_kernels

pin_cpu_kernels()
