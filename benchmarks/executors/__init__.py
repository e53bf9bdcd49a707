"""Executors: what trains the runs of a grid once :mod:`benchmarks.runner` has chosen them.

- :mod:`.unit`: :func:`~.unit.execute`, the one run every executor ships (a task pickles as
  plain data), and the thread count a run trains with whatever ships it;
- :mod:`.local`: one run after another in this process (also what every rank does under
  ``torchrun``), or ``--jobs N`` runs at once in a process pool;
- :mod:`.slurm`: one submitit job per run, submitted as one job array, to SLURM
  (``--executor slurm``) or to local processes (``--executor local-submitit``);
- :mod:`.progress`: the grid-level progress bar all of them show.
"""
