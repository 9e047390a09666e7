"""PipelineConfig: defaults < YAML < environment, and settings checked with their names."""

from __future__ import annotations

import pytest

from affect_tf.pipeline.config import ConfigError, PipelineConfig


def test_defaults_are_valid_and_paths_hang_off_the_output_root(tmp_path):
    config = PipelineConfig.load({}, output_root=str(tmp_path))
    assert config.pipeline_name == "affect" and config.corpus_format == "synth"
    assert config.metadata_path == str(tmp_path / "metadata.sqlite")
    assert config.serving_dir == str(tmp_path / "serving" / "affect")
    assert config.beam_pipeline_args() == ["--runner=FnApiRunner"]  # never Prism's download


def test_environment_overrides_yaml_overrides_defaults(tmp_path):
    yaml_file = tmp_path / "settings.yaml"
    yaml_file.write_text(
        "preset: tiny\nepochs: 3\nthresholds: {p_mtl: 0.5}\ntflite_variants: [fp32]\n"
        "enable_cache: false\n"
    )
    env = {
        "AFFECT_CONFIG": str(yaml_file),
        "AFFECT_EPOCHS": "5",
        "AFFECT_BEAM_WORKERS": "2",
        "AFFECT_MAX_P_MTL_DROP": "0.1",
    }
    config = PipelineConfig.load(env)
    assert config.preset == "tiny"
    assert config.epochs == 5  # the variable wins over the file
    assert dict(config.thresholds) == {"p_mtl": 0.5}
    assert config.tflite_variants == ("fp32",)
    assert config.enable_cache is False
    assert config.max_p_mtl_drop == pytest.approx(0.1)
    assert config.beam_pipeline_args() == [
        "--runner=FnApiRunner",
        "--direct_running_mode=multi_processing",
        "--direct_num_workers=2",
    ]


def test_environment_strings_are_parsed_per_type():
    config = PipelineConfig.load(
        {
            "AFFECT_THRESHOLDS": '{"p_mtl": 1.2, "au_f1": 0.1}',
            "AFFECT_TFLITE_VARIANTS": "fp32,int8",
            "AFFECT_ENABLE_CACHE": "no",
            "AFFECT_EPOCHS": "none",
        }
    )
    assert dict(config.thresholds) == {"p_mtl": 1.2, "au_f1": 0.1}
    assert config.tflite_variants == ("fp32", "int8")
    assert config.enable_cache is False and config.epochs is None


@pytest.mark.parametrize(
    "env, setting",
    [
        ({"AFFECT_PRESET": "huge"}, "preset="),
        ({"AFFECT_CORPUS_FORMAT": "csv"}, "corpus_format="),
        ({"AFFECT_CORPUS_FORMAT": "manifest"}, "corpus_root="),
        ({"AFFECT_CORPUS_FORMAT": "manifest", "AFFECT_CORPUS_ROOT": "/no/such"}, "corpus_root="),
        ({"AFFECT_EVAL_PERCENT": "0"}, "eval_percent="),
        ({"AFFECT_EPOCHS": "0"}, "epochs="),
        ({"AFFECT_EPOCHS": "many"}, "epochs"),
        ({"AFFECT_THRESHOLDS": '{"accuracy": 0.5}'}, "thresholds="),
        ({"AFFECT_THRESHOLDS": '{"p_mtl": 7}'}, "thresholds="),
        ({"AFFECT_AU_THRESHOLD": "1.5"}, "au_threshold="),
        ({"AFFECT_TFLITE_VARIANTS": "fp64"}, "tflite_variants="),
        ({"AFFECT_ENABLE_CACHE": "maybe"}, "enable_cache"),
        ({"AFFECT_GAN_EXAMPLES": "/no/such/*.tfrecord.gz"}, "gan_examples="),
        ({"AFFECT_CORPORA": "/no/such/x.tfrecord.gz"}, "corpora="),
        ({"AFFECT_CORPORA": "/no/such/x.tfrecord.gz:-1"}, "weight >= 0"),
        ({"AFFECT_CORPORA": "/no/such/x.tfrecord.gz:0.3"}, "every --data"),
        ({"AFFECT_CORPORA": "x:0", "AFFECT_CORPUS_WEIGHT": "0"}, "sum to more than 0"),
        ({"AFFECT_CORPUS_WEIGHT": "0.7"}, "corpus_weight="),
        ({"AFFECT_TRAINER_WORKERS": "0"}, "trainer_workers="),
        ({"AFFECT_TRAINER_WORKERS": "2"}, "vertex_project="),
        (
            {
                "AFFECT_TRAINER_WORKERS": "2",
                "AFFECT_VERTEX_PROJECT": "p",
                "AFFECT_TRAINER_IMAGE": "i",
                "AFFECT_STRATEGY": "mirrored",
            },
            "strategy=",
        ),
    ],
)
def test_bad_settings_fail_early_naming_the_setting(env, setting):
    with pytest.raises(ConfigError, match=setting):
        PipelineConfig.load(env)


def test_unknown_yaml_key_and_missing_yaml_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("presett: tiny\n")
    with pytest.raises(ConfigError, match="unknown.*presett"):
        PipelineConfig.load({"AFFECT_CONFIG": str(bad)})
    with pytest.raises(ConfigError, match="AFFECT_CONFIG"):
        PipelineConfig.load({"AFFECT_CONFIG": str(tmp_path / "missing.yaml")})
