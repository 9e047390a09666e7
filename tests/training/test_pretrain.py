"""``affect-tf pretrain`` and ``weights="synthaffect"``: the streamed corpus, the card, resuming,
the shipped files and every bad input the issue names."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from affect_tf.core.files import replaced_atomically
from affect_tf.data.synth import SynthConfig
from affect_tf.data.synth.labels import LATER_FIELDS
from affect_tf.data.synth.stream import stream_chunks, video_examples
from affect_tf.model import AffectModel, get_preset
from affect_tf.model.pretrained import load_backbone_weights
from affect_tf.model.shipped import (
    CARD_FORMAT,
    MAX_FILE_MB,
    MAX_TOTAL_MB,
    WeightsCardError,
    card_path,
    check_card,
    file_sha256,
    find_shipped,
    shipped,
)
from affect_tf.training.pretrain import (
    WEIGHTS_FILE,
    check_folder,
    pretrain,
    setting_differences,
    settings_of,
)
from affect_tf.training.pretrain_budget import get_budget


def run_cli(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "affect_tf.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# --- the stream -----------------------------------------------------------------------------


def _examples(serialized: list[bytes]) -> list:
    """Parsed tf.Examples: equal content compares equal whatever the map order the bytes use
    (protobuf's map order differs between processes)."""
    import tensorflow as tf

    return [tf.train.Example.FromString(s) for s in serialized]


def _stream(config: SynthConfig, first: int, end: int, workers: int = 1) -> list:
    """The parsed tf.Examples of a stream, chunks flattened."""
    return _examples([e for chunk in stream_chunks(config, first, end, workers) for e in chunk])


def test_stream_is_the_same_whatever_the_processes_and_split_points():
    config = SynthConfig(n=1, size=64, frames_per_video=2, seed=4)
    whole = _stream(config, 0, 20, workers=1)
    assert len(whole) == 40
    # Resuming at video 12 renders exactly what an uninterrupted stream would have.
    assert _stream(config, 0, 12) + _stream(config, 12, 20) == whole
    assert _stream(config, 3, 20, workers=2) == whole[6:]
    assert _examples(video_examples(config, 5, 6)) == whole[10:12]
    other = SynthConfig(n=1, size=64, frames_per_video=2, seed=5)
    assert _stream(other, 0, 1) != whole[:2]


def test_a_consumer_that_stops_early_ends_the_workers():
    config = SynthConfig(n=1, size=64, frames_per_video=1, seed=0)
    stream = stream_chunks(config, 0, 10_000, workers=2)
    first = next(stream)  # the first chunk: CHUNK_VIDEOS videos
    stream.close()  # shuts the pool down without rendering the rest
    assert _examples(first) == _stream(config, 0, len(first))


_KILLED_CONSUMER = """
import multiprocessing, sys, time
from affect_tf.data.synth import SynthConfig
from affect_tf.data.synth.stream import stream_chunks
stream = stream_chunks(SynthConfig(n=1, size=64, frames_per_video=1, seed=0), 0, 10**6, workers=2)
next(stream)
print(" ".join(str(p.pid) for p in multiprocessing.active_children()), flush=True)
time.sleep(600)
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")  # a zombie has exited; only its parent's reaping is left


def test_a_killed_consumer_leaves_no_rendering_workers():
    """SIGKILL runs no cleanup in the consumer: its workers must notice and exit on their own
    (they used to render their queue and then wait forever)."""
    import signal
    import time

    consumer = subprocess.Popen(
        [sys.executable, "-c", _KILLED_CONSUMER], stdout=subprocess.PIPE, text=True
    )
    try:
        workers = [int(p) for p in consumer.stdout.readline().split() if p.isdigit()]
        assert len(workers) >= 2, workers
        assert all(_alive(pid) for pid in workers)
    finally:
        consumer.send_signal(signal.SIGKILL)
        consumer.wait()
    deadline = time.monotonic() + 20
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [pid for pid in workers if _alive(pid)]


# --- the generator's nuisance knobs ----------------------------------------------------------


def test_nuisance_knobs_change_the_frames_not_the_labels_model():
    from affect_tf.data.synth import render_video

    base = SynthConfig(n=8, size=64, frames_per_video=4, seed=2)
    photo = SynthConfig(n=8, size=64, frames_per_video=4, seed=2, backgrounds="photo")
    jpeg = SynthConfig(n=8, size=64, frames_per_video=4, seed=2, jpeg_min_quality=10)
    a, b, c = render_video(base, 0), render_video(photo, 0), render_video(jpeg, 0)
    assert not np.array_equal(a[0].image, b[0].image)
    assert not np.array_equal(a[0].image, c[0].image)
    # Photo backgrounds are textured: far more distinct colours in a corner than flat clutter.
    corner = lambda f: len(np.unique(f.image[:12, :12].reshape(-1, 3), axis=0))  # noqa: E731
    assert np.mean([corner(f) for f in b]) > np.mean([corner(f) for f in a])
    # Heavy JPEG leaves 8x8 block edges: the mean jump across block borders exceeds the rest.
    gray = np.stack([f.image.mean(axis=2) for f in c])
    jumps = np.abs(np.diff(gray, axis=2)).mean(axis=(0, 1))
    assert jumps[7::8].mean() > jumps[[i for i in range(63) if i % 8 != 7]].mean()
    # Deterministic with the knobs on too.
    np.testing.assert_array_equal(render_video(photo, 0)[1].image, b[1].image)


@pytest.mark.parametrize(
    "field, value, match",
    [
        ("backgrounds", "beach", "Expected backgrounds in"),
        ("yaw_range", 2.0, "Expected yaw_range in"),
        ("jpeg_min_quality", 99, "Expected jpeg_min_quality"),
        ("noise_max", -1.0, "Expected noise_max"),
        ("accessory_rate", 1.5, "Expected accessory_rate in"),
        ("pitch_range", 0.8, "Expected pitch_range in"),
        ("fringe_rate", 1.5, "Expected fringe_rate in"),
        ("mask_rate", -0.1, "Expected mask_rate in"),
        ("low_res_rate", 2.0, "Expected low_res_rate in"),
        ("intensity_min", 0.0, "Expected intensity_min in"),
    ],
)
def test_bad_nuisance_settings_name_the_field(field, value, match):
    with pytest.raises(ValueError, match=match):
        SynthConfig(**{field: value})


def test_synth_cli_renders_another_domain(tmp_path):
    result = run_cli(
        "synth",
        "--out",
        str(tmp_path / "c"),
        "--n",
        "4",
        "--size",
        "64",
        "--workers",
        "1",
        "--quiet",
        "--backgrounds",
        "photo",
        "--jpeg-min-quality",
        "30",
        "--yaw-range",
        "0.7",
    )
    assert result.returncode == 0, result.stderr
    assert len(list((tmp_path / "c" / "images").rglob("*.jpg"))) == 4
    bad = run_cli("synth", "--out", str(tmp_path / "d"), "--backgrounds", "beach")
    assert bad.returncode == 2 and "Expected backgrounds in" in bad.stderr
    assert "Traceback" not in bad.stderr


# --- the card and the shipped files ----------------------------------------------------------


def test_partial_files_keep_every_suffix(tmp_path):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    with replaced_atomically(tmp_path / "backbone.weights.h5") as partial:
        assert partial.name.endswith(".partial.weights.h5")
        model.save_weights(partial)  # Keras insists on the .weights.h5 ending
    assert [p.name for p in tmp_path.iterdir()] == ["backbone.weights.h5"]


def test_every_shipped_file_matches_its_card_and_the_size_budget():
    items = shipped()
    assert items, "the package ships SynthAffect weights"
    total = 0.0
    for item in items:
        size_mb = item.path.stat().st_size / 2**20
        total += size_mb
        assert size_mb <= MAX_FILE_MB, (item.path, size_mb)
        assert item.card["format"] == CARD_FORMAT
        assert check_card(item.path, item.backbone, item.image_size) == item.card
        # The card says how it was made: corpus, steps, time, held-out metrics, revision.
        assert item.card["training"]["faces_seen"] > 0 and item.card["training"]["steps"] > 0
        assert item.card["held_out_test"]["n"] == item.card["budget"]["test_n"]
        assert item.card["git_revision"] != "unknown"
    assert total <= MAX_TOTAL_MB


@pytest.mark.parametrize("item", shipped(), ids=lambda item: item.path.name)
def test_synthaffect_weights_load_offline_into_their_preset(item):
    preset = item.card["preset"]
    model = AffectModel(get_preset(preset, weights="synthaffect", schedule="finetune"))
    description = load_backbone_weights(model, "synthaffect")
    assert "shipped SynthAffect weights" in description and item.path.name in description
    expected = AffectModel(get_preset(preset, weights="", schedule="scratch")).get_layer("backbone")
    expected.load_weights(item.path)
    for a, b in zip(model.get_layer("backbone").get_weights(), expected.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_synthaffect_for_a_size_without_a_file_lists_what_exists():
    with pytest.raises(
        WeightsCardError, match=r"small_cnn at 64px \(preset 'demo'\).*'small_cnn' at 48px"
    ):
        find_shipped("small_cnn", 48)
    result = run_cli(
        "train",
        "--preset",
        "tiny",
        "--weights",
        "synthaffect",
        "--data",
        "nowhere",
        "--out",
        "/tmp/never-written",
    )
    assert result.returncode == 2, result.stderr
    assert "Expected a backbone and size with shipped SynthAffect weights" in result.stderr
    assert "small_cnn at 64px" in result.stderr and "Traceback" not in result.stderr
    assert not Path("/tmp/never-written").exists()


def test_pipeline_config_checks_synthaffect_for_the_preset():
    from affect_tf.pipeline.config import ConfigError, PipelineConfig

    PipelineConfig(preset="demo", weights="synthaffect")
    with pytest.raises(
        ConfigError,
        match=r"Expected 'synthaffect' with a preset.*small_cnn at 64px.*'tiny' is "
        r"small_cnn at 48px.*Received: weights='synthaffect'",
    ):
        PipelineConfig(preset="tiny", weights="synthaffect")


def _weights_with_card(tmp_path: Path, card: dict) -> Path:
    backbone = AffectModel(get_preset("tiny")).get_layer("backbone")
    path = tmp_path / "mine.weights.h5"
    backbone.save_weights(path)
    card = {"format": CARD_FORMAT, "weights_sha256": file_sha256(path), **card}
    card_path(path).write_text(json.dumps(card))
    return path


def test_a_card_for_another_preset_is_a_clear_error(tmp_path):
    path = _weights_with_card(
        tmp_path, {"preset": "mobile", "backbone": "mobilenet_v3_small", "image_size": 112}
    )
    model = AffectModel(get_preset("tiny"))
    with pytest.raises(
        WeightsCardError,
        match=r"made for backbone 'small_cnn' at 48px.*"
        r"says backbone 'mobilenet_v3_small' at 112px",
    ):
        load_backbone_weights(model, str(path))


def test_a_file_replaced_after_its_card_is_a_clear_error(tmp_path):
    path = _weights_with_card(
        tmp_path, {"preset": "tiny", "backbone": "small_cnn", "image_size": 48}
    )
    model = AffectModel(get_preset("tiny"))
    load_backbone_weights(model, str(path))  # the card fits
    keras.utils.set_random_seed(9)
    AffectModel(get_preset("tiny")).get_layer("backbone").save_weights(path)  # other weights
    with pytest.raises(WeightsCardError, match="replaced or damaged after its card"):
        load_backbone_weights(model, str(path))
    card_path(path).write_text("{not json")
    with pytest.raises(WeightsCardError, match="Expected a weights card"):
        load_backbone_weights(model, str(path))


# --- pretraining end to end ------------------------------------------------------------------


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """``affect-tf pretrain --preset tiny --budget quick`` through the CLI."""
    out = tmp_path_factory.mktemp("pretrain") / "run"
    result = run_cli(
        "pretrain", "--preset", "tiny", "--out", str(out), "--budget", "quick", "--workers", "1"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result


@pytest.mark.slow
def test_pretrain_writes_weights_and_a_card_that_loads(quick_run):
    out, result = quick_run
    card = json.loads(card_path(out / WEIGHTS_FILE).read_text())
    assert "held-out SynthAffect (64 faces): P_MTL" in result.stdout
    assert card["backbone"] == "small_cnn" and card["image_size"] == 48 and card["preset"] == "tiny"
    assert card["weights_sha256"] == file_sha256(out / WEIGHTS_FILE)
    assert card["training"]["steps"] == 6 and card["training"]["faces_seen"] == 6 * 32
    assert card["corpus"]["train"]["seed"] != card["corpus"]["test"]["seed"]
    assert card["corpus"]["validation"]["seed"] != card["corpus"]["test"]["seed"]
    test = card["held_out_test"]
    assert test["n"] == 64 and test["p_mtl"] == pytest.approx(
        test["va"] + test["expr_f1"] + test["au_f1"]
    )
    # The weights are a backbone a preset of the same size takes, checked against the card.
    model = AffectModel(get_preset("tiny", weights=str(out / WEIGHTS_FILE), schedule="finetune"))
    assert "card: tiny preset" in load_backbone_weights(model, str(out / WEIGHTS_FILE))


@pytest.mark.slow
def test_pretrain_again_returns_the_finished_run_and_refuses_other_folders(quick_run, tmp_path):
    out, _ = quick_run
    before = (out / WEIGHTS_FILE).stat().st_mtime_ns
    again = run_cli("pretrain", "--preset", "tiny", "--out", str(out), "--budget", "quick")
    assert again.returncode == 0 and (out / WEIGHTS_FILE).stat().st_mtime_ns == before
    other = run_cli(
        "pretrain", "--preset", "tiny", "--out", str(out), "--budget", "quick", "--epochs", "3"
    )
    assert other.returncode == 2 and "budget.epochs was 2, now 3" in other.stderr
    train_run = tmp_path / "a_train_run"
    train_run.mkdir()
    (train_run / "config.json").write_text("{}")
    refused = run_cli("pretrain", "--preset", "tiny", "--out", str(train_run), "--budget", "quick")
    assert refused.returncode == 2
    assert "holds config.json of another run" in refused.stderr
    assert "Traceback" not in refused.stderr + other.stderr
    assert sorted(p.name for p in train_run.iterdir()) == ["config.json"]


@pytest.mark.slow
def test_an_interrupted_pretraining_resumes_at_its_epoch(quick_run, tmp_path):
    out, _ = quick_run
    resumed = tmp_path / "resumed"
    shutil.copytree(out, resumed)
    # As if killed after epoch 1: the state says 1, the weights and the card are not there.
    (resumed / WEIGHTS_FILE).unlink()
    card_path(resumed / WEIGHTS_FILE).unlink()
    state = json.loads((resumed / "state.json").read_text())
    (resumed / "state.json").write_text(json.dumps({**state, "epoch": 1}))
    card = pretrain("tiny", resumed, get_budget("quick"), workers=1, verbose=0)
    assert card["training"]["resumed_at_epoch"] == 1 and card["training"]["epochs"] == 2
    assert card["training"]["faces_per_second"] > 0
    history = json.loads((resumed / "history.json").read_text())
    assert len(history["loss"]) == 1  # only epoch 2 trained in this session


def test_settings_that_do_not_fit_leave_no_folder_behind(tmp_path):
    budget = get_budget("quick", frames_per_video=5)  # 3 steps x 32 faces: not whole videos
    with pytest.raises(ValueError, match=r"multiple of frames_per_video.*frames_per_video=5"):
        pretrain("tiny", tmp_path / "run", budget, workers=1)
    assert not (tmp_path / "run").exists()


def test_the_folder_check_names_what_differs(tmp_path):
    budget = get_budget("quick")
    config = get_preset("tiny")
    settings = settings_of("tiny", budget, 0, config)
    assert check_folder(tmp_path / "new", settings) is None
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "pretrain.json").write_text(json.dumps(settings))
    assert check_folder(tmp_path / "run", settings) is None  # unfinished: resume
    other = settings_of("tiny", budget, 1, config)
    with pytest.raises(ValueError, match="seed was 0, now 1"):
        check_folder(tmp_path / "run", other)


def test_a_run_started_before_the_later_generator_settings_still_resumes(tmp_path):
    """Settings files of older runs lack the later generator fields: absent means the default
    (which renders what those runs rendered), anything else differs."""
    budget = get_budget("quick")
    settings = settings_of("tiny", budget, 0, get_preset("tiny"))
    older = json.loads(json.dumps(settings))
    for name, default in LATER_FIELDS.items():
        assert older["budget"].pop(name) == default
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "pretrain.json").write_text(json.dumps(older))
    assert check_folder(tmp_path / "run", settings) is None
    # Either side may be the older one (a rerun's card compared with a shipped card).
    assert setting_differences(settings, older) == setting_differences(older, settings) == []
    glasses = settings_of("tiny", get_budget("quick", accessory_rate=0.5), 0, get_preset("tiny"))
    with pytest.raises(ValueError, match="accessory_rate was 0.0, now 0.5"):
        check_folder(tmp_path / "run", glasses)
