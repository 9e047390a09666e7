"""The layers of ``docs/architecture.md``, enforced: every import in ``affect_tf/`` (lazy ones
inside functions included) points to the same or a lower layer, units never import each other
in a cycle, and ``pipelines/`` only wires the graph (imports ``affect_tf.pipeline`` and TFX)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]



def read_layers(doc: Path) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """The folder -> layer table of ``docs/architecture.md`` (its ``| # | layer | folders |``
    rows, bottom to top): the doc is the one place the layers are written. ``affect_tf``
    stands for the package's own ``__init__`` (the folder ``""``)."""
    layers = []
    for line in doc.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and cells[0].isdigit():
            assert int(cells[0]) == len(layers), f"Expected layer {len(layers)}. Received: {line}"
            folders = re.findall(r"`([\w.]+)`", cells[2].split("(")[0])
            layers.append((cells[1], tuple("" if f == "affect_tf" else f for f in folders)))
    return tuple(layers)


# Bottom to top: the layer of a module is its folder (``affect_tf/<folder>/``); nothing but
# ``__init__`` and ``__main__`` lives at ``affect_tf/``'s root.
LAYERS = read_layers(ROOT / "docs" / "architecture.md")
ROOT_FILES = {"__init__.py", "__main__.py"}


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


def folder_of(module: str) -> str:
    """``affect_tf.data.synth.face`` -> ``data``; ``affect_tf`` -> ``""`` (the package root)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def layer_of(module: str) -> int:
    folder = folder_of(module)
    for index, (_, folders) in enumerate(LAYERS):
        if folder in folders:
            return index
    raise AssertionError(f"Expected every folder in a layer of LAYERS. Received: {folder!r}")


def test_only_the_package_files_sit_at_the_root():
    """Every module lives in its layer's folder: the root holds ``__init__`` / ``__main__``."""
    loose = sorted(p.name for p in (ROOT / "affect_tf").glob("*.py") if p.name not in ROOT_FILES)
    assert not loose, f"Expected modules inside a layer folder. Received: {loose}"


def test_every_folder_says_what_it_holds():
    """Each layer folder's ``__init__`` opens with a one-line docstring (its role)."""
    for folder in sorted({f for _, fs in LAYERS for f in fs if f}):
        init = ROOT / "affect_tf" / folder / "__init__.py"
        doc = ast.get_docstring(ast.parse(init.read_text())) if init.is_file() else None
        assert doc and doc.splitlines()[0].endswith("."), f"{init}: no one-line docstring"


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


def test_the_layer_table_is_read():
    """The doc's table is parsed as written: bottom ``core``, top ``cli`` and the package."""
    assert LAYERS[0] == ("core", ("core",))
    assert LAYERS[-1] == ("top", ("cli", ""))
    assert ("training", ("training", "gan")) in LAYERS
    folders = {p.name for p in (ROOT / "affect_tf").iterdir() if (p / "__init__.py").is_file()}
    assert folders == {f for _, fs in LAYERS for f in fs if f}


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
