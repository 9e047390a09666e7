"""The ``affect-tf`` command line: synth, convert, pretrain, train, evaluate, predict, serve.

One module per command group (``data``, ``pretrain``, ``train``, ``ablate``, ``infer``, ``gan``,
``demo``),
each with an ``add_commands(sub)``; ``errors`` is the one place where library errors become
one-line messages, ``output`` what the CLI shows. Library code logs; only this package prints.
"""

from __future__ import annotations

import argparse
import sys

from affect_tf.cli import ablate, data, demo, gan, infer, pretrain, train
from affect_tf.cli.errors import USER_ERRORS, UsageError, report
from affect_tf.cli.output import show_library_logs
from affect_tf.core import _env  # noqa: F401  (quiet TensorFlow logs before TF is imported)

__all__ = ["UsageError", "build_parser", "main"]

# The order of the commands in ``affect-tf --help``.
COMMAND_GROUPS = (data, pretrain, train, ablate, infer, gan, demo)


def build_parser() -> argparse.ArgumentParser:
    """The ``affect-tf`` argument parser with every command group."""
    parser = argparse.ArgumentParser(prog="affect-tf", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for group in COMMAND_GROUPS:
        group.add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``affect-tf`` console script."""
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # ``train --workers`` relaunches it
    show_library_logs()
    try:
        return args.func(args)
    except (*USER_ERRORS, KeyboardInterrupt) as e:
        return report(args.command, e)
