"""Flags several commands share."""

from __future__ import annotations

import argparse

from affect_tf.cli.errors import UsageError
from affect_tf.face.registry import DEFAULT_DETECTOR, DETECTORS, SMALLEST_MIN_FACE


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


def check_min_face(args: argparse.Namespace) -> None:
    """``--min-face`` below ``SMALLEST_MIN_FACE`` is a usage error naming the flag."""
    if args.min_face is not None and args.min_face < SMALLEST_MIN_FACE:
        raise UsageError(
            f"Expected --min-face >= {SMALLEST_MIN_FACE} pixels. Received: {args.min_face}"
        )


def detector_of(args: argparse.Namespace):
    """The detector the flags ask for: its name, or a built one when ``--min-face`` is set."""
    check_min_face(args)
    if args.min_face is None:
        return args.detector
    from affect_tf.face.registry import make_detector

    return make_detector(args.detector, min_face=args.min_face)
