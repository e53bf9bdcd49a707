"""The layout of the code: no module name used twice, and imports that run one way (the commands
at the top, one run's rooms below the grid and the report, the plugin API at the bottom).

Imports are read from the source (every ``import`` statement, those inside functions too), so
these tests need nothing installed and import nothing they check."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("isnet", "baselines", "benchmarks")


def _modules() -> dict[str, Path]:
    """Every module of the three packages by dotted name (a package by its ``__init__.py``)."""
    out = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _imports(path: Path, module: str) -> set[str]:
    """The dotted names ``path`` imports (``from a import b`` gives ``a`` and ``a.b``)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def _within(name: str, room: str) -> bool:
    return name == room or name.startswith(room + ".")


def _arrows(source: str, targets: tuple[str, ...]) -> list[str]:
    """``module -> imported`` for every import from a module in room ``source`` into ``targets``."""
    return sorted(f"{module} -> {name}" for module, path in _modules().items() if _within(module, source)
                  for name in _imports(path, module) if any(_within(name, t) for t in targets))


def test_the_helpers_read_imports_as_python_does(tmp_path):
    source = tmp_path / "m.py"
    source.write_text("import a.b\nfrom c import d\nfrom . import e\nfrom ..f import g\n\ndef h():\n    import i\n")
    assert _imports(source, "p.q.m") == {"a.b", "c", "c.d", "p.q", "p.q.e", "p.f", "p.f.g", "i"}
    assert _within("benchmarks.run.training", "benchmarks.run") and not _within("benchmarks.runner", "benchmarks.run")


def test_no_module_name_is_used_twice():
    seen = defaultdict(list)
    for module in _modules():
        seen[module.rpartition(".")[2]].append(module)
    twice = {name: where for name, where in seen.items() if len(where) > 1 and name != "__main__"}
    assert not twice, f"module names used for more than one module: {twice}"


def test_the_library_and_the_harness_do_not_know_the_baselines():
    assert not _arrows("isnet", ("benchmarks", "baselines"))
    assert not _arrows("benchmarks", ("baselines",))


@pytest.mark.parametrize("bottom", ["benchmarks.api", "benchmarks.architectures"])
def test_the_plugin_api_imports_nothing_else_of_the_harness(bottom):
    assert [a for a in _arrows(bottom, ("benchmarks",)) if not a.endswith(f"-> {bottom}")] == []


def test_only_the_commands_import_the_commands():
    arrows = [a for a in _arrows("benchmarks", ("benchmarks.commands",))
              if not a.startswith(("benchmarks.commands", "benchmarks.__main__ "))]
    assert arrows == []


def test_one_run_imports_nothing_above_it():
    above = ("benchmarks.commands", "benchmarks.report", "benchmarks.grid", "benchmarks.runner",
             "benchmarks.executors", "benchmarks.studies", "benchmarks.audit", "benchmarks.contract")
    assert _arrows("benchmarks.run", above) == []
