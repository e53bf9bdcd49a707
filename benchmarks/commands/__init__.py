"""The commands: ``python -m benchmarks`` (:mod:`.cli`: run, report, list, check, masks), the
lung masks command (:mod:`.lung_masks`), the hyper-parameters set on the command line
(:mod:`.hparams`) and the data galleries (``python -m benchmarks.commands.data_gallery``).
Nothing else of the harness imports this package: arrows run from the commands down.
"""
