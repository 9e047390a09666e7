"""The one place where library errors become one-line messages (exit status 2)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

from affect_tf.core.errors import UserError


class UsageError(Exception):
    """A user mistake found by the CLI itself: reported as one line and exit 2."""


# What main() reports as one line: the CLI's own usage errors and every library ``UserError``
# (corpus, labels, models, configs, inference inputs, pretrained weights).
USER_ERRORS = (UsageError, UserError)


@contextlib.contextmanager
def as_usage_error(*types: type[BaseException]) -> Iterator[None]:
    """Turns the given exception types (e.g. a config's ``ValueError``) into ``UsageError``."""
    try:
        yield
    except types as e:
        raise UsageError(str(e)) from None


def report(command: str, error: BaseException) -> int:
    """Prints ``affect-tf COMMAND: error: MESSAGE`` to stderr; the exit status."""
    if isinstance(error, KeyboardInterrupt):
        print(f"affect-tf {command}: interrupted", file=sys.stderr)
        return 130
    print(f"affect-tf {command}: error: {error}", file=sys.stderr)
    return 2
