"""``affect-tf predict``, ``video``, ``explain`` and ``serve``: exported models at work."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from affect_tf.cli.errors import UsageError
from affect_tf.cli.flags import add_detector_flag, detector_of
from affect_tf.cli.output import print_table
from affect_tf.core.files import replaced_atomically


def default_model() -> str:
    """The shipped model's ``.keras`` file (``affect_tf.model.default``), checked against its
    card: ``explain`` needs gradients (``predict``/``video`` read the TFLite copy)."""
    from affect_tf.model.default import default_model_path

    return str(default_model_path())


def recognizer_for(args: argparse.Namespace):
    """``predict``'s and ``video``'s reader: ``--model``, else the shipped TFLite file (LiteRT,
    no TensorFlow: an answer within a second of starting)."""
    from affect_tf.inference import AffectRecognizer, InferenceError

    try:
        return AffectRecognizer.load(
            args.model, detector=detector_of(args), batch_size=args.batch_size
        )
    except InferenceError as e:
        raise UsageError(str(e)) from None


def _predict(args: argparse.Namespace) -> int:
    from affect_tf.inference import InferenceError, expand_inputs

    target = Path(args.input)
    if not target.exists():
        raise UsageError(
            f"Expected an image file or a folder of images. Received: {args.input!r} (not found)"
        )
    items = expand_inputs(target)
    if not items:
        raise UsageError(f"Expected image files in {args.input}. Received: none (jpg, png, ...)")
    recognizer = recognizer_for(args)
    single = target.is_file()
    try:
        table = recognizer.predict_images(
            items,
            faces=args.faces,
            on_error="raise" if single else "skip",
            progress=not args.quiet and not single,
        )
    except InferenceError as e:
        raise UsageError(str(e)) from None
    skipped = table.attrs["skipped"]
    for skip in skipped:
        print(f"skipped {skip['source']}: {skip['reason']}", file=sys.stderr)
    if args.csv:
        with replaced_atomically(args.csv) as partial:
            # File names that are not UTF-8 go back out as the bytes they were.
            table.to_csv(partial, index=False, float_format="%.6g", errors="surrogateescape")
    if args.json:
        body = {"faces": table.to_dict(orient="records"), "skipped": skipped}
        with replaced_atomically(args.json) as partial:
            partial.write_text(json.dumps(body, indent=1))
    if args.overlay:
        _write_overlays(table, target, Path(args.overlay), args.au_threshold)
    from affect_tf.core import outputs as tg

    # The AUs at or above --au-threshold, as a person reads them (the CSV/JSON keep each one).
    shown = table.assign(
        aus=[" ".join(tg.active_aus(row, args.au_threshold)) or "-" for _, row in table.iterrows()]
    )
    print_table(shown, ["source", "face", "expression", "valence", "arousal", "aus"])
    images = len(items) - len(skipped)
    print(
        f"{len(table)} faces in {images} images ({len(skipped)} skipped) with "
        f"{recognizer.kind} model {recognizer.path}"
        + "".join(
            f"; {k} -> {v}"
            for k, v in (("csv", args.csv), ("json", args.json), ("overlays", args.overlay))
            if v
        )
    )
    return 0 if len(table) else 1


def _write_overlays(table, target: Path, out_dir: Path, au_threshold: float) -> None:
    """One overlay per input image, at the image's path relative to the input folder (frames
    ``clip1/00000.jpg`` and ``clip2/00000.jpg`` must not overwrite each other), its extension
    kept (``same.jpg`` and ``same.png`` neither)."""
    from affect_tf.inference import read_image
    from affect_tf.inference.visualize import overlay_image, overlay_paths, write_jpeg

    groups = dict(list(table.groupby("source", sort=False)))
    paths = overlay_paths(list(groups), target if target.is_dir() else None, out_dir)
    for source, rows in groups.items():
        write_jpeg(paths[source], overlay_image(read_image(source), rows, au_threshold))


def _live_window(au_threshold: float):
    """An ``on_frame`` callback showing each frame with its face drawn (``--show``).

    Raises:
        UsageError: This OpenCV has no GUI (the headless wheel) or there is no display.
    """
    import os

    import cv2

    from affect_tf.core import outputs as tg
    from affect_tf.inference.visualize import draw_face

    # OpenCV's build information has a "GUI: <backend>" line; the headless wheel says NONE.
    backends = [
        line.split(":", 1)[1].strip()
        for line in cv2.getBuildInformation().splitlines()
        if line.strip().startswith("GUI:")
    ]
    gui = bool(backends) and "NONE" not in backends
    if not gui or not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise UsageError(
            "Expected OpenCV with a GUI and a display for --show. Received: "
            + ("no GUI in this OpenCV (pip install opencv-python)" if not gui else "no display")
            + "; write the overlay to a file with --overlay instead"
        )

    def show(rgb, row: dict) -> bool:
        frame = rgb.copy()
        if row["face_found"] and tg.VALENCE in row:
            outputs = {k: row[k][None] for k in tg.SERVING_OUTPUTS}
            draw_face(frame, {**row, **tg.outputs_frame(outputs).iloc[0]}, au_threshold)
        cv2.imshow("affect-tf", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        return cv2.waitKey(1) & 0xFF not in (ord("q"), 27)  # q or Esc: stop

    return show


def _video(args: argparse.Namespace) -> int:
    from affect_tf.inference import InferenceError, write_abaw
    from affect_tf.inference.video import parse_source, source_label

    source = parse_source(args.input)
    if args.overlay and isinstance(source, int):
        raise UsageError(
            "Expected a video file or stream for --overlay (it reads the video again). "
            f"Received: camera {source}; use --show for a live overlay"
        )
    on_frame = _live_window(args.au_threshold) if args.show else None
    recognizer = recognizer_for(args)
    try:
        table = recognizer.predict_video(
            source,
            every=args.every,
            smooth=args.smooth,
            progress=not args.quiet,
            max_frames=args.max_frames,
            track=not args.no_track,
            on_frame=on_frame,
        )
    except (InferenceError, ValueError) as e:
        raise UsageError(str(e)) from None
    out = Path(args.out)
    with replaced_atomically(out) as partial:
        table.to_csv(partial, index=False, float_format="%.6g")
    a = table.attrs
    print(
        f"{a['frames']} frames, {len(table)} read, {a['frames_with_face']} with a face "
        f"({a['frames_tracked']} tracked), "
        f"{a['seconds']:.1f} s ({len(table) / max(a['seconds'], 1e-9):.1f} frames/s); "
        f"smoothing {a['smooth'] or 'off'} -> {out}"
    )
    if args.plot:
        from affect_tf.inference.visualize import plot_va

        print(f"VA plot -> {plot_va(table, args.plot)}")
    if args.overlay:
        from affect_tf.inference.visualize import write_overlay_video

        written = write_overlay_video(args.input, table, args.overlay, args.au_threshold)
        print(f"overlay video -> {written}")
    if args.abaw:
        written = write_abaw(table, args.abaw, Path(source_label(source)).stem, args.au_threshold)
        print("ABAW files -> " + ", ".join(str(p) for p in written.values()))
    if not a["frames_with_face"]:
        print(
            f"affect-tf video: error: no face found in any frame of {args.input}", file=sys.stderr
        )
        return 1
    return 0


def _explain(args: argparse.Namespace) -> int:
    import affect_tf
    from affect_tf.core.layout import KERAS_FILE
    from affect_tf.inference import AffectRecognizer, InferenceError, read_image, resolve_model
    from affect_tf.inference.explain import explain, plot_explanation

    try:
        kind, path = resolve_model(args.model or default_model())
    except InferenceError as e:
        raise UsageError(str(e)) from None
    if kind == "tflite":
        raise UsageError(
            "Expected a SavedModel or .keras model: explanations need gradients. "
            "Received: a .tflite file"
        )
    keras_file = path if kind == "keras" else path / KERAS_FILE
    if not keras_file.is_file():
        raise UsageError(f"Expected the Keras model at {keras_file} (affect-tf exports it there)")
    model = affect_tf.load_model(keras_file)
    recognizer = AffectRecognizer.from_keras(model, detector=detector_of(args))
    try:
        image = read_image(args.image)
        detection = recognizer.detector.detect_one(image)
        if detection is None:
            raise InferenceError(f"Expected a face in the image. Received: {args.image} (none)")
        face = recognizer.align(image, detection.landmarks)
        result = explain(model, face, args.head, args.target)
    except (InferenceError, ValueError) as e:
        raise UsageError(str(e)) from None
    out = plot_explanation(face, result, args.out)
    print(
        f"{args.head} -> {result['target']} ({result['score']:.3f}); "
        f"face | saliency | Grad-CAM++ -> {out}"
    )
    return 0


def _serve(args: argparse.Namespace) -> int:
    from affect_tf.cli.serve import options_from_args, run_server

    if not args.model_base_path and not args.model_config_file:
        from affect_tf.export.saved_model import default_serving_base

        print("serving the shipped model (exported once as a SavedModel; --model_base_path "
              "serves another)", flush=True)  # fmt: skip
        args.model_base_path = str(default_serving_base())
    return run_server(options_from_args(args))


def add_commands(sub) -> None:
    """Adds ``predict``, ``video``, ``explain`` and ``serve``."""

    def model_flags(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--model",
            help="SavedModel folder, TF Serving base folder (newest version), .keras or .tflite "
            "(default: the model the package ships, FER+ expressions + SynthAffect VA/AUs)",
        )
        p.add_argument("--batch-size", type=int, default=32, help="faces per model call")
        p.add_argument("--au-threshold", type=float, default=0.5, help="AU shown active from")
        p.add_argument("--quiet", action="store_true", help="no progress bar")
        add_detector_flag(p)

    p = sub.add_parser("predict", help="faces in an image or a folder of images -> predictions")
    p.add_argument("input", metavar="IMAGE_OR_DIR")
    model_flags(p)
    p.add_argument("--faces", choices=("all", "largest"), default="all")
    p.add_argument("--csv", help="write the table as CSV")
    p.add_argument("--json", help="write the table (and the skipped files) as JSON")
    p.add_argument("--overlay", help="folder for the images with the predictions drawn")
    p.set_defaults(func=_predict)

    p = sub.add_parser("video", help="the main face through a video -> per-frame predictions")
    p.add_argument(
        "input",
        metavar="VIDEO",
        help="a video file, a stream URL (rtsp://, http://, file://) or a camera index (0)",
    )
    model_flags(p)
    p.add_argument("--out", required=True, help="per-frame CSV")
    p.add_argument("--every", type=int, default=1, help="read every N-th frame (default 1)")
    p.add_argument("--smooth", default="mean:15", help="mean:K, median:K or none (default mean:15)")
    p.add_argument("--max-frames", type=int, help="stop after this many frames")
    p.add_argument(
        "--no-track",
        action="store_true",
        help="run the full detector on every frame (default: follow the face: the face mesh "
        "for blazeface, O-Net for mtcnn)",
    )
    p.add_argument("--overlay", help="write the video with the predictions drawn (mp4)")
    p.add_argument(
        "--show",
        action="store_true",
        help="show the frames live with the predictions drawn (OpenCV with a GUI; q quits)",
    )
    p.add_argument("--plot", help="write valence/arousal over time (PNG)")
    p.add_argument("--abaw", help="write the ABAW VA/EXPR/AU prediction files into this folder")
    p.set_defaults(func=_video)

    p = sub.add_parser("explain", help="saliency and Grad-CAM++ of one output for one face")
    p.add_argument("image", metavar="IMAGE")
    p.add_argument(
        "--model", help="SavedModel folder/base folder or .keras (default: the shipped model)"
    )
    p.add_argument("--head", choices=("expression", "au", "va"), default="expression")
    p.add_argument("--target", help="expression name, AU (AU12) or valence/arousal (default: top)")
    p.add_argument("--out", required=True, help="PNG: face | saliency | Grad-CAM++")
    add_detector_flag(p)
    p.set_defaults(func=_explain)

    from affect_tf.cli.serve import add_flags

    p = sub.add_parser(
        "serve",
        help="development model server with TF Serving's gRPC/REST protocol and flags",
        description="Development server speaking TF Serving's protocol; production uses "
        "TF Serving (serving/).",
    )
    add_flags(p)
    p.set_defaults(func=_serve, model_base_path=None)
