"""What a ``--data`` argument names, as TFRecord files: tf.Examples as they are, or a manifest
corpus converted once and cached."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from affect_tf.data.dataset import resolve_files
from affect_tf.data.manifest import MANIFEST_NAMES, find_manifest

log = logging.getLogger(__name__)

# Where a manifest corpus is converted to, under the run's folder.
CACHED_EXAMPLES = Path("data") / "examples.tfrecord.gz"


def manifest_of(data: str | Path) -> Path | None:
    """The manifest corpus ``data`` names (its folder or its manifest file), or None."""
    path = Path(data)
    if path.name in MANIFEST_NAMES:
        return path
    if path.is_dir() and any((path / n).is_file() for n in MANIFEST_NAMES):
        return path
    return None


def _why_not_reusable(target: Path, source: Path) -> str | None:
    """None when ``target`` is a complete conversion of the current ``source``; else why not
    (missing, older than the manifest, no report, or a size the report does not vouch for)."""
    if not target.is_file():
        return "no earlier conversion"
    if target.stat().st_mtime < source.stat().st_mtime:
        return "the manifest changed since"
    report_path = target.with_name(target.name + ".report.json")
    try:
        expected = json.loads(report_path.read_text()).get("bytes")
    except (OSError, ValueError):
        return "its report is missing or unreadable"
    if expected != target.stat().st_size:
        return f"{target.stat().st_size} bytes where its report says {expected} (interrupted?)"
    return None


def training_files(data: str | Path, cache_dir: str | Path) -> list[str]:
    """TFRecords for ``data``: tf.Example files as they are; a manifest corpus is converted once
    into ``cache_dir/data/examples.tfrecord.gz`` and reused while the manifest is unchanged.

    Raises:
        FileNotFoundError: ``data`` names no tf.Example file and no manifest corpus.
    """
    manifest = manifest_of(data)
    if manifest is None:
        return resolve_files(data)
    from affect_tf.data.convert import convert_corpus

    source = find_manifest(manifest)
    target = Path(cache_dir) / CACHED_EXAMPLES
    stale = _why_not_reusable(target, source)
    if stale is None:
        log.info("using %s (converted from %s)", target, source)
        return [str(target)]
    log.info("converting %s -> %s (%s)", source, target, stale)
    log.info("%s", convert_corpus("manifest", manifest, target).format())
    return [str(target)]
