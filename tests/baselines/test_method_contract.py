"""The method contract (:mod:`benchmarks.contract`) over every method the harness can discover.

Methods are found the way the harness finds them (``benchmarks.registry.discover_methods``,
through the ``isnet_benchmarks.methods`` entry points), so a plugin -- an ISNet variant, a
third-party baseline -- is covered as soon as it is installed. The checks themselves ship with
the package, so a plugin's author runs the same ones with ``python -m benchmarks check NAME``.
"""

from __future__ import annotations

import importlib
import pkgutil

import pytest

from benchmarks import contract
from benchmarks.api import Method, MethodSpec
from benchmarks.registry import discover_methods

SPECS = discover_methods()


def in_tree_specs() -> dict[str, MethodSpec]:
    """Specs of the Method subclasses defined in the modules of ``baselines/``."""
    import baselines

    found: dict[str, MethodSpec] = {}
    for info in pkgutil.iter_modules(baselines.__path__):
        module = importlib.import_module(f"baselines.{info.name}")
        for obj in vars(module).values():
            if isinstance(obj, type) and issubclass(obj, Method) and "spec" in vars(obj) and obj.spec.cls is obj:
                found[obj.spec.name] = obj.spec
    return found


def test_every_in_tree_method_is_discoverable() -> None:
    missing = sorted(set(in_tree_specs()) - set(SPECS))
    assert not missing, (
        f"methods defined in baselines/ but not discovered: {missing}; declare their modules in "
        "pyproject.toml under [project.entry-points.'isnet_benchmarks.methods'] and reinstall (pip install -e .)"
    )


@pytest.mark.parametrize("name", sorted(SPECS))
def test_method_contract(name: str) -> None:
    spec = SPECS[name]
    results = contract.check_method(spec)
    if not results:
        pytest.skip(f"{name} does not apply to the checks' experiment: {spec.reason_not_applicable(contract.TAGS)}")
    failed = [f"{r.check}: {r.message}" for r in results if r.status == contract.FAIL]
    assert not failed, "\n".join(failed)
    assert [r.check for r in results] == [c.__name__ for c, _ in contract.CHECKS]
