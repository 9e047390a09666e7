"""The shipped model: its card, its budget, offline use by default, and a damaged file's error."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from affect_tf.model import default as shipped
from affect_tf.model.backbones import build_backbone
from affect_tf.model.shipped import file_sha256


def test_card_describes_the_file_within_budget():
    card = shipped.read_card()
    path = shipped.default_model_path()
    assert path.name == card["file"] and file_sha256(path) == card["sha256"]
    assert path.stat().st_size / 2**20 <= shipped.MAX_MODEL_MB
    assert card["preset"] == "shipped" and card["config"]["backbone"] == "vgg_small"
    assert card["config"]["grayscale"]  # FER+ faces are grey: colour photos are read as grey
    test = card["metrics"]["ferplus_test"]
    assert 0.0 < test["expr_acc"] <= 1.0 and "licence" in card


def test_the_tflite_file_is_the_same_model_within_budget():
    """The TFLite copy (what predict reads with) is described by the card, within the budget,
    and read FER+ Test as the .keras file did when it was made."""
    lite = shipped.read_card()["tflite"]
    path = shipped.default_model_path(kind="tflite")
    assert path.name == lite["file"] == shipped.TFLITE_FILE and file_sha256(path) == lite["sha256"]
    assert path.stat().st_size / 2**20 <= shipped.MAX_MODEL_MB and lite["variant"] == "fp32"
    agreement = lite["agreement_with_keras"]
    assert agreement["expression_agreement"] == 1.0 and agreement["max_abs_va_diff"] < 1e-4
    assert shipped.default_margin() == 0.25
    with pytest.raises(ValueError, match="kind in"):
        shipped.default_model_path(kind="onnx")


def test_vgg_small_backbone_is_the_documented_size():
    backbone = build_backbone("vgg_small", 64)
    assert backbone.output_shape == (None, 256)
    assert 1.8e6 < backbone.count_params() < 2.0e6  # 7.6 MB in float32


def test_recognizer_without_a_model_reads_the_astronaut_smile(astronaut):
    from affect_tf.inference import AffectRecognizer

    recognizer = AffectRecognizer()
    assert recognizer.path == shipped.default_model_path(kind="tflite")
    assert recognizer.kind == "tflite" and recognizer.margin == shipped.default_margin()
    row = recognizer.predict_images(astronaut, on_error="raise").iloc[0]
    assert row["expression"] == "Happiness"
    assert row["AU6"] > 0.5 and row["AU12"] > 0.5 and row["valence"] > 0.3


def test_predict_in_an_empty_folder_uses_the_shipped_model(tmp_path, astronaut):
    import cv2

    cv2.imwrite(str(tmp_path / "photo.jpg"), astronaut[..., ::-1])
    result = subprocess.run(
        [sys.executable, "-m", "affect_tf.cli", "predict", "photo.jpg", "--json", "out.json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "Happiness" in result.stdout
    assert str(shipped.default_model_path(kind="tflite")) in result.stdout
    faces = json.loads((tmp_path / "out.json").read_text())["faces"]
    assert len(faces) == 1 and faces[0]["expression"] == "Happiness"


@pytest.fixture
def copy_of_shipped(tmp_path):
    folder = tmp_path / "default_model"
    shutil.copytree(shipped.MODEL_DIR, folder)
    return folder


@pytest.mark.parametrize("kind", shipped.KINDS)
def test_a_damaged_shipped_file_is_an_error_naming_it(copy_of_shipped, kind):
    path = copy_of_shipped / (shipped.MODEL_FILE if kind == "keras" else shipped.TFLITE_FILE)
    assert shipped.default_model_path(copy_of_shipped, kind) == path
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(shipped.DefaultModelError, match=f"{path}.*damaged.*reinstall"):
        shipped.default_model_path(copy_of_shipped, kind)
    path.unlink()
    with pytest.raises(shipped.DefaultModelError, match=f"{path}.*not found.*reinstall"):
        shipped.default_model_path(copy_of_shipped, kind)


def test_a_missing_or_foreign_card_is_an_error(copy_of_shipped):
    card = copy_of_shipped / shipped.CARD_FILE
    card.write_text(json.dumps({"format": "something else"}))
    with pytest.raises(shipped.DefaultModelError, match="format='something else'"):
        shipped.default_model_path(copy_of_shipped)
    card.unlink()
    with pytest.raises(shipped.DefaultModelError, match=f"{card}.*reinstall"):
        shipped.default_model_path(copy_of_shipped)


def test_cli_reports_a_damaged_shipped_model_without_a_traceback(tmp_path, monkeypatch, capsys):
    from affect_tf import cli

    folder = tmp_path / "default_model"
    shutil.copytree(shipped.MODEL_DIR, folder)
    (folder / shipped.TFLITE_FILE).write_bytes(b"not a model")
    monkeypatch.setattr(shipped, "MODEL_DIR", folder)
    image = tmp_path / "x.jpg"
    image.write_bytes(b"\xff\xd8 irrelevant")
    assert cli.main(["predict", str(image)]) == 2
    err = capsys.readouterr().err
    assert "shipped model file" in err and "reinstall" in err and "Traceback" not in err


@pytest.mark.slow
def test_serving_export_of_the_shipped_model_matches_it(tmp_path, astronaut):
    from affect_tf.core.layout import latest_version
    from affect_tf.export.saved_model import default_serving_base
    from affect_tf.inference import AffectRecognizer

    base = default_serving_base(tmp_path)
    version = latest_version(base)
    assert version is not None and (version / "saved_model.pb").is_file()
    assert default_serving_base(tmp_path) == base and latest_version(base) == version  # reused
    served = AffectRecognizer.load(base).predict_images(astronaut, on_error="raise")
    local = AffectRecognizer().predict_images(astronaut, on_error="raise")
    assert served.iloc[0]["expression"] == local.iloc[0]["expression"] == "Happiness"
    np.testing.assert_allclose(served["valence"], local["valence"], atol=1e-4)
