"""The TensorFlow-free reader: a ``.tflite`` model (the shipped one by default) reads photos and
videos through ``AffectRecognizer``, ``predict`` and ``video`` with LiteRT, OpenCV and NumPy
alone, bad inputs included; TensorFlow-only formats say what they need where it is missing.

Each check runs in a fresh interpreter (this test process has TensorFlow loaded already) and
asserts on ``sys.modules`` after the predictions.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from PIL import Image

from tests.conftest import gif_bomb


def _run(script: str, cwd, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory, astronaut):
    """The astronaut as JPEG, greyscale PNG, 16-bit PNG and EXIF-rotated JPEG, an animated
    GIF, a blank image (no face), a 3 px thin strip and a truncated JPEG."""
    folder = tmp_path_factory.mktemp("photos")
    photo = Image.fromarray(astronaut)
    photo.save(folder / "a_colour.jpg", quality=92)
    photo.convert("L").save(folder / "b_grey.png")
    wide = (np.asarray(photo.convert("L"), np.uint16) * 257).astype(np.uint16)
    Image.fromarray(wide).save(folder / "c_16bit.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # stored turned; a viewer rotates it 90 degrees clockwise
    photo.rotate(90, expand=True).save(folder / "d_rotated.jpg", exif=exif, quality=92)
    frames = [photo, photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    frames[0].save(folder / "e_animated.gif", save_all=True, append_images=frames[1:])
    Image.new("RGB", (200, 200), (90, 90, 90)).save(folder / "f_blank.png")
    Image.new("RGB", (300, 3), (90, 90, 90)).save(folder / "g_thin.png")
    buffer = io.BytesIO()
    photo.save(buffer, format="JPEG")
    (folder / "h_truncated.jpg").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 3])
    (folder / "i_bomb.gif").write_bytes(gif_bomb())
    return folder


def test_shipped_tflite_reads_photos_and_a_video_without_tensorflow(
    photo_folder, face_video, tmp_path
):
    script = f"""
        import json, sys
        import affect_tf
        from affect_tf import cli

        recognizer = affect_tf.AffectRecognizer()  # the public API, as the README reads a photo
        table = recognizer.predict_images({str(photo_folder)!r}, faces="largest")
        video = recognizer.predict_video({str(face_video)!r}, smooth="mean:5", progress=False)
        code = cli.main(["predict", {str(photo_folder / "a_colour.jpg")!r}, "--json", "one.json"])
        print(json.dumps({{
            "kind": recognizer.kind,
            "rows": table[["source", "expression", "detector", "x", "y"]].values.tolist(),
            "skipped": table.attrs["skipped"],
            "video_frames": int(video.attrs["frames"]),
            "video_faces": int(video.attrs["frames_with_face"]),
            "cli": code,
            "tensorflow": "tensorflow" in sys.modules,
            "keras": "keras" in sys.modules,
        }}))
    """
    result = _run(script, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["tensorflow"] is False and out["keras"] is False, "TensorFlow was imported"
    assert out["kind"] == "tflite" and out["cli"] == 0
    found = {row[0].rsplit("/", 1)[-1]: row[1:] for row in out["rows"]}
    for name in ("a_colour.jpg", "b_grey.png", "c_16bit.png", "d_rotated.jpg", "e_animated.gif"):
        assert found[name][0] == "Happiness", (name, out)
    # The EXIF-rotated file is read upright: its face where the upright photo has it.
    np.testing.assert_allclose(found["d_rotated.jpg"][2:], found["a_colour.jpg"][2:], atol=4)
    skipped = {s["source"].rsplit("/", 1)[-1]: s["reason"] for s in out["skipped"]}
    assert set(skipped) == {"f_blank.png", "g_thin.png", "h_truncated.jpg", "i_bomb.gif"}
    assert "Expected a face in the image" in skipped["f_blank.png"]
    assert "at least 8 px" in skipped["g_thin.png"]
    assert "Expected a readable image" in skipped["h_truncated.jpg"]
    assert "pixels" in skipped["i_bomb.gif"]
    assert out["video_frames"] == 24 and out["video_faces"] >= 20
    faces = json.loads((tmp_path / "one.json").read_text())["faces"]
    assert faces[0]["expression"] == "Happiness" and faces[0]["detector"] == "blazeface"


def test_a_tensorflow_model_without_tensorflow_says_what_it_needs(photo_folder, tmp_path):
    """A machine with LiteRT but no TensorFlow (``tensorflow`` made unimportable): a ``.keras``
    model is a one-line error naming it and the way out; the shipped TFLite model still
    reads the photo; a photo without a face is "no face", BlazeFace's fallback skipped."""
    from affect_tf.model.default import default_model_path

    noise = np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "noise.png")  # no face, not blank: the fallback's case
    script = f"""
        import sys
        sys.modules["tensorflow"] = None  # as if it were not installed
        from affect_tf import cli
        print("CODE", cli.main(["predict", {str(photo_folder / "a_colour.jpg")!r},
                                "--model", {str(default_model_path())!r}]))
        print("CODE", cli.main(["predict", {str(photo_folder / "a_colour.jpg")!r}]))
        print("CODE", cli.main(["predict", "noise.png"]))
    """
    result = _run(script, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("CODE 2") == 2 and "CODE 0" in result.stdout
    # BlazeFace's MTCNN fallback needs TensorFlow: said once, and the photo is "no face".
    assert "MTCNN fallback cannot run here (tensorflow not installed)" in result.stdout
    assert "Expected a face in the image" in result.stderr
    assert "Expected TensorFlow to read a .keras model" in result.stderr
    assert "use a .tflite model" in result.stderr and "Traceback" not in result.stderr
    assert "Happiness" in result.stdout
