import pytest

from affect_tf.core import labels


def test_label_space_is_the_abaw_one():
    assert labels.EXPRESSIONS == (
        "Neutral",
        "Anger",
        "Disgust",
        "Fear",
        "Happiness",
        "Sadness",
        "Surprise",
        "Other",
    )
    assert labels.AUS == (
        "AU1",
        "AU2",
        "AU4",
        "AU6",
        "AU7",
        "AU10",
        "AU12",
        "AU15",
        "AU23",
        "AU24",
        "AU25",
        "AU26",
    )
    assert labels.VA_RANGE == (-1.0, 1.0)
    assert set(labels.AU_DESCRIPTIONS) == set(labels.AUS)


def test_affectnet_map_follows_design():
    # 0 Neutral, 1 Happy, 2 Sad, 3 Surprise, 4 Fear, 5 Disgust, 6 Anger, 7 Contempt -> Other
    expected = ["Neutral", "Happiness", "Sadness", "Surprise", "Fear", "Disgust", "Anger", "Other"]
    assert [labels.EXPRESSIONS[labels.AFFECTNET_TO_ABAW[c]] for c in range(8)] == expected
    assert set(labels.AFFECTNET_DROPPED) == {8, 9, 10}


@pytest.mark.parametrize(
    "value, index",
    [("Happiness", 4), ("happy", 4), (" SAD ", 5), ("contempt", 7), (3, 3), ("6", 6), ("0", 0)],
)
def test_expression_index(value, index):
    assert labels.expression_index(value) == index


@pytest.mark.parametrize("value", ["joyful", 8, "-1", True, ""])
def test_expression_index_rejects(value):
    with pytest.raises(ValueError, match="Expected"):
        labels.expression_index(value)


def test_au_index():
    assert labels.au_index("AU12") == 6
    assert labels.au_index("au06") == 3
    assert labels.au_index("26") == 11
    with pytest.raises(ValueError, match="AU9"):
        labels.au_index("AU9")
