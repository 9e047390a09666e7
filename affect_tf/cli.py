"""The ``affect-tf`` command line: synth, convert, train, evaluate, predict and demo."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from affect_tf import _env  # noqa: F401  (quiet TensorFlow logs before TF is imported)


class UsageError(Exception):
    """A user mistake: reported as one line and exit status 2, never a traceback."""


def _synth(args: argparse.Namespace) -> int:
    from affect_tf.data.synth import SynthConfig, expression_grid, write_corpus, write_video

    try:
        config = SynthConfig(
            n=args.n,
            size=args.size,
            frames_per_video=args.frames_per_video,
            seed=args.seed,
            image_format=args.format,
        )
    except ValueError as e:
        raise UsageError(str(e)) from None
    if args.video:
        path = write_video(config, args.out)
        print(
            f"SynthAffect video: {config.num_videos} clips of {config.frames_per_video} "
            f"frames -> {path}"
        )
        return 0
    start = time.perf_counter()
    manifest = write_corpus(config, args.out, workers=args.workers, progress=not args.quiet)
    seconds = time.perf_counter() - start
    print(
        f"SynthAffect: {config.n} images ({config.num_videos} videos, {config.size}x{config.size}, "
        f"seed {config.seed}) in {seconds:.1f} s ({config.n / seconds:.0f} img/s) -> {manifest}"
    )
    if args.grid:
        print(
            "grid of faces per expression: "
            f"{expression_grid(args.grid, size=config.size, seed=config.seed)}"
        )
    return 0


def _convert(args: argparse.Namespace) -> int:
    from affect_tf.data.convert import Converter, convert_corpus

    result = convert_corpus(
        args.format,
        args.root,
        args.out,
        split=args.split,
        converter=Converter(policy=args.policy),
        progress=not args.quiet,
        workers=args.workers,
    )
    print(result.format())
    if result.stats.written == 0:
        print(f"affect-tf convert: error: no usable example in {args.root}", file=sys.stderr)
        return 1
    return 0


def _demo(args: argparse.Namespace) -> int:
    """SynthAffect -> tf.Examples -> train -> evaluate on held-out faces -> summary.

    The TFX pipeline (issue "TFX pipeline") replaces this with the same steps as components.
    """
    from affect_tf.data.convert import convert_corpus
    from affect_tf.data.synth import SynthConfig, expression_grid, write_corpus
    from affect_tf.model import get_preset
    from affect_tf.report import format_report
    from affect_tf.training import evaluate, train

    out = Path(args.out)
    timings: dict[str, float] = {}
    # Three corpora, three seeds: the validation (early stopping) and test people are new.
    corpora = {
        "train": SynthConfig(n=args.n, size=args.size, seed=args.seed),
        "validation": SynthConfig(n=max(32, args.n // 8), size=args.size, seed=args.seed + 2),
        "test": SynthConfig(n=max(64, args.n // 4), size=args.size, seed=args.seed + 1),
    }
    print(
        f"[1/4] rendering SynthAffect: {corpora['train'].n} training, "
        f"{corpora['validation'].n} validation and {corpora['test'].n} held-out test faces, "
        f"each set of other people -> {out}"
    )
    start = time.perf_counter()
    for name, config in corpora.items():
        write_corpus(config, out / f"synth_{name}", progress=True)
    timings["synth"] = time.perf_counter() - start
    grid = expression_grid(out / "synthaffect_grid.png", size=args.size, seed=args.seed)

    print("[2/4] converting the manifest corpora to tf.Examples")
    start = time.perf_counter()
    results = {}
    for name in corpora:
        results[name] = convert_corpus(
            "manifest", out / f"synth_{name}", out / f"{name}.tfrecord.gz"
        )
    timings["convert"] = time.perf_counter() - start

    config = get_preset(args.preset, epochs=args.epochs or get_preset(args.preset).epochs)
    print(
        f"[3/4] training preset {config.name!r} ({config.backbone}, {config.heads} heads, "
        f"{config.image_size}px) for {config.epochs} epochs"
    )
    start = time.perf_counter()
    trained = train(
        config,
        [str(results["train"].out_path)],
        out / "model",
        val_files=[str(results["validation"].out_path)],
        resume=False,
    )
    timings["train"] = time.perf_counter() - start

    print("[4/4] evaluating on the held-out faces")
    start = time.perf_counter()
    test_files = [str(results["test"].out_path)]
    metrics = evaluate(trained.model, test_files)
    smoothed = evaluate(trained.model, test_files, smooth="mean:5")
    timings["evaluate"] = time.perf_counter() - start

    stats = results["train"].stats.to_dict()
    print("summary")
    print(
        f"  data:     {stats['written']} training examples ({stats['videos']} videos; labelled VA "
        f"{stats['labelled']['va']}, expression {stats['labelled']['expression']}, AU "
        f"{stats['labelled']['au']}), {results['test'].stats.written} held-out"
    )
    for title, m in (("held-out", metrics), ("+ mean:5", smoothed)):
        print(f"  {title:9s} {format_report(m)}")
    print("  times:    " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()))
    print("artifacts:")
    print(f"  corpora        {out}/synth_{{train,validation,test}}/ (manifest.csv + images)")
    print(f"  tf.Examples    {out}/{{train,validation,test}}.tfrecord.gz (+ .report.json)")
    print(f"  model          {out / 'model' / 'model.keras'}")
    print(f"  curves         {out / 'model' / 'training_curves.png'}")
    print(f"  face grid      {grid}")
    summary = {
        "timings_s": timings,
        "data": stats,
        "held_out": metrics,
        "held_out_smoothed": smoothed,
        "model": str(out / "model" / "model.keras"),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(f"  summary        {out / 'summary.json'}")
    print("Next: the TFX pipeline, TF Serving/TFLite export and serving are later issues.")
    return 0


def _training_files(data: str, out: Path) -> list[str]:
    """TFRecords for ``--data``: tf.Example files as they are; a manifest corpus is converted
    once into ``OUT/data/examples.tfrecord.gz`` (reused when the manifest has not changed)."""
    from affect_tf.data.dataset import resolve_files
    from affect_tf.data.manifest import MANIFEST_NAMES

    path = Path(data)
    manifest = path if path.name in MANIFEST_NAMES else None
    if path.is_dir() and any((path / n).is_file() for n in MANIFEST_NAMES):
        manifest = path
    if manifest is None:
        try:
            return resolve_files(data)
        except FileNotFoundError as e:
            raise UsageError(str(e)) from None
    from affect_tf.data.convert import convert_corpus
    from affect_tf.data.manifest import find_manifest

    source = find_manifest(manifest)
    target = out / "data" / "examples.tfrecord.gz"
    if target.is_file() and target.stat().st_mtime >= source.stat().st_mtime:
        print(f"using {target} (converted from {source})")
        return [str(target)]
    print(f"converting {source} -> {target}")
    print(convert_corpus("manifest", manifest, target).format())
    return [str(target)]


def _load_model(path: str):
    import affect_tf

    model_path = Path(path)
    if model_path.is_dir():
        model_path = model_path / "model.keras"
    if not model_path.is_file():
        raise UsageError(
            "Expected a .keras model file or a training folder holding model.keras. "
            f"Received: --model {path}"
        )
    try:
        return affect_tf.load_model(model_path)
    except Exception as e:
        raise UsageError(
            f"Expected an affect-tf .keras model. Received: {model_path} ({type(e).__name__}: {e})"
        ) from None


def _train(args: argparse.Namespace) -> int:
    from affect_tf.model import get_preset
    from affect_tf.report import format_report
    from affect_tf.training import train

    overrides = {}
    if args.heads:
        overrides["heads"] = args.heads
    if args.backbone:
        overrides["backbone"] = args.backbone
    if args.tasks:
        overrides["tasks"] = tuple(t.strip() for t in args.tasks.split(","))
    if args.batch_size:
        overrides["batch_size"] = args.batch_size
    for name in ("weights", "schedule", "imbalance", "augment", "warmup_epochs"):
        if getattr(args, name) is not None:
            overrides[name] = getattr(args, name)
    if args.backbone_lr_scale is not None:
        overrides["backbone_lr_scale"] = args.backbone_lr_scale
    if args.cache_embeddings:
        overrides["cache_embeddings"] = True
    if args.weights and args.schedule is None and get_preset(args.preset).schedule == "scratch":
        overrides["schedule"] = "finetune"  # pretrained weights: fine-tune unless told
    if args.weights == "":
        overrides["schedule"] = args.schedule or "scratch"
    try:
        config = get_preset(args.preset, **overrides)
    except ValueError as e:
        raise UsageError(str(e)) from None
    if args.warm_start and not Path(args.warm_start).is_file():
        raise UsageError(f"Expected a .keras model. Received: --warm-start {args.warm_start}")
    out = Path(args.out)
    files = _training_files(args.data, out)
    val_files = _training_files(args.val_data, out / "val") if args.val_data else None
    print(
        f"training preset {config.name!r} ({config.backbone}, {config.heads} heads, "
        f"{config.image_size}px, tasks {','.join(config.tasks)}; weights "
        f"{config.weights or 'random'}, schedule {config.schedule}, imbalance "
        f"{config.imbalance}, augment {config.augment}) -> {out}"
    )
    try:
        result = train(
            config,
            files,
            out,
            val_files=val_files,
            epochs=args.epochs,
            patience=args.patience,
            steps_per_epoch=args.steps_per_epoch,
            resume=not args.no_resume,
            verbose=2,
            seed=args.seed,
            warm_start=args.warm_start,
        )
    except ValueError as e:  # data that cannot train, weights that cannot be had or do not fit
        raise UsageError(str(e)) from None
    v = result.validation
    print(f"done in {result.seconds:.0f} s; validation ({v['n']} examples): {format_report(v)}")
    print(f"model: {out / 'model.keras'}; curves: {out / 'training_curves.png'}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from affect_tf.report import format_report, gate
    from affect_tf.smoothing import parse_smooth
    from affect_tf.training import evaluate, load_au_thresholds

    from_model = args.au_thresholds == "model"
    try:
        parse_smooth(args.smooth)
        thresholds = 0.5 if from_model else load_au_thresholds(args.au_thresholds)
    except ValueError as e:
        raise UsageError(str(e)) from None
    model = _load_model(args.model)
    if from_model:
        if model.au_thresholds is None:
            raise UsageError(
                "Expected a model with AU thresholds tuned on validation data (trained on AU "
                f"labels). Received: --model {args.model} without them"
            )
        thresholds = model.au_thresholds
    out = Path(args.out) if args.out else None
    files = _training_files(args.data, (out.parent if out else Path("runs")) / "evaluate")
    result = evaluate(model, files, smooth=args.smooth, au_thresholds=thresholds)
    failures, notes = gate(result)
    result["gate"] = {"passed": not failures, "failures": failures, "notes": notes}
    text = json.dumps(result, indent=2)
    print(text)
    print(format_report(result), file=sys.stderr)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
    return 0


def _predict_examples(args: argparse.Namespace) -> int:
    from affect_tf.smoothing import parse_smooth
    from affect_tf.training import predict_table

    try:
        parse_smooth(args.smooth)
    except ValueError as e:
        raise UsageError(str(e)) from None
    model = _load_model(args.model)
    out = Path(args.out)
    files = _training_files(args.data, out.parent / "predict")
    table = predict_table(model, files, smooth=args.smooth)
    out.parent.mkdir(parents=True, exist_ok=True)
    # %.9g writes float32 values exactly, so metrics recomputed from the file match.
    table.to_csv(out, index=False, float_format="%.9g")
    print(f"wrote {len(table)} rows to {out}")
    return 0


def _pipeline_summary(args: argparse.Namespace) -> int:
    from affect_tf.pipeline.config import ConfigError, PipelineConfig
    from affect_tf.pipeline.summary import format_summary, summarize

    try:
        config = PipelineConfig.load(**({"output_root": args.out} if args.out else {}))
    except ConfigError as e:
        raise UsageError(str(e)) from None
    try:
        summary = summarize(config)
    except (FileNotFoundError, ValueError) as e:
        raise UsageError(str(e)) from None
    print(format_summary(summary))
    return 0 if summary["blessed"] or not args.require_blessed else 1


# --- inference and serving -------------------------------------------------------------------


def _default_model() -> str:
    """The newest model the demo pipeline pushed (``AFFECT_OUTPUT_ROOT`` aware)."""
    from affect_tf.pipeline.config import ConfigError, PipelineConfig

    try:
        return PipelineConfig.load().serving_dir
    except ConfigError:
        return "runs/demo/serving/affect"


def _recognizer(args: argparse.Namespace):
    from affect_tf.inference import AffectRecognizer, InferenceError

    model = args.model or _default_model()
    try:
        return AffectRecognizer.load(model, batch_size=args.batch_size)
    except InferenceError as e:
        hint = "" if args.model else " (run `make demo` first, or pass --model)"
        raise UsageError(f"{e}{hint}") from None


def _print_table(table, columns: list[str], limit: int = 20) -> None:
    import pandas as pd

    with pd.option_context("display.width", 160, "display.max_columns", 30):
        print(table[columns].head(limit).to_string(index=False, float_format="%.3f"))
    if len(table) > limit:
        print(f"... {len(table) - limit} more rows")


def _predict(args: argparse.Namespace) -> int:
    from affect_tf.inference import InferenceError, expand_inputs, read_image

    target = Path(args.input)
    if not target.exists():
        raise UsageError(
            f"Expected an image file or a folder of images. Received: {args.input!r} (not found)"
        )
    items = expand_inputs(target)
    if not items:
        raise UsageError(f"Expected image files in {args.input}. Received: none (jpg, png, ...)")
    recognizer = _recognizer(args)
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
        Path(args.csv).parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(args.csv, index=False, float_format="%.6g")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(
            json.dumps({"faces": table.to_dict(orient="records"), "skipped": skipped}, indent=1)
        )
    if args.overlay:
        import cv2

        from affect_tf.visualize import overlay_image

        out_dir = Path(args.overlay)
        out_dir.mkdir(parents=True, exist_ok=True)
        for source, rows in table.groupby("source", sort=False):
            drawn = overlay_image(read_image(source), rows, args.au_threshold)
            cv2.imwrite(
                str(out_dir / (Path(source).stem + ".jpg")), cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR)
            )
    _print_table(table, ["source", "face", "expression", "valence", "arousal"])
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


def _video(args: argparse.Namespace) -> int:
    from affect_tf.inference import InferenceError, write_abaw

    recognizer = _recognizer(args)
    try:
        table = recognizer.predict_video(
            args.input,
            every=args.every,
            smooth=args.smooth,
            progress=not args.quiet,
            max_frames=args.max_frames,
            track=not args.no_track,
        )
    except (InferenceError, ValueError) as e:
        raise UsageError(str(e)) from None
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out, index=False, float_format="%.6g")
    a = table.attrs
    print(
        f"{a['frames']} frames, {len(table)} read, {a['frames_with_face']} with a face "
        f"({a['frames_tracked']} tracked), "
        f"{a['seconds']:.1f} s ({len(table) / max(a['seconds'], 1e-9):.1f} frames/s); "
        f"smoothing {a['smooth'] or 'off'} -> {out}"
    )
    if args.plot:
        from affect_tf.visualize import plot_va

        print(f"VA plot -> {plot_va(table, args.plot)}")
    if args.overlay:
        from affect_tf.visualize import write_overlay_video

        written = write_overlay_video(args.input, table, args.overlay, args.au_threshold)
        print(f"overlay video -> {written}")
    if args.abaw:
        written = write_abaw(table, args.abaw, Path(args.input).stem, args.au_threshold)
        print("ABAW files -> " + ", ".join(str(p) for p in written.values()))
    if not a["frames_with_face"]:
        print(
            f"affect-tf video: error: no face found in any frame of {args.input}", file=sys.stderr
        )
        return 1
    return 0


def _explain(args: argparse.Namespace) -> int:
    import affect_tf
    from affect_tf.explain import explain, plot_explanation
    from affect_tf.export import KERAS_FILE
    from affect_tf.inference import AffectRecognizer, InferenceError, read_image, resolve_model

    try:
        kind, path = resolve_model(args.model or _default_model())
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
    recognizer = AffectRecognizer.from_keras(model)
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


def _export(args: argparse.Namespace) -> int:
    from affect_tf.export import SIGNATURES, export_saved_model, next_version

    model = _load_model(args.model)
    out = Path(args.out)
    version_dir = out / str(args.version) if args.version else next_version(out)
    if version_dir.exists():
        raise UsageError(f"Expected a new version folder. Received: {version_dir} (exists)")
    export_saved_model(model, export_dir=version_dir)
    print(f"SavedModel ({', '.join(SIGNATURES)}) -> {version_dir}")
    return 0


def _serve(args: argparse.Namespace) -> int:
    from affect_tf.serving.server import serve

    if not args.model_base_path and not args.model_config_file:
        args.model_base_path = _default_model()
    try:
        return serve(args)
    except (ValueError, OSError) as e:
        raise UsageError(str(e)) from None


def add_inference_commands(sub) -> None:
    def model_flags(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--model",
            help="SavedModel folder, TF Serving base folder (newest version), .keras or .tflite "
            "(default: the demo pipeline's pushed model)",
        )
        p.add_argument("--batch-size", type=int, default=32, help="faces per model call")
        p.add_argument("--au-threshold", type=float, default=0.5, help="AU shown active from")
        p.add_argument("--quiet", action="store_true", help="no progress bar")

    p = sub.add_parser("predict", help="faces in an image or a folder of images -> predictions")
    p.add_argument("input", metavar="IMAGE_OR_DIR")
    model_flags(p)
    p.add_argument("--faces", choices=("all", "largest"), default="all")
    p.add_argument("--csv", help="write the table as CSV")
    p.add_argument("--json", help="write the table (and the skipped files) as JSON")
    p.add_argument("--overlay", help="folder for the images with the predictions drawn")
    p.set_defaults(func=_predict)

    p = sub.add_parser("video", help="the main face through a video -> per-frame predictions")
    p.add_argument("input", metavar="IN.mp4")
    model_flags(p)
    p.add_argument("--out", required=True, help="per-frame CSV")
    p.add_argument("--every", type=int, default=1, help="read every N-th frame (default 1)")
    p.add_argument("--smooth", default="mean:15", help="mean:K, median:K or none (default mean:15)")
    p.add_argument("--max-frames", type=int, help="stop after this many frames")
    p.add_argument(
        "--no-track",
        action="store_true",
        help="run full MTCNN detection on every frame (default: follow the face with O-Net)",
    )
    p.add_argument("--overlay", help="write the video with the predictions drawn (mp4)")
    p.add_argument("--plot", help="write valence/arousal over time (PNG)")
    p.add_argument("--abaw", help="write the ABAW VA/EXPR/AU prediction files into this folder")
    p.set_defaults(func=_video)

    p = sub.add_parser("explain", help="saliency and Grad-CAM++ of one output for one face")
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("--model", help="SavedModel folder/base folder or .keras (default: the demo's)")
    p.add_argument("--head", choices=("expression", "au", "va"), default="expression")
    p.add_argument("--target", help="expression name, AU (AU12) or valence/arousal (default: top)")
    p.add_argument("--out", required=True, help="PNG: face | saliency | Grad-CAM++")
    p.set_defaults(func=_explain)

    p = sub.add_parser("export", help="a .keras model -> a SavedModel version for TF Serving")
    p.add_argument("--model", required=True, help="model.keras or a training folder")
    p.add_argument("--out", required=True, help="TF Serving base folder (the version goes inside)")
    p.add_argument("--version", type=int, help="version number (default: one above the newest)")
    p.set_defaults(func=_export)

    from affect_tf.serving.server import add_flags

    p = sub.add_parser(
        "serve",
        help="development model server with TF Serving's gRPC/REST protocol and flags",
        description="Development server speaking TF Serving's protocol; production uses "
        "TF Serving (serving/).",
    )
    add_flags(p)
    p.set_defaults(func=_serve, model_base_path=None)


def add_train_command(sub) -> None:
    """``affect-tf train``: the model, transfer learning, imbalance and augmentation flags."""
    from affect_tf.model.config import BACKBONE_NAMES, IMBALANCE, PRESETS, SCHEDULES

    p = sub.add_parser("train", help="train an AffectModel on tf.Examples or a manifest corpus")
    p.add_argument(
        "--data", required=True, help="tf.Example file/folder/glob, or a manifest corpus folder"
    )
    p.add_argument("--val-data", help="validation data (default: 10 %% of the videos of --data)")
    p.add_argument("--preset", default="tiny", choices=sorted(PRESETS))
    p.add_argument("--heads", choices=("mlp", "gcn"), help="override the preset's heads")
    p.add_argument("--backbone", choices=BACKBONE_NAMES, help="override the preset's backbone")
    p.add_argument(
        "--tasks", help="comma-separated subset of va,expression,au (single-task training)"
    )
    p.add_argument("--epochs", type=int, help="override the preset's epochs")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--steps-per-epoch", type=int)
    p.add_argument("--patience", type=int, default=5, help="early stopping on validation P_MTL")
    p.add_argument(
        "--weights",
        help="backbone init: imagenet (Keras' download), a .weights.h5 file, an earlier .keras "
        "model's backbone, or '' for random (default: the preset's)",
    )
    p.add_argument(
        "--schedule",
        choices=SCHEDULES,
        help="scratch | frozen (heads only) | finetune (frozen warm-up, then all at a lower "
        "backbone learning rate); default the preset's, finetune when --weights is given",
    )
    p.add_argument("--warmup-epochs", type=int, help="finetune: frozen epochs first")
    p.add_argument(
        "--cache-embeddings",
        action="store_true",
        help="frozen: run the backbone once and train the heads on its features (fast)",
    )
    p.add_argument("--backbone-lr-scale", type=float, help="finetune: backbone LR factor")
    p.add_argument(
        "--imbalance", choices=IMBALANCE, help="expression class imbalance (default the preset's)"
    )
    p.add_argument(
        "--augment",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="augmentation layers in the model while training (default the preset's)",
    )
    p.add_argument("--warm-start", help="start every weight from an earlier .keras model")
    p.add_argument(
        "--no-resume", action="store_true", help="start over even if OUT holds an unfinished run"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="output folder")
    p.set_defaults(func=_train)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="affect-tf", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("synth", help="render the SynthAffect corpus (images + manifest.csv)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--n", type=int, default=512, help="number of images (default 512)")
    p.add_argument("--size", type=int, default=128, help="frame side in pixels (default 128)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--frames-per-video", type=int, default=8, help="frames per video (1: stills)")
    p.add_argument("--format", choices=("jpg", "png"), default="jpg", help="image format")
    p.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    p.add_argument("--grid", help="also write a grid image of faces per expression to this PNG")
    p.add_argument(
        "--video",
        action="store_true",
        help="write the videos one after another as one mp4 (OUT is the .mp4 file) instead",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_synth)

    from affect_tf.data import READERS, SPLITS

    p = sub.add_parser("convert", help="convert a corpus to GZIP tf.Examples")
    p.add_argument("--format", required=True, choices=sorted(READERS))
    p.add_argument("--root", required=True, help="corpus folder (see docs/datasets.md)")
    p.add_argument("--split", choices=SPLITS, default="train", help="AffectNet/Aff-Wild2 split")
    p.add_argument("--out", required=True, help="output .tfrecord.gz")
    p.add_argument(
        "--policy",
        choices=("largest", "confident"),
        default="largest",
        help="which detected face to keep",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=0,
        help="processes finding faces (default 0: every core when faces must be detected)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_convert)

    add_train_command(sub)
    from affect_tf.model.config import PRESETS

    def model_and_data(p: argparse.ArgumentParser) -> None:
        p.add_argument("--model", required=True, help="model.keras, or a training folder")
        p.add_argument(
            "--data", required=True, help="tf.Example file/folder/glob, or a manifest corpus folder"
        )
        p.add_argument("--smooth", help="temporal smoothing within videos: mean:15, median:9")

    p = sub.add_parser("evaluate", help="ABAW metrics of a model on labelled data (JSON)")
    model_and_data(p)
    p.add_argument(
        "--au-thresholds",
        help="AU decision threshold: a number (default 0.5), the au_thresholds.json that "
        "training tuned on its validation split, or 'model' (the thresholds saved in it)",
    )
    p.add_argument("--out", help="also write the JSON here")
    p.set_defaults(func=_evaluate)

    p = sub.add_parser(
        "predict-examples", help="per-example predictions (and labels, masks) of tf.Examples as CSV"
    )
    model_and_data(p)
    p.add_argument("--out", required=True, help="CSV file")
    p.set_defaults(func=_predict_examples)

    add_inference_commands(sub)

    from affect_tf.gan.cli import add_gan_commands

    add_gan_commands(sub)

    p = sub.add_parser(
        "demo",
        help="without TFX: SynthAffect -> tf.Examples -> train -> held-out evaluation "
        "(`make demo` runs the TFX pipeline)",
    )
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--n", type=int, default=2048, help="training faces (held-out: a quarter)")
    p.add_argument("--size", type=int, default=96, help="SynthAffect frame size")
    p.add_argument("--preset", default="tiny", choices=sorted(PRESETS))
    p.add_argument("--epochs", type=int, help="override the preset's epochs")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_demo)

    p = sub.add_parser("pipeline", help="the TFX pipeline's results (run it with the tfx CLI)")
    pipeline_sub = p.add_subparsers(dest="pipeline_command", required=True)
    q = pipeline_sub.add_parser(
        "summary", help="summarise the last run from ML Metadata into OUTPUT/summary.json"
    )
    q.add_argument(
        "--out", help="the pipeline's output_root (default: AFFECT_OUTPUT_ROOT or runs/demo)"
    )
    q.add_argument(
        "--require-blessed", action="store_true", help="exit 1 when the model was not blessed"
    )
    q.set_defaults(func=_pipeline_summary)
    return parser


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


def _show_library_logs() -> None:
    logger = logging.getLogger("affect_tf")
    if not any(isinstance(h, _StdoutHandler) for h in logger.handlers):
        logger.addHandler(_StdoutHandler())
    logger.setLevel(logging.INFO)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``affect-tf`` console script."""
    from affect_tf.data.corpus import CorpusError

    args = build_parser().parse_args(argv)
    _show_library_logs()
    try:
        return args.func(args)
    except (UsageError, CorpusError) as e:
        print(f"affect-tf {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"affect-tf {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
