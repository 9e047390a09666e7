"""Flags several commands share."""

from __future__ import annotations

import argparse

from affect_tf.face.registry import DEFAULT_DETECTOR, DETECTORS


def add_detector_flag(parser: argparse.ArgumentParser) -> None:
    """``--detector {blazeface,mtcnn}``: which face detector finds the faces."""
    parser.add_argument(
        "--detector",
        choices=DETECTORS,
        default=DEFAULT_DETECTOR,
        help=f"face detector (default {DEFAULT_DETECTOR}; see docs/faces.md)",
    )
