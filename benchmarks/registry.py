"""Discovery of methods and experiments through their entry-point groups.

Every method (the built-in baselines included) and every experiment is found the same way
a third-party plugin is: an entry point in ``isnet_benchmarks.methods`` /
``isnet_benchmarks.experiments`` names a module (or a class / function); the objects in it
that carry a spec (set by ``register_method`` / ``register_experiment``) are collected.
"""

from __future__ import annotations

import difflib
import fnmatch
import inspect
from collections.abc import Iterable
from importlib.metadata import entry_points
from types import ModuleType
from typing import Any

from benchmarks.api import EXPERIMENT_GROUP, METHOD_GROUP, ExperimentSpec, Method, MethodSpec


class UnknownNameError(KeyError):
    """A method or experiment name that is not registered (the message lists valid names)."""

    def __str__(self) -> str:  # KeyError quotes its message; show it plainly
        return str(self.args[0])


def _specs_in(obj: Any, attribute: str) -> Iterable[Any]:
    candidates = vars(obj).values() if isinstance(obj, ModuleType) else [obj]
    for candidate in candidates:
        spec = getattr(candidate, attribute, None)
        if spec is None:
            continue
        if attribute == "spec" and not (inspect.isclass(candidate) and issubclass(candidate, Method)):
            continue
        if attribute == "spec" and spec.cls is not candidate:  # a subclass inherits its parent's spec
            continue
        yield spec


def _discover(group: str, attribute: str) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for entry in sorted(entry_points(group=group), key=lambda e: e.name):
        try:
            loaded = entry.load()
        except Exception as err:  # noqa: BLE001 - a broken plugin must name itself
            raise ImportError(
                f"plugin entry point {entry.name!r} = {entry.value!r} in {group!r} failed to load: {err}"
            ) from err
        for spec in _specs_in(loaded, attribute):
            if spec.name in found and found[spec.name] is not spec:
                raise ValueError(f"{group}: name {spec.name!r} registered twice (second time by {entry.value!r})")
            found[spec.name] = spec
    return dict(sorted(found.items()))


def discover_methods() -> dict[str, MethodSpec]:
    """All registered methods by name."""
    return _discover(METHOD_GROUP, "spec")


def discover_experiments() -> dict[str, ExperimentSpec]:
    """All registered experiments by name."""
    return _discover(EXPERIMENT_GROUP, "__experiment_spec__")


def select(available: dict[str, Any], patterns: Iterable[str], kind: str) -> list[str]:
    """Names matching the given names or glob patterns (timm's ``list_models('*x*')`` style).

    An unknown plain name raises :class:`UnknownNameError` listing the valid names and the
    closest match.
    """
    chosen: list[str] = []
    for pattern in patterns:
        if any(ch in pattern for ch in "*?["):
            matches = fnmatch.filter(available, pattern)
        else:
            matches = [pattern] if pattern in available else []
        if not matches:
            close = difflib.get_close_matches(pattern, list(available), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise UnknownNameError(f"unknown {kind} {pattern!r}.{hint} Valid {kind}s: {', '.join(available)}")
        chosen += [m for m in matches if m not in chosen]
    return chosen
