"""AffectModel: backbone -> shared embedding -> expression / AU / VA heads, with its own loss.

A Keras 3 functional model (the keras-hub "task" pattern): built from an ``AffectConfig``, it
saves to ``.keras`` and loads back with ``keras.models.load_model`` (the custom objects are
registered), and ``model.predict(faces)`` returns ``{"expression": logits (N, 8), "au": logits
(N, 12), "va": (N, 2) in [-1, 1]}``. Input: aligned face crops ``(N, S, S, 3)``, RGB, float or
uint8 in [0, 255] (``affect_tf.preprocess`` makes them from images and landmarks).

Training uses the composite masked loss of ``affect_tf.losses.affect_loss`` (compile without a
``loss``); per-task losses are logged as ``va_loss``, ``expression_loss``, ``au_loss``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np
from keras import layers, ops

from affect_tf import targets as tg
from affect_tf.losses import affect_loss
from affect_tf.metrics import training_metrics
from affect_tf.model.backbones import build_backbone
from affect_tf.model.config import PRESETS, AffectConfig
from affect_tf.model.heads import GCNHeads, mlp_heads

TASK_ORDER = (tg.VA, tg.EXPRESSION, tg.AU)


def _as_list(values, length: int, what: str) -> list[float] | None:
    if values is None:
        return None
    values = [float(v) for v in np.asarray(values).reshape(-1)]
    if len(values) != length:
        raise ValueError(f"Expected {length} {what}. Received: {len(values)} values")
    return values


@keras.saving.register_keras_serializable(package="affect_tf")
class AffectModel(keras.Model):
    """The multi-task affect model.

    Args:
        config: An ``AffectConfig`` (or its dict); default the ``tiny`` preset.
        adjacency: ``(22, 22)`` label-graph adjacency for GCN heads (``heads.label_adjacency``);
            identity when None.
        class_weights: 8 expression weights for the cross-entropy (None: unweighted).
        pos_weights: 12 AU positive weights for the BCE (None: 1).
        backbone_weights: Optional local weights file for the backbone.
    """

    def __init__(
        self,
        config: AffectConfig | dict | None = None,
        adjacency: Sequence[Sequence[float]] | np.ndarray | None = None,
        class_weights: Sequence[float] | None = None,
        pos_weights: Sequence[float] | None = None,
        backbone_weights: str | Path | None = None,
        **kwargs,
    ):
        if isinstance(config, dict):
            config = AffectConfig.from_dict(config)
        config = config or PRESETS["tiny"]
        size = config.image_size
        image = keras.Input((size, size, 3), name="image")
        backbone = build_backbone(config.backbone, size, backbone_weights)
        x = backbone(image)
        x = layers.Dense(config.embedding_dim, use_bias=False, name="embedding_dense")(x)
        x = layers.BatchNormalization(name="embedding_bn")(x)
        embedding = layers.Activation("relu", name=tg.EMBEDDING)(x)
        x = layers.Dropout(config.dropout, name="embedding_dropout")(embedding)
        if config.heads == "gcn":
            gcn = GCNHeads(adjacency, config.gcn_node_dim, config.gcn_hidden, name="gcn_heads")
            expression, au, va = gcn(x)
            outputs = {
                tg.EXPRESSION: layers.Identity(name=tg.EXPRESSION)(expression),
                tg.AU: layers.Identity(name=tg.AU)(au),
                tg.VA: layers.Identity(name=tg.VA)(va),
            }
        else:
            outputs = mlp_heads(x, config.head_hidden, config.dropout)
        kwargs.setdefault("name", f"affect_{config.name}")
        super().__init__(inputs=image, outputs=outputs, **kwargs)
        self.affect_config = config
        self.adjacency = None if adjacency is None else np.asarray(adjacency, np.float64).tolist()
        self.class_weights = _as_list(class_weights, 8, "expression class weights")
        self.pos_weights = _as_list(pos_weights, 12, "AU positive weights")
        # Task log-variances for learned uncertainty weighting (unused, and frozen, otherwise).
        self.task_log_vars = self.add_weight(
            shape=(3,), initializer="zeros", trainable=config.uncertainty, name="task_log_vars"
        )
        self.task_losses = {t: keras.metrics.Mean(name=f"{t}_loss") for t in TASK_ORDER}

    # --- training ------------------------------------------------------------------------------

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """The composite masked loss (used when compiled without an explicit ``loss``)."""
        if self.loss is not None:
            return super().compute_loss(x, y, y_pred, sample_weight, training)
        config = self.affect_config
        _check_targets(y, config.tasks)
        weights = {
            task: (w if task in config.tasks else 0.0)
            for task, w in zip(TASK_ORDER, config.loss_weights, strict=True)
        }
        total, terms = affect_loss(
            y,
            y_pred,
            weights=weights,
            class_weights=self.class_weights if config.class_weighting else None,
            pos_weights=self.pos_weights if config.class_weighting else None,
            label_smoothing=config.label_smoothing,
            log_vars=self.task_log_vars if config.uncertainty else None,
        )
        for task, value in terms.items():
            self.task_losses[task].update_state(value)
        if self.losses:
            total = total + ops.sum(self.losses)
        return total

    @property
    def metrics(self):
        base = super().metrics
        return [*base, *(m for m in self.task_losses.values() if all(m is not b for b in base))]

    def compile_for_training(
        self, steps_per_epoch: int, epochs: int | None = None, **kwargs
    ) -> None:
        """Compiles with AdamW + cosine decay and the ABAW metrics (composite loss)."""
        config = self.affect_config
        epochs = epochs or config.epochs
        schedule = keras.optimizers.schedules.CosineDecay(
            config.learning_rate, decay_steps=max(1, steps_per_epoch * epochs), alpha=0.05
        )
        optimizer = keras.optimizers.AdamW(schedule, weight_decay=config.weight_decay, clipnorm=5.0)
        metrics = {task: m for task, m in training_metrics().items() if task in config.tasks}
        self.compile(optimizer=optimizer, metrics=metrics, **kwargs)

    # --- inference -----------------------------------------------------------------------------

    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
        """``keras.Model.predict``, without Keras' per-call input pipeline for one batch.

        Keras builds and traces a ``tf.data`` pipeline on every ``predict`` call: ~75 ms for
        one 64 px face on 2 CPU cores, against ~3 ms for the model itself
        (``docs/benchmarks.md``), which made predicting a face or a frame at a time 20x slower
        than it need be. An array (or tensor) of at most one batch therefore runs straight
        through ``predict_on_batch``: the same compiled predict function, the same outputs, no
        progress bar. Larger inputs, datasets, generators, ``steps`` and callbacks take Keras'
        own path.
        """
        size = batch_size or 32
        if (
            steps is None
            and not callbacks
            and (isinstance(x, np.ndarray) or ops.is_tensor(x))
            and 0 < int(x.shape[0]) <= size
        ):
            return self.predict_on_batch(x)
        return super().predict(
            x, batch_size=batch_size, verbose=verbose, steps=steps, callbacks=callbacks
        )

    def call(self, inputs, training=None, mask=None):
        # Convolutions accept any size, so a wrong crop size would silently give wrong answers.
        size = self.affect_config.image_size
        shape = tuple(getattr(inputs, "shape", ()))
        if (
            len(shape) != 4
            or shape[1] not in (None, size)
            or shape[2] not in (None, size)
            or shape[3] != 3
        ):
            raise ValueError(
                f"Expected aligned RGB face crops of shape (N, {size}, {size}, 3) "
                f"(see affect_tf.preprocess). Received: shape={shape}"
            )
        return super().call(inputs, training=training, mask=mask)

    def embedding_model(self) -> keras.Model:
        """A model from the same input to the shared face embedding (feature extraction)."""
        return keras.Model(self.input, self.get_layer(tg.EMBEDDING).output, name="affect_embedding")

    @property
    def image_size(self) -> int:
        return self.affect_config.image_size

    # --- serialisation -------------------------------------------------------------------------

    def get_config(self):
        return {
            "config": self.affect_config.to_dict(),
            "adjacency": self.adjacency,
            "class_weights": self.class_weights,
            "pos_weights": self.pos_weights,
            "name": self.name,
            "trainable": self.trainable,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _check_targets(y, tasks: Sequence[str]) -> None:
    """Fails clearly on targets that would silently train nothing (wrong layout, missing task)."""
    if not isinstance(y, dict):
        raise ValueError(
            "Expected targets as a dict {'va': (B, 3), 'expression': (B, 2), 'au': (B, 24)} "
            f"(see affect_tf.targets). Received: {type(y).__name__}"
        )
    for task in tasks:
        if task not in y:
            raise ValueError(
                f"Expected a target for the trained task {task!r}. Received: keys={sorted(y)}"
            )
        shape = tuple(y[task].shape)
        if len(shape) != 2 or shape[-1] != tg.TARGET_WIDTHS[task]:
            raise ValueError(
                f"Expected targets[{task!r}] of shape (B, {tg.TARGET_WIDTHS[task]}) "
                f"({tg.TARGET_LAYOUT[task]}; see affect_tf.targets). Received: shape={shape}"
            )


def probabilities(outputs: dict) -> dict[str, np.ndarray]:
    """Model outputs -> expression probabilities (softmax), AU probabilities (sigmoid), VA."""
    return {
        tg.EXPRESSION: np.asarray(
            ops.softmax(ops.convert_to_tensor(outputs[tg.EXPRESSION]), axis=-1)
        ),
        tg.AU: np.asarray(ops.sigmoid(ops.convert_to_tensor(outputs[tg.AU]))),
        tg.VA: np.asarray(outputs[tg.VA]),
    }
