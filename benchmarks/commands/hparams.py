"""Hyper-parameters set on the command line (``run --hparams``), checked before anything runs.

Two forms, repeatable and mixable in one ``--hparams`` list:

* ``METHOD.KEY=VALUE``, e.g. ``isnet.P=0.5 rrr.lambda_rrr=5 isnet.optimizer=sgd``;
* a JSON object keyed by method, e.g. ``'{"isnet": {"P": 0.5, "d": 0.99}}'`` (DomainBed's
  ``--hparams`` is a JSON object too; ours is keyed by method because one grid holds several).

``VALUE`` is read as JSON where it parses (``0.5``, ``true``, ``null``, ``"adam"``, ``[1, 2]``)
and as a plain string otherwise (``adam``). Each value is checked against the method's declared
default: an unknown method or key, or a value of another type than the default's, is a one-line
error. An integer is accepted for a float default (and stored as a float, so ``lr=1`` and
``lr=1.0`` are one run); a default of ``None`` or ``"auto"`` accepts whatever the method's
constructor accepts, so for such keys the method is built once at smoke scale
(:func:`judge_by_constructor`) and its error, if any, is the message.

The values override every hyper-parameter draw (the defaults and the sampled draws alike). A
run with such values records them (:attr:`~benchmarks.run.task.RunTask.hparams_from_cli`) under
``hparams_from_cli`` in ``config.json``, and they are part of the run's identity (hashed into its folder name), so a
run with a changed value never resumes an old record (a value set equal to the default makes a
record of its own too, which the model-selection table lists as a draw of its own). Without
``--hparams`` a run's configuration and folder are what they always were.
"""

from __future__ import annotations

import difflib
import json
import math
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from benchmarks.api import ExperimentSpec, MethodSpec

#: config.json's key for the values set on the command line
CONFIG_KEY = "hparams_from_cli"
#: defaults whose admissible values only the method's constructor knows
LOOSE_DEFAULTS = (None, "auto")
FORMS = "METHOD.KEY=VALUE or a JSON object such as '{\"isnet\": {\"P\": 0.5}}'"

Overrides = dict[str, dict[str, Any]]


# --------------------------------------------------------------------------- parsing
def parse_value(text: str) -> Any:
    """``text`` as JSON where it parses, else the string itself."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _add(out: Overrides, method: str, key: str, value: Any, item: str) -> None:
    if not method or not key:
        raise ValueError(f"--hparams {item!r}: expected {FORMS}")
    known = out.setdefault(method, {})
    if key in known and known[key] != value:
        raise ValueError(f"--hparams: {method}.{key} is given twice, as {json.dumps(known[key])} and "
                         f"{json.dumps(value)}")
    known[key] = value


def parse(items: Sequence[str]) -> Overrides:
    """``{method: {key: value}}`` from the ``--hparams`` arguments (module docstring)."""
    out: Overrides = {}
    for item in items:
        text = item.strip()
        if text.startswith("{"):
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as err:
                raise ValueError(f"--hparams {item!r}: not valid JSON ({err.msg} at character {err.pos})") from None
            if not all(isinstance(v, dict) for v in obj.values()):
                raise ValueError(f"--hparams {item!r}: a JSON form maps each method to an object of "
                                 "hyper-parameters, e.g. '{\"isnet\": {\"P\": 0.5}}'")
            for method, values in obj.items():
                for key, value in values.items():
                    _add(out, method, key, value, item)
            continue
        name, sep, value = text.partition("=")
        method, dot, key = name.strip().partition(".")
        if not sep or not dot:
            raise ValueError(f"--hparams {item!r}: expected {FORMS}")
        _add(out, method.strip(), key.strip(), parse_value(value.strip()), item)
    return out


# --------------------------------------------------------------------------- checks
def _kind(default: Any) -> tuple[str, tuple[type, ...]]:
    """What a value must be to replace ``default``: a phrase and the accepted types."""
    if isinstance(default, bool):
        return "true or false", (bool,)
    if isinstance(default, int):
        return "an integer", (int,)
    if isinstance(default, float):
        return "a number", (int, float)
    if isinstance(default, str):
        return "a string", (str,)
    if isinstance(default, (list, tuple)):
        return "a list", (list,)
    if isinstance(default, dict):
        return "an object", (dict,)
    return f"a {type(default).__name__}", (type(default),)


def _type_name(value: Any) -> str:
    return {bool: "true/false", int: "an integer", float: "a number", str: "a string", list: "a list",
            dict: "an object", type(None): "null"}.get(type(value), type(value).__name__)


def is_loose(default: Any) -> bool:
    """Whether only the method's constructor can judge a value for this default."""
    return any(default is d or (isinstance(default, str) and default == d) for d in LOOSE_DEFAULTS)


