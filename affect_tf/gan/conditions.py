"""The generator's condition vector: expression one-hot, 12 AU activations, valence, arousal.

Layout (``CONDITION_DIM`` = 22), fixed here once: ``[0:8]`` expression one-hot in
``labels.EXPRESSIONS`` order, ``[8:20]`` AU activations in [0, 1] in ``labels.AUS`` order,
``[20:22]`` valence and arousal in [-1, 1]. ``ConditionPriors`` measures, from the labelled faces
of a training set, which conditions are plausible: per expression the AU rates and the VA
distribution, plus the labelled rows themselves (so that the generator practises the AU / VA
combinations real faces show, not arbitrary ones).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np

from affect_tf.core.labels import AUS, EXPRESSIONS, NUM_AUS, NUM_EXPRESSIONS, VA_RANGE

CONDITION_DIM = NUM_EXPRESSIONS + NUM_AUS + 2
EXPR_SLICE = slice(0, NUM_EXPRESSIONS)
AU_SLICE = slice(NUM_EXPRESSIONS, NUM_EXPRESSIONS + NUM_AUS)
VA_SLICE = slice(NUM_EXPRESSIONS + NUM_AUS, CONDITION_DIM)


def expression_index(name: str | int) -> int:
    """The class index of an expression name (case-insensitive) or index.

    Raises:
        ValueError: For a name or index that is not one of ``labels.EXPRESSIONS``.
    """
    if isinstance(name, int | np.integer):
        if 0 <= int(name) < NUM_EXPRESSIONS:
            return int(name)
    else:
        lowered = {e.lower(): i for i, e in enumerate(EXPRESSIONS)}
        key = str(name).strip().lower()
        if key in lowered:
            return lowered[key]
    raise ValueError(
        f"Expected an expression in {list(EXPRESSIONS)}. Received: expression={name!r}"
    )


def parse_au_assignments(items: Sequence[str]) -> dict[str, float]:
    """``["AU12=1", "au4=0.5"]`` -> ``{"AU12": 1.0, "AU4": 0.5}`` (activations in [0, 1]).

    Raises:
        ValueError: For a malformed item, an AU outside the 12 of ``labels.AUS`` or a value
            outside [0, 1].
    """
    out: dict[str, float] = {}
    names = {a.lower(): a for a in AUS}
    for item in items:
        name, sep, value = str(item).partition("=")
        if not sep:
            raise ValueError(f"Expected AU=VALUE, e.g. AU12=1. Received: au={item!r}")
        key = name.strip().lower()
        if key not in names:
            raise ValueError(f"Expected an AU in {list(AUS)}. Received: au={name.strip()!r}")
        try:
            number = float(value)
        except ValueError:
            raise ValueError(
                f"Expected a number in [0, 1] for {names[key]}. Received: {names[key]}={value!r}"
            ) from None
        if not 0.0 <= number <= 1.0:
            raise ValueError(
                f"Expected an AU activation in [0, 1]. Received: {names[key]}={number:g}"
            )
        out[names[key]] = number
    return out


def check_va(name: str, value: float | None) -> float | None:
    """``value`` if it lies in [-1, 1] (or is None).

    Raises:
        ValueError: Otherwise, naming the dimension.
    """
    if value is None:
        return None
    lo, hi = VA_RANGE
    if not (lo <= float(value) <= hi):  # also rejects NaN
        raise ValueError(f"Expected {name} in [{lo:g}, {hi:g}]. Received: {name}={value}")
    return float(value)


def condition_targets(conditions) -> dict:
    """Conditions ``(B, 22)`` -> packed training targets (``affect_tf.data.targets`` layout).

    The expression target is the one-hot's class; AU targets are the activations themselves
    (soft labels for the BCE); every mask is 1. Works on arrays and tensors (``keras.ops``).
    """
    from keras import ops

    conditions = ops.cast(conditions, "float32")
    ones = ops.ones_like(conditions[:, :1])
    expression = ops.cast(ops.argmax(conditions[:, EXPR_SLICE], axis=-1), "float32")[:, None]
    au = conditions[:, AU_SLICE]
    return {
        "va": ops.concatenate([conditions[:, VA_SLICE], ones], axis=-1),
        "expression": ops.concatenate([expression, ones], axis=-1),
        "au": ops.concatenate([au, ops.ones_like(au)], axis=-1),
    }


@dataclasses.dataclass
class ConditionPriors:
    """What the labelled training faces say about plausible conditions.

    Attributes:
        counts: Expression-labelled faces per class.
        au_mean: ``(8, 12)`` AU rate per expression (over AU-labelled faces of the class).
        va_mean, va_std: ``(8, 2)`` valence/arousal mean and spread per expression.
        rows: ``(N, 22)`` the conditions of the expression-labelled faces, masked AUs / VA filled
            from their class's rate / mean (not saved: the data holds them).
    """

    counts: np.ndarray
    au_mean: np.ndarray
    va_mean: np.ndarray
    va_std: np.ndarray
    rows: np.ndarray | None = None

    @classmethod
    def from_labels(cls, labels: Mapping[str, np.ndarray]) -> ConditionPriors:
        """From parsed label features (``data.examples`` keys, NumPy, one row per face).

        Raises:
            ValueError: When no face has an expression label (nothing to condition on).
        """
        from affect_tf.data import examples as ex

        expr_mask = np.asarray(labels[ex.EXPR_MASK]).astype(bool).reshape(-1)
        if not expr_mask.any():
            raise ValueError(
                "Expected expression-labelled faces to learn conditions from. Received: "
                f"{expr_mask.size} faces, none with an expression label"
            )
        expression = np.asarray(labels[ex.EXPRESSION]).reshape(-1)[expr_mask]
        au = np.asarray(labels[ex.AU], np.float64)[expr_mask]
        au_mask = np.asarray(labels[ex.AU_MASK], np.float64)[expr_mask]
        va = np.stack([labels[ex.VALENCE], labels[ex.AROUSAL]], axis=-1).astype(np.float64)
        va = va[expr_mask]
        va_mask = np.asarray(labels[ex.VA_MASK], np.float64).reshape(-1)[expr_mask]

        counts = np.bincount(expression, minlength=NUM_EXPRESSIONS)[:NUM_EXPRESSIONS].astype(float)
        global_au = (au * au_mask).sum(0) / np.maximum(au_mask.sum(0), 1)
        au_mean = np.tile(global_au, (NUM_EXPRESSIONS, 1))
        va_mean = np.zeros((NUM_EXPRESSIONS, 2))
        va_std = np.full((NUM_EXPRESSIONS, 2), 0.1)
        for c in range(NUM_EXPRESSIONS):
            of_class = expression == c
            m = au_mask[of_class]
            labelled = m.sum(0)
            au_mean[c] = np.where(
                labelled > 0, (au[of_class] * m).sum(0) / np.maximum(labelled, 1), global_au
            )
            with_va = of_class & (va_mask > 0)
            if with_va.sum() > 0:
                va_mean[c] = va[with_va].mean(0)
            if with_va.sum() > 1:
                va_std[c] = np.maximum(va[with_va].std(0), 0.02)
        rows = np.zeros((expression.size, CONDITION_DIM), np.float32)
        rows[np.arange(expression.size), expression] = 1.0
        rows[:, AU_SLICE] = np.where(au_mask > 0, au, au_mean[expression])
        rows[:, VA_SLICE] = np.where(va_mask[:, None] > 0, va, va_mean[expression])
        return cls(counts, au_mean, va_mean, va_std, rows)

    @classmethod
    def from_files(cls, files: Sequence[str], split: str | None = None, eval_percent: int = 10):
        """One label-only pass over tf.Example files (the chosen by-video split)."""
        from affect_tf.data.dataset import label_batches

        return cls.from_label_batches(list(label_batches(files, split, eval_percent)), files)

    @classmethod
    def from_label_batches(cls, batches: Sequence[Mapping[str, np.ndarray]], files=()):
        """From ``data.dataset.label_batches`` output (concatenated).

        Raises:
            ValueError: When there are no faces, or none with an expression label.
        """
        if not batches:
            raise ValueError(f"Expected labelled faces. Received: none in {list(files)}")
        return cls.from_labels({k: np.concatenate([b[k] for b in batches]) for k in batches[0]})

    @property
    def present(self) -> np.ndarray:
        """Class indices with at least one labelled face."""
        return np.flatnonzero(self.counts > 0)

    def condition(
        self,
        expression: str | int,
        aus: Mapping[str, float] | None = None,
        valence: float | None = None,
        arousal: float | None = None,
    ) -> np.ndarray:
        """One condition ``(22,)``: the expression's typical AUs and VA, with overrides.

        Raises:
            ValueError: For an unknown expression or AU, or a value out of range.
        """
        c = expression_index(expression)
        out = np.zeros(CONDITION_DIM, np.float32)
        out[c] = 1.0
        out[AU_SLICE] = self.au_mean[c]
        out[VA_SLICE] = self.va_mean[c]
        for name, value in parse_au_assignments(
            [f"{k}={v}" for k, v in (aus or {}).items()]
        ).items():
            out[NUM_EXPRESSIONS + AUS.index(name)] = value
        v, a = check_va("valence", valence), check_va("arousal", arousal)
        if v is not None:
            out[VA_SLICE.start] = v
        if a is not None:
            out[VA_SLICE.start + 1] = a
        return out

    def sample(
        self, n: int, rng: np.random.Generator, balance: bool = True, expression: int | None = None
    ) -> np.ndarray:
        """``n`` conditions drawn from the labelled rows (uniform over classes with ``balance``)."""
        if self.rows is None:
            raise ValueError("Expected ConditionPriors measured from data (rows). Received: none")
        classes = np.argmax(self.rows[:, EXPR_SLICE], axis=-1)
        if expression is not None:
            wanted = np.full(n, expression_index(expression))
        elif balance:
            wanted = rng.choice(self.present, size=n)
        else:
            return self.rows[rng.integers(0, len(self.rows), n)].copy()
        out = np.empty((n, CONDITION_DIM), np.float32)
        for c in np.unique(wanted):
            pool = self.rows[classes == c]
            where = np.flatnonzero(wanted == c)
            if len(pool) == 0:
                out[where] = self.condition(int(c))
            else:
                out[where] = pool[rng.integers(0, len(pool), where.size)]
        return out

    def dataset(self, batch_size: int, balance: bool = True, seed: int = 0):
        """An endless ``tf.data`` stream of condition batches ``(batch_size, 22)``."""
        import tensorflow as tf

        if self.rows is None:
            raise ValueError("Expected ConditionPriors measured from data (rows). Received: none")
        classes = np.argmax(self.rows[:, EXPR_SLICE], axis=-1)
        if balance:
            parts = [
                tf.data.Dataset.from_tensor_slices(self.rows[classes == c])
                .shuffle(int((classes == c).sum()), seed=seed + int(c))
                .repeat()
                for c in self.present
            ]
            ds = tf.data.Dataset.sample_from_datasets(parts, seed=seed)
        else:
            ds = tf.data.Dataset.from_tensor_slices(self.rows).shuffle(len(self.rows), seed=seed)
            ds = ds.repeat()
        return ds.batch(batch_size, drop_remainder=True)

    def to_dict(self) -> dict:
        return {
            "counts": self.counts.tolist(),
            "au_mean": np.round(self.au_mean, 6).tolist(),
            "va_mean": np.round(self.va_mean, 6).tolist(),
            "va_std": np.round(self.va_std, 6).tolist(),
        }

    @classmethod
    def from_dict(cls, values: Mapping) -> ConditionPriors:
        return cls(
            counts=np.asarray(values["counts"], np.float64),
            au_mean=np.asarray(values["au_mean"], np.float64),
            va_mean=np.asarray(values["va_mean"], np.float64),
            va_std=np.asarray(values["va_std"], np.float64),
        )
