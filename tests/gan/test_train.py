"""A few-step GAN training on a small SynthAffect corpus: losses, checkpoints, sampling, CLI."""

import json
import logging
import sys

import cv2
import numpy as np
import pytest

from affect_tf.cli import main
from affect_tf.core.labels import EXPRESSIONS
from affect_tf.data.convert import convert_corpus
from affect_tf.data.dataset import make_dataset, measure_priors
from affect_tf.data.examples import read_tfrecord
from affect_tf.data.synth import SynthConfig, write_corpus
from affect_tf.gan.config import get_gan_preset
from affect_tf.gan.folder import GAN_FILE, NotAGANError, load_gan, read_meta
from affect_tf.gan.sampling import generate, write_generated_examples
from affect_tf.gan.train import train_gan

STEPS = 60


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("gan_corpus")
    write_corpus(
        SynthConfig(n=96, size=80, frames_per_video=4, seed=3),
        root / "synth",
        workers=1,
        progress=False,
    )
    records = root / "train.tfrecord.gz"
    convert_corpus("manifest", root / "synth", records, progress=False)
    return str(records)


@pytest.fixture(scope="module")
def trained(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("gan_run")
    config = get_gan_preset("tiny", steps=STEPS, steps_per_epoch=STEPS // 3, d_learning_rate=1e-3)
    return train_gan(config, [corpus], out, verbose=0)


def _halves(values):
    values = np.asarray(values)
    return values[: len(values) // 2].mean(), values[len(values) // 2 :].mean()


def test_training_decreases_the_losses(trained):
    h = trained.history
    assert len(h["d_loss"]) == 3
    # The discriminator learns the labelled faces' affect and the real/fake game (its total
    # loss, R1 included, falls); the generator's condition loss falls too.
    assert h["real_affect"][-1] < h["real_affect"][0]
    assert h["d_loss"][-1] < h["d_loss"][0]
    assert h["fake_affect"][-1] < h["fake_affect"][0]
    for values in h.values():
        assert np.all(np.isfinite(values))


def test_gan_folder_contents(trained):
    out = trained.out_dir
    for name in (
        "generator.keras",
        "discriminator.keras",
        "recognizer.keras",
        "samples.png",
        "training_curves.png",
        "history.json",
        "samples/epoch_003.png",
    ):
        assert (out / name).is_file(), name
    meta = read_meta(out)
    assert meta["finished"] and meta["epoch"] == 3 and meta["faces"] == 96


def test_sampling_is_reproducible_by_seed(trained):
    loaded = load_gan(trained.out_dir)
    conditions = np.stack([loaded.priors.condition(e) for e in range(8)])
    a = generate(loaded.generator, conditions, seed=7)
    b = generate(loaded.generator, conditions, seed=7)
    c = generate(loaded.generator, conditions, seed=8)
    assert a.shape == (8, 64, 64, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    # The loaded generator is the trained one.
    np.testing.assert_array_equal(a, generate(trained.gan.generator, conditions, seed=7))


def test_resume_continues_from_the_last_epoch(corpus, tmp_path, caplog):
    config = get_gan_preset("tiny", steps=4, steps_per_epoch=2, batch_size=8)
    train_gan(config, [corpus], tmp_path, verbose=0)
    meta = json.loads((tmp_path / GAN_FILE).read_text())
    meta.update(finished=False, epoch=1)  # as if killed after the first epoch
    meta["history"] = {k: v[:1] for k, v in meta["history"].items()}
    (tmp_path / GAN_FILE).write_text(json.dumps(meta))
    with caplog.at_level(logging.INFO, logger="affect_tf"):
        result = train_gan(config, [corpus], tmp_path, verbose=0)
    assert "resuming" in caplog.text
    assert len(result.history["d_loss"]) == 2 and read_meta(tmp_path)["finished"]


def test_generated_examples_join_a_training_set(trained, tmp_path):
    path = write_generated_examples(
        trained.out_dir, {"Fear": 5, "disgust": 3}, tmp_path / "g.tfrecord.gz"
    )
    priors = measure_priors([str(path)], split=None)
    assert priors.n == 8 and priors.expression_counts[3] == 5 and priors.expression_counts[2] == 3
    assert priors.va_labelled == 8 and (priors.au_labelled == 8).all()
    images, targets = next(iter(make_dataset([str(path)], 64, 0.25, batch_size=8)))
    assert images.shape == (8, 64, 64, 3)
    np.testing.assert_array_equal(np.asarray(targets["expression"])[:, 1], 1)
    # Alignment on the template landmarks leaves the generated crop (nearly) as it is.
    raw = [
        cv2.imdecode(np.frombuffer(r.image, np.uint8), cv2.IMREAD_COLOR)[..., ::-1]
        for r in read_tfrecord(str(path))
    ]
    diff = np.abs(np.asarray(images) - np.stack(raw).astype(np.float32))
    assert diff.mean() < 8.0, diff.mean()


def test_load_rejects_what_is_not_a_gan(tmp_path):
    with pytest.raises(NotAGANError, match="no gan.json"):
        load_gan(tmp_path)
    (tmp_path / GAN_FILE).write_text('{"kind": "something else"}')
    with pytest.raises(NotAGANError, match="kind"):
        load_gan(tmp_path)


def test_cli_sample(trained, tmp_path, capsys):
    out = tmp_path / "faces"
    code = main(
        [
            "gan",
            "sample",
            "--model",
            str(trained.out_dir),
            "--expression",
            "happiness",
            "--au",
            "AU12=1",
            "AU6=0.8",
            "--valence",
            "0.7",
            "--arousal",
            "0.3",
            "--n",
            "3",
            "--seed",
            "1",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "grid.png",
        "happiness_000.png",
        "happiness_001.png",
        "happiness_002.png",
    ]
    printed = capsys.readouterr().out
    assert "AU12=1.00" in printed and "valence +0.70" in printed
    assert (
        main(
            [
                "gan",
                "sample",
                "--model",
                str(trained.out_dir),
                "--expression",
                "all",
                "--n",
                "2",
                "--out",
                str(tmp_path / "all"),
            ]
        )
        == 0
    )
    assert len(list((tmp_path / "all").glob("*.png"))) == 2 * len(EXPRESSIONS) + 1


@pytest.mark.parametrize(
    "args, message",
    [
        (["--expression", "joy"], "Expected an expression in"),
        (["--expression", "Fear", "--au", "AU99=1"], "Expected an AU in"),
        (["--expression", "Fear", "--au", "AU12=2"], "Received: AU12=2"),
        (["--expression", "Fear", "--valence", "1.5"], "Expected valence in [-1, 1]"),
        (["--expression", "Fear", "--n", "0"], "Expected --n >= 1"),
    ],
)
def test_cli_sample_bad_input(trained, tmp_path, capsys, args, message):
    code = main(["gan", "sample", "--model", str(trained.out_dir), "--out", str(tmp_path), *args])
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_cli_rejects_a_folder_that_is_not_a_gan(tmp_path, capsys):
    out = str(tmp_path / "x.tfrecord.gz")
    code = main(["gan", "sample", "--model", str(tmp_path), "--expression", "Fear", "--out", out])
    assert code == 2
    assert "Expected a GAN folder" in capsys.readouterr().err
    examples = ["gan", "examples", "--model", str(tmp_path), "--out", out, "--counts"]
    assert main([*examples, "Fear=2"]) == 2
    assert main([*examples, "Fear:2"]) == 2
    assert "EXPRESSION=COUNT" in capsys.readouterr().err


def test_cli_train_and_examples(corpus, tmp_path, capsys):
    out = tmp_path / "g"
    args = ["--steps", "4", "--steps-per-epoch", "2", "--batch-size", "8", "--out", str(out)]
    assert main(["gan", "train", "--data", corpus, "--preset", "tiny", *args]) == 0
    assert "generator.keras" in capsys.readouterr().out and (out / "recognizer.keras").is_file()
    records = tmp_path / "g.tfrecord.gz"
    counts = ["--counts", "Fear=3,Other=2", "--out", str(records)]
    assert main(["gan", "examples", "--model", str(out), *counts]) == 0
    assert measure_priors([str(records)], split=None).n == 5


def test_cli_train_missing_data(tmp_path, capsys):
    code = main(
        [
            "gan",
            "train",
            "--data",
            str(tmp_path / "nothing"),
            "--preset",
            "tiny",
            "--out",
            str(tmp_path / "g"),
        ]
    )
    assert code == 2 and "Expected TFRecord files" in capsys.readouterr().err


def test_cli_help_lists_gan(capsys):
    with pytest.raises(SystemExit):
        main(["gan", "--help"])
    assert "sample" in capsys.readouterr().out
    assert sys.modules.get("affect_tf.gan.config") is not None
