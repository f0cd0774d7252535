"""The folders keep their roles: the import rules of STYLE.md, read from the source with ``ast`` (no imports run).

- ``app/stages/`` is the pure take pipeline: nothing it imports, directly or through the repository's
  own modules, is a Kafka, Faust, Redis or torch client, and it uses no other part of ``app``;
- ``model/`` imports no Kafka, Faust or Redis client and nothing of ``app``;
- ``training/`` imports no Kafka client; ``schemas/`` imports no torch.
Imports inside functions count: a lazy import is still an import.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
KAFKA_CLIENTS = {"confluent_kafka", "aiokafka", "faust", "mode", "redis"}
TORCH = {"torch", "transformers", "peft", "bitsandbytes", "accelerate", "deepspeed"}
OWN_PACKAGES = {"app", "model", "schemas", "training"}


def _module_file(module: str) -> Path | None:
    base = REPO_ROOT / module.replace(".", "/")
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@functools.cache
def _imports(path: Path) -> frozenset[str]:
    """Every module ``path`` imports, as dotted names (``from a import b`` gives ``a.b`` when that is a module)."""
    found = set()
    package = _module_name(path).rsplit(".", 1)[0] if path.name != "__init__.py" else _module_name(path)
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names if _module_file(f"{base}.{alias.name}"))
    return frozenset(found)


def _top(module: str) -> str:
    return module.split(".", 1)[0]


def _reachable(path: Path) -> dict[str, list[str]]:
    """Every module reachable from ``path`` through the repository's own modules → one import chain to it."""
    chains: dict[str, list[str]] = {}
    todo = [(path, [_module_name(path)])]
    seen = {path}
    while todo:
        current, chain = todo.pop()
        for module in _imports(current):
            chains.setdefault(module, [*chain, module])
            if _top(module) in OWN_PACKAGES and (target := _module_file(module)) is not None and target not in seen:
                seen.add(target)
                todo.append((target, [*chain, module]))
    return chains


def _files(folder: str) -> list[Path]:
    return sorted((REPO_ROOT / folder).rglob("*.py"))


@pytest.mark.parametrize("path", _files("app/stages"), ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_a_stage_reaches_no_kafka_faust_redis_or_torch_client_and_no_other_part_of_app(path):
    chains = _reachable(path)
    clients = {m: " → ".join(chain) for m, chain in chains.items() if _top(m) in KAFKA_CLIENTS | TORCH}
    assert not clients, f"{path.relative_to(REPO_ROOT)} reaches I/O clients: {sorted(clients.values())}"
    outside = {
        m: " → ".join(chain)
        for m, chain in chains.items()
        if _top(m) == "app" and not (m == "app" or m.startswith("app.stages"))
    }
    assert not outside, f"{path.relative_to(REPO_ROOT)} uses app outside app/stages: {sorted(outside.values())}"


@pytest.mark.parametrize("path", _files("model"), ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_the_model_imports_no_kafka_faust_or_redis_client_and_nothing_of_app(path):
    wrong = sorted(m for m in _imports(path) if _top(m) in KAFKA_CLIENTS | {"app"})
    assert not wrong, f"{path.relative_to(REPO_ROOT)} imports {wrong}"


@pytest.mark.parametrize("path", _files("training"), ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_training_imports_no_kafka_client(path):
    wrong = sorted(m for m in _imports(path) if _top(m) in KAFKA_CLIENTS)
    assert not wrong, f"{path.relative_to(REPO_ROOT)} imports {wrong}"


@pytest.mark.parametrize("path", _files("schemas"), ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_the_contracts_import_no_torch(path):
    wrong = sorted(m for m in _imports(path) if _top(m) in TORCH)
    assert not wrong, f"{path.relative_to(REPO_ROOT)} imports {wrong}"


def test_the_rules_see_a_violation(tmp_path, monkeypatch):
    """Guards the reader itself: a stage reaching Kafka through a model module, lazily, is caught."""
    stage = tmp_path / "app" / "stages" / "leaky.py"
    helper = tmp_path / "model" / "leaky_helper.py"
    stage.parent.mkdir(parents=True)
    helper.parent.mkdir(parents=True)
    stage.write_text("def f():\n    from model.leaky_helper import g\n", encoding="utf-8")
    helper.write_text("import confluent_kafka\n", encoding="utf-8")
    monkeypatch.setitem(globals(), "REPO_ROOT", tmp_path)
    _imports.cache_clear()
    try:
        assert _reachable(stage)["confluent_kafka"] == ["app.stages.leaky", "model.leaky_helper", "confluent_kafka"]
    finally:
        _imports.cache_clear()
