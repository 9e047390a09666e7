"""What the CLI shows: library log lines on stdout, tables."""

from __future__ import annotations

import logging
import sys


class _StdoutHandler(logging.StreamHandler):
    """Library log lines (``affect_tf.*``, INFO and up) on the current ``sys.stdout``."""

    def __init__(self):
        super().__init__(sys.stdout)
        self.setFormatter(logging.Formatter("%(message)s"))

    @property
    def stream(self):
        return sys.stdout

    @stream.setter
    def stream(self, value):
        pass


def show_library_logs() -> None:
    """Shows ``affect_tf`` INFO logs (progress, steps) on stdout, once."""
    logger = logging.getLogger("affect_tf")
    if not any(isinstance(h, _StdoutHandler) for h in logger.handlers):
        logger.addHandler(_StdoutHandler())
    logger.setLevel(logging.INFO)


def print_table(table, columns: list[str], limit: int = 20) -> None:
    """The first ``limit`` rows of a DataFrame's ``columns``, 3 decimals."""
    import pandas as pd

    with pd.option_context("display.width", 160, "display.max_columns", 30):
        text = table[columns].head(limit).to_string(index=False, float_format="%.3f")
    # A file name that is not UTF-8 (kept as surrogates) is shown escaped, not a crash.
    print(text.encode("utf-8", "backslashreplace").decode("utf-8"))
    if len(table) > limit:
        print(f"... {len(table) - limit} more rows")
