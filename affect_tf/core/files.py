"""Files that are either complete or absent: the one write-then-rename helper, the rule for
which files are inputs, and the one message for a full disk."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

from affect_tf.core.errors import UserError

log = logging.getLogger(__name__)
_PARTIAL_NAME = re.compile(r"^\.(?P<stem>.+)\.(?P<pid>\d+)\.partial(?P<rest>(\..*)?)$")


class OutOfSpaceError(UserError):
    """The disk filled while writing an output (nothing half-written is left under its name)."""

    errno = errno.ENOSPC


def is_input_file(path: str | Path) -> bool:
    """Whether a file found in a folder is an input: hidden files (a name starting with ``.``,
    such as a killed job's ``.out.<pid>.partial.tfrecord.gz``: every partial this package
    writes is hidden) never are."""
    return not Path(path).name.startswith(".")


def _partial_name(path: Path, pid: int) -> Path:
    # Every suffix stays last: ``backbone.weights.h5`` -> ``.backbone.<pid>.partial.weights.h5``
    # (Keras' ``save_weights`` insists on the ``.weights.h5`` ending).
    stem, dot, suffixes = path.name.lstrip(".").partition(".")
    return path.with_name(f".{stem}.{pid}.partial{dot}{suffixes}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def remove_stale_partials(path: str | Path) -> list[Path]:
    """Removes the partial files a killed writer of ``path`` left beside it (their process is
    gone), with a log line each; returns them."""
    path = Path(path)
    if not path.parent.is_dir():
        return []
    stem, dot, suffixes = path.name.lstrip(".").partition(".")
    removed = []
    for candidate in path.parent.glob(f".{glob_escape(stem)}.*.partial{dot}{suffixes}"):
        match = _PARTIAL_NAME.match(candidate.name)
        if match is None or match["stem"] != stem or _alive(int(match["pid"])):
            continue
        log.warning("removing %s, left by a writer of %s that did not finish", candidate, path)
        candidate.unlink(missing_ok=True)
        removed.append(candidate)
    return removed


def glob_escape(text: str) -> str:
    """``text`` with glob's special characters taken literally."""
    return re.sub(r"([*?\[])", r"[\1]", text)


def _is_out_of_space(error: BaseException) -> bool:
    if isinstance(error, OutOfSpaceError):
        return True
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    # TensorFlow's file writers raise ResourceExhaustedError (no errno) on a full disk; this
    # module stays free of TensorFlow, so it is known by name and message.
    return type(error).__name__ == "ResourceExhaustedError" and "space" in str(error).lower()


def out_of_space(path: Path, partial: Path, error: BaseException) -> OutOfSpaceError:
    """The one-line error for a full disk: the output, what was written, what is free."""
    written = partial.stat().st_size if partial.exists() else 0
    try:
        free = shutil.disk_usage(path.parent).free
    except OSError:
        free = 0
    if written == 0:
        received = f"the disk is full ({free / 1e6:,.1f} MB free on it)"
    else:
        received = (
            f"the disk filled after {written / 1e6:,.1f} MB of it ({free / 1e6:,.1f} MB free "
            f"now); free at least {written / 1e6:,.1f} MB more"
        )
    return OutOfSpaceError(
        f"Expected free space to write {path}. Received: {received}; nothing was written "
        "under that name"
    )


@contextlib.contextmanager
def replaced_atomically(path: str | Path) -> Iterator[Path]:
    """Yields a temporary path beside ``path`` to write; renames it into place when the block
    ends without error (else removes it), so a kill or a failure never leaves a half-written
    file under ``path`` -- the previous one stays until the new one is complete.

    The suffixes stay last (``x.csv.gz`` -> ``.x.<pid>.partial.csv.gz``), so writers that read
    them (pandas' compression, ``keras.Model.save``, ``save_weights``) behave the same. A
    partial that a killed writer of the same ``path`` left is removed first (``is_input_file``
    keeps such files out of every input list meanwhile).

    Raises:
        OutOfSpaceError: The disk filled (ENOSPC, or TensorFlow's ResourceExhaustedError):
            one line naming ``path`` and the space it needs.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_partials(path)
    partial = _partial_name(path, os.getpid())
    try:
        yield partial
        partial.replace(path)
    except BaseException as e:
        if _is_out_of_space(e) and not isinstance(e, OutOfSpaceError):
            raise out_of_space(path, partial, e) from None
        raise
    finally:
        partial.unlink(missing_ok=True)


def write_text_atomically(path: str | Path, text: str) -> Path:
    """Writes ``text`` to ``path`` through ``replaced_atomically`` (complete or absent)."""
    with replaced_atomically(path) as partial:
        partial.write_text(text)
    return Path(path)
