"""tf.data input pipelines over tf.Example files: parse -> align -> augment -> (image, targets).

Also the label pass that measures what training needs from the data (class frequencies, AU
positive rates, the label-correlation graph) and the by-video split.
"""

from __future__ import annotations

import dataclasses
import glob
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import tensorflow as tf

from affect_tf.core.files import is_input_file
from affect_tf.core.labels import NUM_AUS, NUM_EXPRESSIONS
from affect_tf.data import examples as ex
from affect_tf.data import targets as tg
from affect_tf.data.label_graph import (
    NUM_NODES,
    PAIR_STATS,
    identity_adjacency,
    label_adjacency,
    label_correlation,
    label_vectors,
    pair_stats,
)
from affect_tf.data.preprocess import preprocess_face

AUTOTUNE = tf.data.AUTOTUNE
# Label-only parsing: no image bytes, so a statistics pass over a corpus is fast.
LABEL_KEYS = tuple(k for k in ex.FEATURE_SPEC if k != ex.IMAGE)


def resolve_files(data: str | Path | Sequence[str | Path]) -> list[str]:
    """TFRecord files from a path, a folder (``*.tfrecord*``), a glob or a list of those;
    hidden and partial files (a killed job's) are never among them (``is_input_file``).

    Raises:
        FileNotFoundError: When nothing matches.
    """
    items = [data] if isinstance(data, str | Path) else list(data)
    files: list[str] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            files += sorted(
                str(p)
                for p in path.glob("*.tfrecord*")
                if not p.name.endswith(".json") and is_input_file(p)
            )
        elif path.is_file():
            files.append(str(path))
        else:  # glob leaves hidden files out unless the pattern names them
            files += sorted(f for f in glob.glob(str(item)) if is_input_file(f))
    if not files:
        raise FileNotFoundError(
            "Expected TFRecord files (a file, folder or glob). "
            f"Received: data={data!r} (nothing found)"
        )
    return files


def serialized_examples(files: Sequence[str] | tf.data.Dataset) -> tf.data.Dataset:
    """Serialized tf.Examples of the files (GZIP for names ending in .gz); a dataset of
    serialized tf.Examples (e.g. SynthAffect rendered on the fly) is returned as it is."""
    if isinstance(files, tf.data.Dataset):
        return files
    gz = [f for f in files if f.endswith(".gz")]
    plain = [f for f in files if not f.endswith(".gz")]
    parts = []
    if gz:
        parts.append(tf.data.TFRecordDataset(gz, compression_type="GZIP"))
    if plain:
        parts.append(tf.data.TFRecordDataset(plain))
    ds = parts[0]
    for other in parts[1:]:
        ds = ds.concatenate(other)
    return ds


def in_split(video_id: tf.Tensor, split: str, eval_percent: int = 10) -> tf.Tensor:
    """Whether a video belongs to ``split`` ('train' / 'eval'): a stable hash of its id."""
    bucket = tf.strings.to_hash_bucket_fast(video_id, 100)
    is_eval = bucket < eval_percent
    return is_eval if split == "eval" else tf.logical_not(is_eval)


def _filter_split(ds: tf.data.Dataset, split: str | None, eval_percent: int) -> tf.data.Dataset:
    if split is None:
        return ds
    return ds.filter(
        lambda s: in_split(
            ex.parse_example(s, keys=[ex.VIDEO_ID])[ex.VIDEO_ID],
            split,
            eval_percent,
        )
    )


