"""Flags several commands share."""

from __future__ import annotations

import argparse

from affect_tf.cli.errors import UsageError
from affect_tf.face.registry import DEFAULT_DETECTOR, DETECTORS, SMALLEST_MIN_FACE


def add_detector_flag(parser: argparse.ArgumentParser) -> None:
    """``--detector {blazeface,mtcnn,none}`` and ``--min-face N``: which face detector finds
    the faces (``none``: the whole image is the face), and the smallest face it looks for."""
    parser.add_argument(
        "--detector",
        choices=DETECTORS,
        default=DEFAULT_DETECTOR,
        help=f"face detector (default {DEFAULT_DETECTOR}; none: each image is one ready-cropped "
        "face; see docs/faces.md)",
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


# The SynthAffect generator's nuisance settings (``SynthConfig``), shared by ``synth`` and
# ``pretrain``: flag -> (attribute, type, help).
SYNTH_NUISANCE_FLAGS = {
    "--backgrounds": (
        "backgrounds",
        str,
        "clutter (drawn shapes), photo (bundled photographs) or mixed; default clutter",
    ),
    "--yaw-range": ("yaw_range", float, "head yaw drawn in +- this many radians (default 0.45)"),
    "--jpeg-min-quality": (
        "jpeg_min_quality",
        int,
        "0: off (default); else each frame is JPEG-degraded at a quality in [Q, 95]",
    ),
    "--noise-max": ("noise_max", float, "largest sensor-noise standard deviation (default 5)"),
    "--accessory-rate": (
        "accessory_rate",
        float,
        "per-video chance of glasses and, independently, of a beard (default 0: none)",
    ),
    "--pitch-range": (
        "pitch_range",
        float,
        "head pitch drawn in +- this many radians (default 0: none)",
    ),
    "--fringe-rate": (
        "fringe_rate",
        float,
        "per-video chance of a fringe over the brows (default 0: none)",
    ),
    "--mask-rate": (
        "mask_rate",
        float,
        "per-video chance of a face mask over nose, mouth and chin (default 0: none)",
    ),
    "--low-res-rate": (
        "low_res_rate",
        float,
        "per-frame chance of a low-resolution face, 10-32 px wide (default 0: none)",
    ),
    "--intensity-min": (
        "intensity_min",
        float,
        "expressions drawn at an intensity in [I, 1] (default 0.6; lower adds subtle ones)",
    ),
}


def add_synth_nuisance_flags(parser: argparse.ArgumentParser) -> None:
    """The generator's nuisance flags (``SYNTH_NUISANCE_FLAGS``: ``--backgrounds`` ...
    ``--intensity-min``)."""
    for flag, (dest, kind, text) in SYNTH_NUISANCE_FLAGS.items():
        parser.add_argument(flag, dest=dest, type=kind, default=None, help=text)


def synth_nuisances(args: argparse.Namespace) -> dict:
    """The nuisance settings given on the command line (``SynthConfig`` keyword arguments)."""
    return {
        dest: getattr(args, dest)
        for dest, _, _ in SYNTH_NUISANCE_FLAGS.values()
        if getattr(args, dest) is not None
    }
