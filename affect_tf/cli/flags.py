"""Flags several commands share."""

from __future__ import annotations

import argparse

from affect_tf.face.registry import DEFAULT_DETECTOR, DETECTORS


def add_detector_flag(parser: argparse.ArgumentParser) -> None:
    """``--detector {blazeface,mtcnn}`` and ``--min-face N``: which face detector finds the
    faces, and the smallest face it looks for."""
    parser.add_argument(
        "--detector",
        choices=DETECTORS,
        default=DEFAULT_DETECTOR,
        help=f"face detector (default {DEFAULT_DETECTOR}; see docs/faces.md)",
    )
    parser.add_argument(
        "--min-face",
        type=int,
        default=None,
        help="smallest face side in pixels to look for (default: blazeface 40, mtcnn 20; "
        "lower finds smaller faces in group photos, more slowly)",
    )


def detector_of(args: argparse.Namespace):
    """The detector the flags ask for: its name, or a built one when ``--min-face`` is set."""
    if args.min_face is None:
        return args.detector
    from affect_tf.cli.errors import as_usage_error
    from affect_tf.face.registry import make_detector

    with as_usage_error(ValueError):
        return make_detector(args.detector, min_face=args.min_face)