def balance_expressions(
    ds: tf.data.Dataset,
    counts: Sequence[float],
    unlabelled: int,
    size: int,
    seed: int | None = None,
    cache: bool = False,
) -> tf.data.Dataset:
    """Class-balanced sampling of aligned ``(image, targets, ...)`` elements, ``size`` of them.

    Each expression class present in ``counts`` gets the same share of the labelled part;
    examples without an expression label (other tasks only) keep their own share. Every class
    is its own repeated stream, so rare classes are repeated and frequent ones subsampled.

    Args:
        ds: Unbatched elements whose second item holds the packed targets.
        counts: Training examples per expression class (``LabelPriors.expression_counts``).
        unlabelled: Training examples without an expression label.
        size: Elements to draw (one epoch).
        seed: Sampling seed.
        cache: Keep each class's elements in memory after the first pass. Each class has its
            own cache (one copy of every face in all) so that a repeat reads only its class: a
            filter over one shared cache reads about 1 / share elements per draw. On FER+ skewed
            to a rarest class at 0.07 % (5,851 faces) the data alone took 69-77 s per epoch
            with one shared cache, 2-3 s with one per class after a 27 s first epoch (the
            price: one decode of the file per class, once).
    """
    counts = np.asarray(counts, np.float64)
    present = [c for c in range(NUM_EXPRESSIONS) if counts[c] > 0]
    if len(present) < 2:
        return (ds.cache() if cache else ds).take(size)

    def label_of(*element):
        expression = element[1][tg.EXPRESSION]
        return tf.where(expression[1] > 0, tf.cast(expression[0], tf.int32), NUM_EXPRESSIONS)

    def stream(keep) -> tf.data.Dataset:
        part = ds.filter(keep)
        return (part.cache() if cache else part).repeat()

    streams = [stream(lambda *e, c=c: tf.equal(label_of(*e), c)) for c in present]
    share = unlabelled / max(unlabelled + counts.sum(), 1.0)
    weights = [(1.0 - share) / len(streams)] * len(streams)
    if unlabelled:
        streams.append(stream(lambda *e: tf.equal(label_of(*e), NUM_EXPRESSIONS)))
        weights.append(share)
    return tf.data.Dataset.sample_from_datasets(streams, weights, seed=seed).take(size)


def make_dataset(
    files: Sequence[str] | tf.data.Dataset,
    image_size: int,
    margin: float,
    batch_size: int = 32,
    training: bool = False,
    split: str | None = None,
    eval_percent: int = 10,
    shuffle_buffer: int = 4096,
    seed: int | None = None,
    with_meta: bool = False,
    cache: bool = True,
    balance: tuple[Sequence[float], int, int] | None = None,
) -> tf.data.Dataset:
    """Batches of ``(images, targets)`` (or ``(images, targets, meta)`` with ``with_meta``).

    Args:
        files: TFRecord files of tf.Examples (``resolve_files``), or a dataset of serialized
            tf.Examples (``serialized_examples``).
        image_size, margin: The model's crop.
        batch_size: Batch size.
        training: Shuffle. (Augmentation is part of the model: ``AffectConfig.augment``.)
        split: None for every example, or 'train'/'eval' for the by-video hash split.
        eval_percent: Share of videos in the 'eval' split.
        with_meta: Also yield ``{"video_id", "frame", "source"}`` for per-video evaluation.
        cache: Keep the aligned crops in memory after the first pass (they are small).
        balance: ``(expression counts, examples without one, examples per epoch)``:
            class-balanced sampling (``balance_expressions``) of the training stream.
    """
    ds = aligned_stream(files, image_size, margin, training, split, eval_percent, seed, cache,
                        balance)  # fmt: skip
    if training:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    return batched(ds, batch_size, with_meta)


def batched(ds: tf.data.Dataset, batch_size: int, with_meta: bool) -> tf.data.Dataset:
    """Batches of ``(image, targets, meta)`` elements (meta dropped unless ``with_meta``)."""
    ds = ds.batch(batch_size)
    if not with_meta:
        ds = ds.map(lambda x, y, m: (x, y))
    return ds.prefetch(AUTOTUNE)


def aligned_stream(
    files: Sequence[str] | tf.data.Dataset,
    image_size: int,
    margin: float,
    training: bool = False,
    split: str | None = None,
    eval_percent: int = 10,
    seed: int | None = None,
    cache: bool = True,
    balance: tuple[Sequence[float], int, int] | None = None,
) -> tf.data.Dataset:
    """Unbatched ``(image, targets, meta)`` of tf.Example files (``make_dataset``'s stream)."""
    ds = _filter_split(serialized_examples(files), split, eval_percent)

    def parse(serialized):
        f = ex.parse_example(serialized)
        image = preprocess_face(f[ex.IMAGE], f[ex.LANDMARKS], f[ex.BBOX], image_size, margin)
        targets = tg.targets_from_features(f)
        meta = {ex.VIDEO_ID: f[ex.VIDEO_ID], ex.FRAME: f[ex.FRAME], ex.SOURCE: f[ex.SOURCE]}
        return image, targets, meta

    ds = ds.map(parse, num_parallel_calls=AUTOTUNE, deterministic=not training)
    if balance is not None:
        return balance_expressions(ds, *balance, seed=seed, cache=cache)
    return ds.cache() if cache else ds


