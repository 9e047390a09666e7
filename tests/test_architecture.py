"""The layers of ``docs/architecture.md``, enforced: every import in ``affect_tf/`` (lazy ones
inside functions included) points to the same or a lower layer, units never import each other
in a cycle, and ``pipelines/`` only wires the graph (imports ``affect_tf.pipeline`` and TFX)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Bottom to top. A unit is a package (``affect_tf.data``) or a top-level module.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "base",
        (
            "affect_tf._env",
            "affect_tf.errors",
            "affect_tf.files",
            "affect_tf.labels",
            "affect_tf.layout",
            "affect_tf.outputs",
            "affect_tf.presets",
            "affect_tf.face",
        ),
    ),
    ("data", ("affect_tf.data",)),
    (
        "model",
        (
            "affect_tf.losses",
            "affect_tf.metrics",
            "affect_tf.report",
            "affect_tf.smoothing",
            "affect_tf.callbacks",
            "affect_tf.model",
        ),
    ),
    (
        "training",
        (
            "affect_tf.distribute",
            "affect_tf.fitting",
            "affect_tf.training",
            "affect_tf.pretrain",
            "affect_tf.pretrain_budget",
            "affect_tf.gan",
            "affect_tf.ablation",
            "affect_tf.ablation_report",
        ),
    ),
    ("export", ("affect_tf.export", "affect_tf.tflite", "affect_tf.explain")),
    ("inference and serving", ("affect_tf.inference", "affect_tf.serving", "affect_tf.visualize")),
    ("pipeline", ("affect_tf.pipeline",)),
    ("top", ("affect_tf.cli", "affect_tf")),
)


def _modules() -> dict[str, Path]:
    found = {}
    for path in (ROOT / "affect_tf").rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        found[".".join(parts).removesuffix(".__init__")] = path
    return found


MODULES = _modules()


def unit_of(module: str) -> str:
    """``affect_tf.data.dataset`` -> ``affect_tf.data``; ``affect_tf`` -> ``affect_tf``."""
    return ".".join(module.split(".")[:2])


def layer_of(module: str) -> int:
    unit = unit_of(module)
    for index, (_, units) in enumerate(LAYERS):
        if unit in units:
            return index
    raise AssertionError(f"Expected every unit in a layer of LAYERS. Received: {unit}")


def imports(path: Path, module: str) -> set[str]:
    """The ``affect_tf`` modules ``path`` imports (``from affect_tf import x`` -> the
    submodule ``affect_tf.x`` when there is one)."""
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    targets = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            subs = [f"{base}.{a.name}" for a in node.names]
            names = [n for n in subs if n in MODULES] or [base]
        else:
            continue
        targets |= {n for n in names if n.split(".")[0] == "affect_tf"}
    return targets


EDGES = {m: imports(p, m) for m, p in MODULES.items()}


def test_every_unit_has_a_layer():
    for module in MODULES:
        layer_of(module)


def test_imports_point_down():
    upward = [
        f"{a} -> {b}"
        for a, targets in EDGES.items()
        for b in targets
        if b in MODULES and layer_of(b) > layer_of(a)
    ]
    assert not upward, "imports of a higher layer:\n" + "\n".join(sorted(upward))


def test_units_import_each_other_without_cycles():
    graph: dict[str, set[str]] = {}
    for a, targets in EDGES.items():
        for b in targets:
            if b in MODULES and unit_of(a) != unit_of(b):
                graph.setdefault(unit_of(a), set()).add(unit_of(b))
    cycles = sorted(
        f"{a} <-> {b}" for a, bs in graph.items() for b in bs if a in graph.get(b, set())
    )
    assert not cycles, cycles


def test_the_layer_rules_can_fail():
    """The checks above see a violation when there is one (a check that cannot fail is none)."""
    assert layer_of("affect_tf.data.dataset") < layer_of("affect_tf.model.heads")
    fake = ROOT / "tests" / "_fake_upward.py"
    try:
        fake.write_text("from affect_tf.model.heads import GCNHeads\nimport affect_tf.cli\n")
        assert imports(fake, "affect_tf.data.fake") == {"affect_tf.model.heads", "affect_tf.cli"}
    finally:
        fake.unlink()


@pytest.mark.parametrize("path", sorted((ROOT / "pipelines").glob("*.py")), ids=lambda p: p.name)
def test_pipelines_only_wire_the_graph(path):
    allowed = ("affect_tf", "affect_tf.pipeline")
    used = imports(path, "pipelines." + path.stem)
    assert all(unit_of(m) in allowed or m.startswith("affect_tf.pipeline.") for m in used), used
