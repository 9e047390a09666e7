import json

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from affect_tf.data.convert import Converter, SkipSample, convert, load_image
from affect_tf.data.corpus import Sample, SkipReport
from affect_tf.data.examples import read_tfrecord
from affect_tf.data.manifest import read_manifest
from affect_tf.face import align
from tests.conftest import write_image


@pytest.fixture
def converter(detector):
    return Converter(detector_factory=lambda: detector)


def test_load_image_reencodes_what_tf_cannot_read(tmp_path):
    webp = write_image(tmp_path / "a.webp", fmt="WEBP")
    decoded = load_image(webp)
    assert decoded.data[:8] == b"\x89PNG\r\n\x1a\n"
    assert tf.io.decode_image(decoded.data).shape == (40, 48, 3)
    jpg = write_image(tmp_path / "b.jpg")
    assert load_image(jpg).data == jpg.read_bytes()  # kept byte for byte


@pytest.mark.parametrize(
    "make, reason",
    [
        (lambda p: p, "missing_file"),
        (lambda p: p.write_bytes(b"") and p, "corrupt_image"),
        (lambda p: p.write_bytes(b"not an image at all") and p, "corrupt_image"),
    ],
)
def test_load_image_errors(tmp_path, make, reason):
    path = tmp_path / "x.jpg"
    make(path)
    with pytest.raises(SkipSample) as info:
        load_image(path)
    assert info.value.reason == reason


def test_truncated_jpeg_is_corrupt(tmp_path):
    path = write_image(tmp_path / "t.jpg", size=(200, 200))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(SkipSample, match="corrupt_image"):
        load_image(path)


def test_convert_mixed_corpus(tmp_path, converter, astronaut):
    Image.fromarray(astronaut).save(tmp_path / "astronaut.jpg")
    write_image(tmp_path / "flat.png", size=(120, 100))
    Image.fromarray(np.full((100, 120, 3), 90, np.uint8)).save(tmp_path / "flat.png")
    Image.fromarray(np.full((100, 120, 3), 90, np.uint8)).save(tmp_path / "boxed.png")
    write_image(tmp_path / "marked.jpg", size=(100, 100))
    write_image(tmp_path / "far.jpg", size=(100, 100))
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0garbage")
    lm = ";".join(str(v) for v in [30, 40, 70, 40, 50, 60, 35, 80, 65, 80])
    far = ";".join(str(v) for v in [30, 40, 70, 40, 50, 60, 35, 80, 65, 900])
    (tmp_path / "manifest.csv").write_text(
        "path,expression,valence,arousal,AU12,box_x,box_y,box_w,box_h,landmarks\n"
        "astronaut.jpg,Happiness,0.8,0.3,1,,,,,\n"  # detected by MTCNN
        f"marked.jpg,Neutral,,,,,,,,{lm}\n"  # landmarks given: box derived
        "boxed.png,Sadness,,,,10,10,60,60,\n"  # box given, nothing detected: box fallback
        "flat.png,Fear,,,,,,,,\n"  # no geometry and no face: skipped
        "broken.jpg,Anger,,,,,,,,\n"  # corrupt
        "missing.jpg,Anger,,,,,,,,\n"  # missing
        f"far.jpg,Anger,,,,,,,,{far}\n"  # landmark far outside the image
    )
    report = SkipReport()
    out = tmp_path / "out" / "x.tfrecord.gz"
    result = convert(read_manifest(tmp_path, report), out, report, converter, progress=False)
    assert result.stats.written == 3
    assert report.skipped == {
        "no_face": 1,
        "corrupt_image": 1,
        "missing_file": 1,
        "landmarks_outside_image": 1,
    }
    assert report.notes == {"landmarks_from_box": 1}
    records = {r.video_id: r for r in read_tfrecord(out)}
    astro = records["astronaut.jpg"]
    assert (astro.expression, astro.valence, astro.au[6], astro.au_mask[6]) == (
        4,
        pytest.approx(0.8),
        1,
        1,
    )
    assert 160 < astro.bbox[0] < 200 and astro.landmarks[0, 0] < astro.landmarks[1, 0]
    np.testing.assert_allclose(
        records["marked.jpg"].landmarks.reshape(-1), [float(v) for v in lm.split(";")]
    )
    boxed = records["boxed.png"]
    np.testing.assert_allclose(boxed.bbox, [10, 10, 60, 60])
    np.testing.assert_allclose(
        boxed.landmarks, align.landmarks_from_box(np.array([10, 10, 60, 60], np.float32)), atol=1e-4
    )
    for r in records.values():
        assert tf.io.decode_image(r.image, channels=3).shape[-1] == 3
    saved = json.loads(result.report_path.read_text())
    assert saved["written"] == 3 and saved["skipped"]["no_face"] == 1
    assert "flat.png" in saved["examples"]["no_face"][0]
    assert "skipped" in result.format() and "no_face" in result.format()
    # Where each written face came from: detected (the MTCNN fixture), given, a box.
    assert saved["faces_found_by"] == {"mtcnn": 1, "given": 1, "box": 1}
    assert saved["faces_per_s"] > 0 and saved["seconds"] > 0
    assert result.found_by == saved["faces_found_by"]
    assert "faces from: mtcnn 1, given 1, box 1;" in result.format()


def test_aligned_sample_uses_the_template(tmp_path):
    path = write_image(tmp_path / "00001.jpg", size=(112, 112))
    record = Converter().to_record(Sample(path=path, aligned=True, expression=2, expr_mask=1))
    assert list(record.bbox) == [0.0, 0.0, 112.0, 112.0]
    np.testing.assert_allclose(record.landmarks, align.TEMPLATE_112, atol=1e-4)


@pytest.mark.slow
def test_worker_pool_writes_the_same_examples_in_order(tmp_path, astronaut):
    """Two spawned processes (MTCNN in each) give what one process gives, in the same order,
    with the same skips; nothing is left under a temporary name."""
    Image.fromarray(astronaut).save(tmp_path / "astronaut.jpg")
    Image.fromarray(np.full((100, 120, 3), 90, np.uint8)).save(tmp_path / "flat.png")
    rows = ["path,expression"] + [f"{name},Happiness" for name in ["astronaut.jpg", "flat.png"] * 3]
    (tmp_path / "manifest.csv").write_text("\n".join(rows) + "\n")
    results = {}
    for workers in (1, 2):
        report = SkipReport()
        out = tmp_path / f"w{workers}.tfrecord.gz"
        result = convert(
            read_manifest(tmp_path, report), out, report, workers=workers, progress=False
        )
        results[workers] = ([r.bbox for r in read_tfrecord(out)], dict(report.skipped))
        assert result.stats.written == 3
        assert result.found_by == {"blazeface": 3}  # counted in the worker processes too
    assert results[1][1] == results[2][1] == {"no_face": 3}
    np.testing.assert_allclose(results[1][0], results[2][0], atol=1e-3)
    assert not list(tmp_path.glob("*.partial*"))  # hidden names too: pathlib globs them