@dataclasses.dataclass
class LabelPriors:
    """What training needs from the labels of the training split, measured exactly.

    Attributes:
        n: Examples seen.
        expression_counts: Labelled examples per class.
        au_positive, au_labelled: Per-AU positives and labelled examples.
        va_labelled: Examples with VA.
        pair_stats: Label-correlation sufficient statistics (``label_graph.pair_stats``).
    """

    n: int = 0
    expression_counts: np.ndarray = dataclasses.field(
        default_factory=lambda: np.zeros(NUM_EXPRESSIONS)
    )
    au_positive: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(NUM_AUS))
    au_labelled: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(NUM_AUS))
    va_labelled: int = 0
    pair_stats: np.ndarray | None = None

    def update(self, f: dict) -> None:
        """Adds a batch of parsed label features (NumPy arrays)."""

        expr_mask = f[ex.EXPR_MASK].astype(bool)
        self.n += len(expr_mask)
        self.expression_counts += np.bincount(
            f[ex.EXPRESSION][expr_mask], minlength=NUM_EXPRESSIONS
        )[:NUM_EXPRESSIONS]
        self.au_positive += (f[ex.AU] * f[ex.AU_MASK]).sum(axis=0)
        self.au_labelled += f[ex.AU_MASK].sum(axis=0)
        self.va_labelled += int(f[ex.VA_MASK].sum())
        values, valid = label_vectors(
            f[ex.EXPRESSION],
            f[ex.EXPR_MASK],
            f[ex.VALENCE],
            f[ex.AROUSAL],
            f[ex.VA_MASK],
            f[ex.AU],
            f[ex.AU_MASK],
        )
        stats = pair_stats(values, valid)
        self.pair_stats = stats if self.pair_stats is None else self.pair_stats + stats

    def class_weights(self, max_weight: float = 10.0) -> np.ndarray:
        """Inverse-frequency expression weights, mean 1 over the classes present, capped."""
        counts = self.expression_counts
        present = counts > 0
        if not present.any():
            return np.ones(NUM_EXPRESSIONS)
        weights = np.where(present, counts.sum() / (present.sum() * np.maximum(counts, 1)), 1.0)
        return np.clip(weights, 1.0 / max_weight, max_weight)

    def balance_spec(self, size: int | None = None) -> tuple[np.ndarray, int, int]:
        """``make_dataset(balance=...)`` for class-balanced epochs of ``size`` (default n)."""
        labelled = int(round(float(np.sum(self.expression_counts))))
        return np.asarray(self.expression_counts), self.n - labelled, size or self.n

    def pos_weights(self, max_weight: float = 20.0) -> np.ndarray:
        """Per-AU negatives/positives, in [1, max_weight] (1 for an AU never labelled positive)."""
        pos = self.au_positive
        neg = self.au_labelled - pos
        return np.clip(np.where(pos > 0, neg / np.maximum(pos, 1), 1.0), 1.0, max_weight)

    def adjacency(self, tau: float = 0.3, p: float = 0.25) -> np.ndarray:

        if self.pair_stats is None:
            return identity_adjacency()
        return label_adjacency(label_correlation(self.pair_stats), tau, p)

    @staticmethod
    def vector_size() -> int:
        """Length of ``to_vector``: n, 8 counts, 12 positives, 12 labelled, VA count, pairs."""

        return 2 + NUM_EXPRESSIONS + 2 * NUM_AUS + PAIR_STATS * NUM_NODES * NUM_NODES

    def to_vector(self) -> np.ndarray:
        """All statistics as one flat vector (the TFX Transform graph's ``label_priors``)."""

        pairs = self.pair_stats
        if pairs is None:
            pairs = np.zeros((PAIR_STATS, NUM_NODES, NUM_NODES))
        return np.concatenate(
            [
                [self.n],
                self.expression_counts,
                self.au_positive,
                self.au_labelled,
                [self.va_labelled],
                np.asarray(pairs).reshape(-1),
            ]
        ).astype(np.float64)

    @classmethod
    def from_vector(cls, vector) -> LabelPriors:
        """Inverse of ``to_vector``.

        Raises:
            ValueError: For a vector of the wrong length.
        """

        v = np.asarray(vector, np.float64).reshape(-1)
        if v.size != cls.vector_size():
            raise ValueError(
                f"Expected label priors of length {cls.vector_size()}. Received: {v.size}"
            )
        e, a = NUM_EXPRESSIONS, NUM_AUS
        return cls(
            n=int(round(v[0])),
            expression_counts=v[1 : 1 + e],
            au_positive=v[1 + e : 1 + e + a],
            au_labelled=v[1 + e + a : 1 + e + 2 * a],
            va_labelled=int(round(v[1 + e + 2 * a])),
            pair_stats=v[2 + e + 2 * a :].reshape(PAIR_STATS, NUM_NODES, NUM_NODES),
        )

    def to_dict(self) -> dict:
        return {
            "n": self.n,
            "expression_counts": self.expression_counts.tolist(),
            "au_positive_rate": (self.au_positive / np.maximum(self.au_labelled, 1)).tolist(),
            "va_labelled": self.va_labelled,
            "class_weights": self.class_weights().tolist(),
            "pos_weights": self.pos_weights().tolist(),
        }