def checked_value(spec: MethodSpec, key: str, value: Any) -> Any:
    """``value`` for ``spec``'s ``key`` (an int for a float default becomes a float); raises
    ValueError in one line when the key is unknown or the type is not the default's."""
    where = f"--hparams {spec.name}.{key}={json.dumps(value)}"
    if key not in spec.defaults:
        close = difflib.get_close_matches(key, list(spec.defaults), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"{where}: {spec.name} has no hyper-parameter {key!r}.{hint} "
                         f"It has: {', '.join(sorted(spec.defaults))}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where}: the value must be finite")
    default = spec.defaults[key]
    if is_loose(default):
        return value
    phrase, types = _kind(default)
    if isinstance(value, bool) and bool not in types or not isinstance(value, types):
        raise ValueError(f"{where}: {spec.name}'s {key} takes {phrase} (its default is {json.dumps(default)}), "
                         f"got {_type_name(value)}")
    return float(value) if isinstance(default, float) else value


def check(overrides: Mapping[str, Mapping[str, Any]], methods: Mapping[str, MethodSpec]) -> Overrides:
    """The overrides with checked values; every method must be in the grid (``methods``)."""
    out: Overrides = {}
    for name, values in overrides.items():
        if name not in methods:
            close = difflib.get_close_matches(name, list(methods), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"--hparams: method {name!r} is not in this grid.{hint} "
                             f"Its methods: {', '.join(methods) or 'none'}")
        out[name] = {key: checked_value(methods[name], key, value) for key, value in values.items()}
    return out


def judge_by_constructor(overrides: Mapping[str, Mapping[str, Any]], methods: Mapping[str, MethodSpec],
                         experiments: Mapping[str, ExperimentSpec]) -> None:
    """Build each method whose overrides set a key with a loose default (``None`` / ``"auto"``)
    once, at smoke scale, on the first experiment of the grid it applies to (its smoke data
    built in a temporary folder, so that nothing is written where the runs go), and call
    ``configure_optimizer``; the first error becomes a one-line ValueError."""
    from benchmarks.run.training import build_method

    for name, values in overrides.items():
        spec = methods[name]
        loose = [k for k in values if is_loose(spec.defaults[k])]
        if not loose:
            continue
        exp = next((e for e in experiments.values() if spec.reason_not_applicable(e.tags) is None), None)
        if exp is None:
            continue
        hparams = {**spec.defaults, **values}
        profile = exp.profile("smoke")
        try:
            with tempfile.TemporaryDirectory(prefix="isnet-hparams-") as cache:
                bundle = exp.build(profile, 0, Path(cache))
                build_method(spec, bundle, "smoke", profile.backbone, hparams).configure_optimizer()
        except Exception as err:  # noqa: BLE001 - whatever the constructor raises is the answer
            text = (str(err).strip().splitlines() or [type(err).__name__])[0]
            shown = ", ".join(f"{k}={json.dumps(values[k])}" for k in loose)
            raise ValueError(f"--hparams {name}: {shown} is refused by {name} (built at smoke scale on "
                             f"{exp.name}): {text}") from None
