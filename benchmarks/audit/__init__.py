"""The shortcut audit: where each synthetic dataset's shortcut lies, measured on held-out images
(:mod:`~benchmarks.audit.shortcut`), its page and figure (:mod:`~benchmarks.audit.page`) and
its command, ``python -m benchmarks.audit``."""