def label_batches(
    files: Sequence[str] | tf.data.Dataset,
    split: str | None = "train",
    eval_percent: int = 10,
    batch_size: int = 1024,
) -> Iterator[dict[str, np.ndarray]]:
    """Label-only parsed batches (``LABEL_KEYS``, NumPy) of the files (the chosen split)."""
    ds = _filter_split(serialized_examples(files), split, eval_percent)
    ds = ds.batch(batch_size).map(
        lambda s: ex.parse_examples(s, keys=LABEL_KEYS), num_parallel_calls=AUTOTUNE
    )
    yield from ds.as_numpy_iterator()


def measure_priors(
    files: Sequence[str] | tf.data.Dataset,
    split: str | None = "train",
    eval_percent: int = 10,
    batch_size: int = 1024,
) -> LabelPriors:
    """One label-only pass over the files (the chosen split) -> ``LabelPriors``."""
    priors = LabelPriors()
    for batch in label_batches(files, split, eval_percent, batch_size):
        priors.update(batch)
    return priors


def make_transformed_dataset(
    files: Sequence[str],
    tft_layer,
    raw_feature_spec: dict,
    batch_size: int = 32,
    training: bool = False,
    split: str | None = None,
    eval_percent: int = 10,
    shuffle_buffer: int = 4096,
    seed: int | None = None,
    cache: bool = True,
    extra_files: Sequence[str] = (),
    balance: tuple[Sequence[float], int, int] | None = None,
) -> tf.data.Dataset:
    """Batches of ``(images, targets)`` through a TFX Transform graph (the Trainer's input).

    Args:
        files: Raw tf.Example TFRecord files (ExampleGen's split).
        tft_layer: ``TFTransformOutput.transform_features_layer()``.
        raw_feature_spec: ``TFTransformOutput.raw_feature_spec()``.
        split, eval_percent: As in ``make_dataset`` (a by-video hold-out inside the files).
        cache: Keep the transformed faces in memory after the first pass.
        extra_files: More raw tf.Example files, used whole (not split), e.g. generated faces.
        balance: As in ``make_dataset``.
    """
    ds = transformed_stream(files, tft_layer, raw_feature_spec, split, eval_percent, seed,
                            cache, extra_files, balance)  # fmt: skip
    if training:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size).prefetch(AUTOTUNE)


def transformed_stream(
    files: Sequence[str],
    tft_layer,
    raw_feature_spec: dict,
    split: str | None = None,
    eval_percent: int = 10,
    seed: int | None = None,
    cache: bool = True,
    extra_files: Sequence[str] = (),
    balance: tuple[Sequence[float], int, int] | None = None,
) -> tf.data.Dataset:
    """Unbatched ``(image, targets)`` through a Transform graph (``make_transformed_dataset``'s
    stream; ``affect_tf.data.mixing`` mixes several)."""
    ds = _filter_split(serialized_examples(files), split, eval_percent)
    if extra_files:
        ds = ds.concatenate(serialized_examples(list(extra_files)))

    def transform(serialized):
        transformed = tft_layer(ex.parse_examples(serialized, spec=raw_feature_spec))
        return transformed[ex.TRANSFORMED_IMAGE], tg.targets_from_features(transformed)

    ds = ds.batch(256).map(transform, num_parallel_calls=AUTOTUNE).unbatch()
    if balance is not None:
        return balance_expressions(ds, *balance, seed=seed, cache=cache)
    return ds.cache() if cache else ds


def count_examples(files: Sequence[str], split: str | None = None, eval_percent: int = 10) -> int:
    """Number of examples in the files (the chosen by-video split)."""
    ds = _filter_split(serialized_examples(files), split, eval_percent)
    return int(ds.reduce(np.int64(0), lambda n, _: n + 1).numpy())
