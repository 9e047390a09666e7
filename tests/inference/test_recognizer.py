"""AffectRecognizer: real MTCNN faces, the three model formats giving the same numbers, bad
inputs skipped and counted, video with smoothing, the ABAW layout, overlays and plots."""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from affect_tf.core.labels import AUS, EXPRESSIONS
from affect_tf.data.targets import outputs_frame
from affect_tf.evaluation.smoothing import smooth_sequence
from affect_tf.face.detect import box_iou
from affect_tf.inference import (
    AffectRecognizer,
    InferenceError,
    read_image,
    resolve_model,
    write_abaw,
)


@pytest.fixture(scope="module")
def recognizer(exported, detector):
    return AffectRecognizer.load(exported["base"], detector=detector)


@pytest.fixture(scope="module")
def photo_dir(tmp_path_factory, astronaut):
    folder = tmp_path_factory.mktemp("photos")
    Image.fromarray(astronaut).save(folder / "astronaut.jpg", quality=95)
    Image.fromarray(np.full((96, 96, 3), 200, np.uint8)).save(folder / "blank.png")
    data = (folder / "astronaut.jpg").read_bytes()
    (folder / "truncated.jpg").write_bytes(data[: len(data) // 3])
    (folder / "notes.jpg").write_bytes(b"not an image at all")
    return folder


def test_outputs_frame_names_columns_by_label():
    outputs = {
        "expression": np.eye(8)[[4, 0]],
        "au": np.full((2, 12), 0.25),
        "valence": np.array([0.5, -0.5]),
        "arousal": np.array([0.1, 0.2]),
    }
    table = outputs_frame(outputs)
    assert list(table.columns) == [*EXPRESSIONS, "expression", *AUS, "valence", "arousal"]
    assert table["expression"].tolist() == ["Happiness", "Neutral"]
    assert table["AU12"].tolist() == [0.25, 0.25] and table["valence"].tolist() == [0.5, -0.5]


def test_resolve_model_kinds_and_errors(exported, tmp_path):
    assert resolve_model(exported["base"]) == ("saved_model", exported["version"])
    assert resolve_model(exported["version"])[0] == "saved_model"
    assert resolve_model(exported["tflite"])[0] == "tflite"
    assert resolve_model(exported["version"] / "assets.extra" / "affect_model.keras")[0] == "keras"
    with pytest.raises(InferenceError, match="does not exist"):
        resolve_model(tmp_path / "nope")
    (tmp_path / "model.bin").write_bytes(b"x")
    with pytest.raises(InferenceError, match="Expected a SavedModel folder"):
        resolve_model(tmp_path / "model.bin")


def test_read_image_errors_name_the_file(photo_dir):
    with pytest.raises(InferenceError, match="notes.jpg.*not an image format"):
        read_image(photo_dir / "notes.jpg")
    with pytest.raises(InferenceError, match="truncated.jpg.*truncated"):
        read_image(photo_dir / "truncated.jpg")
    with pytest.raises(InferenceError, match="not found"):
        read_image(photo_dir / "missing.png")
    with pytest.raises(InferenceError, match=r"shape=\(4, 4, 5\)"):
        read_image(np.zeros((4, 4, 5)))


def test_predict_images_folder_skips_and_counts(recognizer, photo_dir):
    table = recognizer.predict_images(photo_dir)
    assert len(table) == 1
    row = table.iloc[0]
    assert row["source"].endswith("astronaut.jpg") and row["face"] == 0 and row["score"] > 0.9
    # The astronaut's face is in the upper middle of the 512x512 picture.
    assert 150 < row["x"] + row["w"] / 2 < 300 and 50 < row["y"] + row["h"] / 2 < 250
    np.testing.assert_allclose(row[list(EXPRESSIONS)].sum(), 1.0, atol=1e-5)
    assert row["expression"] == EXPRESSIONS[int(np.argmax(row[list(EXPRESSIONS)]))]
    skipped = {s["source"].rsplit("/", 1)[-1]: s["reason"] for s in table.attrs["skipped"]}
    assert set(skipped) == {"blank.png", "truncated.jpg", "notes.jpg"}
    assert "Expected a face" in skipped["blank.png"]
    stages = table.attrs["stage_seconds"]
    assert set(stages) == {"decode", "detect", "align", "model"}
    assert all(v > 0 for v in stages.values())
    with pytest.raises(InferenceError, match="blank.png"):
        recognizer.predict_images(photo_dir / "blank.png", on_error="raise")


def test_same_numbers_from_savedmodel_keras_and_tflite(recognizer, exported, tiny_model, astronaut):
    """Keras model.predict, the SavedModel signature and TFLite on the same detected face."""
    from affect_tf.export.saved_model import serving_outputs

    table = recognizer.predict_images(astronaut)
    keras_rec = AffectRecognizer.load(
        exported["version"] / "assets.extra" / "affect_model.keras", detector=recognizer.detector
    )
    lite = AffectRecognizer.load(exported["tflite"], detector=recognizer.detector)
    assert (keras_rec.image_size, keras_rec.margin) == (recognizer.image_size, recognizer.margin)
    columns = [*EXPRESSIONS, *AUS, "valence", "arousal"]
    for other in (keras_rec, lite):
        np.testing.assert_allclose(
            other.predict_images(astronaut)[columns].to_numpy(float),
            table[columns].to_numpy(float),
            atol=1e-4,
        )
    # And the in-memory model's own predict on the aligned face.
    det = recognizer.detector.detect_one(astronaut)
    face = recognizer.align(astronaut, det.landmarks)
    direct = serving_outputs(tiny_model.predict(face[None], verbose=0))
    np.testing.assert_allclose(direct["valence"].numpy(), table["valence"], atol=1e-5)


def test_predict_video_smoothing_and_abaw(recognizer, face_video, tmp_path):
    table = recognizer.predict_video(face_video, smooth="mean:5", progress=False)
    assert table.attrs["frames"] == 24 and len(table) == 24
    stages = table.attrs["stage_seconds"]
    assert set(stages) == {"decode", "detect", "align", "model", "smooth"}
    assert all(v > 0 for v in stages.values()) and sum(stages.values()) <= table.attrs["seconds"]
    found = table[table["face_found"]]
    assert len(found) >= 12, "MTCNN should find the SynthAffect face in most frames"
    # Smoothed = the smoothing module's mean over the raw per-frame values at the same frames.
    expected = smooth_sequence(found["valence_raw"], found["frame"], "mean", 5)
    np.testing.assert_allclose(found["valence"], expected, atol=1e-6)
    assert found["valence"].std() <= found["valence_raw"].std() + 1e-9
    np.testing.assert_allclose(found[list(EXPRESSIONS)].sum(axis=1), 1.0, atol=1e-6)

    # Sampling: without tracking every sampled frame is detected as in the full pass.
    detected = recognizer.predict_video(face_video, smooth=None, progress=False, track=False)
    every = recognizer.predict_video(face_video, every=3, smooth=None, progress=False, track=False)
    assert every["frame"].tolist() == list(range(0, 24, 3))
    both = every[every["face_found"]].merge(detected, on="frame", suffixes=("", "_all"))
    np.testing.assert_allclose(both["valence"], both["valence_all"], atol=1e-5)
    assert every.attrs["frames_tracked"] == 0 and detected.attrs["frames_tracked"] == 0

    files = write_abaw(table, tmp_path, "clip")
    va = files["VA"].read_text().splitlines()
    assert va[0] == "valence,arousal" and len(va) == 25
    assert files["EXPR"].read_text().splitlines()[0] == ",".join(EXPRESSIONS)
    au_lines = files["AU"].read_text().splitlines()
    assert len(au_lines) == 25 and all(len(line.split(",")) == 12 for line in au_lines)
    first = found.iloc[0]
    v, a = map(float, va[1 + int(first["frame"])].split(","))
    assert v == pytest.approx(first["valence"], abs=1e-5)


def test_video_tracking_follows_the_detected_face(recognizer, face_video):
    """O-Net tracking (the default) finds the face in at least the frames full detection
    does, in the same place (box IoU, landmarks within a few % of the face), and reads the
    same affect there."""
    tracked = recognizer.predict_video(face_video, smooth=None, progress=False)
    detected = recognizer.predict_video(face_video, smooth=None, progress=False, track=False)
    assert tracked.attrs["frames_tracked"] > 12
    assert tracked.attrs["frames_with_face"] >= detected.attrs["frames_with_face"]
    both = tracked[tracked["face_found"]].merge(
        detected[detected["face_found"]], on="frame", suffixes=("", "_det")
    )
    assert len(both) >= 12
    for _, row in both.iterrows():
        box, det = (
            tuple(row[["x", "y", "w", "h"]]),
            tuple(row[["x_det", "y_det", "w_det", "h_det"]]),
        )
        assert box_iou(box, det) > 0.75, (row["frame"], box, det)
    assert np.abs(both["valence"] - both["valence_det"]).mean() < 0.1
    with pytest.raises(ValueError, match="redetect_every"):
        recognizer.predict_video(face_video, redetect_every=0, progress=False)


def test_refine_recovers_a_shifted_box(any_detector, astronaut):
    """Tracking alone (O-Net for MTCNN, the face mesh for BlazeFace), fed a box shifted by a
    tenth of the face, lands on the detected face."""
    detector = any_detector
    face = detector.detect_one(astronaut)
    x, y, w, h = face.box
    again = detector.refine(astronaut, (x + 0.1 * w, y - 0.1 * h, w, h))
    assert again is not None and again.score > 0.9
    assert box_iou(again.box, face.box) > 0.8
    assert np.abs(again.landmarks - face.landmarks).max() < 0.08 * w
    # Nothing face-like there: no face, not a guess.
    assert detector.refine(np.full((200, 200, 3), 128, np.uint8), (50, 50, 80, 80)) is None


def test_predict_video_bad_files(recognizer, tmp_path):
    with pytest.raises(InferenceError, match="not found"):
        recognizer.predict_video(tmp_path / "missing.mp4", progress=False)
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 100)
    with pytest.raises(InferenceError, match="bad.mp4"):
        recognizer.predict_video(bad, progress=False)
    with pytest.raises(ValueError, match="smoothing spec"):
        recognizer.predict_video(bad, smooth="max:3", progress=False)


def test_overlay_and_plot(recognizer, face_video, astronaut, tmp_path):
    import cv2

    from affect_tf.inference.visualize import overlay_image, plot_va, write_overlay_video

    table = recognizer.predict_images(astronaut)
    drawn = overlay_image(astronaut, table)
    x, y, w, h = (int(table.iloc[0][k]) for k in ("x", "y", "w", "h"))
    changed = np.any(drawn != astronaut, axis=-1)
    assert changed[y : y + h, x].any() and not changed[-20:, :20].any()
    video = recognizer.predict_video(face_video, progress=False)
    out = write_overlay_video(face_video, video, tmp_path / "overlay.mp4")
    capture = cv2.VideoCapture(str(out))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 24
    capture.release()
    png = plot_va(video, tmp_path / "va.png")
    assert Image.open(png).size[0] > 400


def test_empty_inputs_give_an_empty_table(recognizer):
    table = recognizer.predict_images([])
    assert isinstance(table, pd.DataFrame) and len(table) == 0 and "valence" in table.columns


def test_video_from_an_http_stream_and_bad_sources(recognizer, face_video, tmp_path, caplog):
    """A stream URL is read like the file (a real HTTP server on loopback); a missing camera
    and an unreachable stream are clear errors; a file cut short is read up to its cut with
    a warning naming both counts."""
    import functools
    import http.server
    import logging

    import cv2

    handler = functools.partial(
        http.server.SimpleHTTPRequestHandler, directory=str(face_video.parent)
    )
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/{face_video.name}"
        streamed = recognizer.predict_video(url, smooth=None, progress=False)
        local = recognizer.predict_video(face_video, smooth=None, progress=False)
        assert streamed.attrs["frames"] == local.attrs["frames"] == 24
        np.testing.assert_allclose(streamed["valence"], local["valence"], atol=1e-5)
        with pytest.raises(InferenceError, match="stream OpenCV can open"):
            recognizer.predict_video(url + ".missing", progress=False)
    finally:
        server.shutdown()
    with pytest.raises(InferenceError, match="camera at index 7"):
        recognizer.predict_video(7, progress=False)

    # The first 40 % of the file: the header still announces 24 frames.
    cut = tmp_path / "cut.mp4"
    data = face_video.read_bytes()
    cut.write_bytes(data[: int(len(data) * 0.4)])
    capture = cv2.VideoCapture(str(cut))
    if capture.isOpened():  # a moov atom at the front: OpenCV opens it and stops early
        capture.release()
        with caplog.at_level(logging.WARNING, logger="affect_tf"):
            table = recognizer.predict_video(cut, smooth=None, progress=False)
        assert 0 < table.attrs["frames"] < 24 == table.attrs["frames_expected"]
        assert "ended after" in caplog.text
    else:
        with pytest.raises(InferenceError, match="cut.mp4"):
            recognizer.predict_video(cut, progress=False)

    # Garbage in the middle of the frames' data: the job goes on (FFmpeg conceals or drops
    # the damaged frames), never a crash in the middle of a long video.
    damaged = tmp_path / "damaged.mp4"
    middle = len(data) // 2
    damaged.write_bytes(data[:middle] + bytes(range(256)) * 8 + data[middle + 2048 :])
    table = recognizer.predict_video(damaged, smooth="mean:5", progress=False)
    assert 0 < table.attrs["frames"] <= 24 and table["face_found"].any()


def test_video_cli_show_needs_a_gui_and_overlay_needs_a_file(capsys):
    from affect_tf import cli

    assert cli.main(["video", "0", "--out", "x.csv", "--overlay", "o.mp4"]) == 2
    assert "--overlay" in capsys.readouterr().err
    assert cli.main(["video", "in.mp4", "--out", "x.csv", "--show"]) == 2
    err = capsys.readouterr().err
    assert "--show" in err and ("GUI" in err or "display" in err)


def test_faces_run_through_the_model_in_chunks_with_the_same_outputs(
    recognizer, face_video, photo_dir, monkeypatch
):
    """Bounded memory: faces go to the model in chunks of MODEL_CHUNK; chunks of 5 give the
    numbers one chunk gives, for a video and for a folder of photos."""
    from affect_tf.inference import video

    jpegs = [(photo_dir / "astronaut.jpg").read_bytes()] * 12
    whole = recognizer.predict_video(face_video, smooth=None, progress=False)
    photos = recognizer.predict_images(jpegs)
    monkeypatch.setattr(video, "MODEL_CHUNK", 5)
    chunked = recognizer.predict_video(face_video, smooth=None, progress=False)
    np.testing.assert_allclose(chunked["valence"], whole["valence"], atol=1e-6)
    chunked_photos = recognizer.predict_images(jpegs)
    assert len(chunked_photos) == len(photos) == 12
    np.testing.assert_allclose(chunked_photos["arousal"], photos["arousal"], atol=1e-6)
