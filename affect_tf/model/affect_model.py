"""AffectModel: backbone -> shared embedding -> expression / AU / VA heads, with its own loss.

A Keras 3 functional model (the keras-hub "task" pattern): built from an ``AffectConfig``, it
saves to ``.keras`` and loads back with ``keras.models.load_model`` (the custom objects are
registered), and ``model.predict(faces)`` returns ``{"expression": logits (N, 8), "au": logits
(N, 12), "va": (N, 2) in [-1, 1]}``. Input: aligned face crops ``(N, S, S, 3)``, RGB, float or
uint8 in [0, 255] (``affect_tf.data.preprocess`` makes them from images and landmarks).

Training uses the composite masked loss of ``affect_tf.model.losses.affect_loss`` (compile without a
``loss``); per-task losses are logged as ``va_loss``, ``expression_loss``, ``au_loss``.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
from keras import layers, ops
from keras.src.losses.loss import scale_loss_for_distribution

from affect_tf.data import targets as tg
from affect_tf.evaluation.metrics import training_metrics
from affect_tf.model.augment import build_augmenter
from affect_tf.model.backbones import build_backbone
from affect_tf.model.colour import Grayscale
from affect_tf.model.config import PRESETS, AffectConfig
from affect_tf.model.heads import GCNHeads, mlp_heads
from affect_tf.model.losses import affect_loss
from affect_tf.model.optim import BackboneScaledAdamW

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
        adjacency: ``(22, 22)`` label-graph adjacency for GCN heads
            (``label_graph.label_adjacency``); identity when None.
        class_weights: 8 expression weights for the cross-entropy (None: unweighted), used
            with ``imbalance="class_weights"``.
        pos_weights: 12 AU positive weights for the BCE (None: 1).
        class_priors: 8 training class frequencies, for ``imbalance="logit_adjustment"``.
        au_thresholds: 12 AU decision thresholds tuned on validation data (None: 0.5), saved
            with the model; ``AffectRecognizer`` and ``affect-tf evaluate`` use them when asked.

    The backbone starts random: ``affect_tf.model.pretrained.load_backbone_weights`` applies
    ``config.weights`` when training starts (building a model never downloads anything).
    """

    def __init__(
        self,
        config: AffectConfig | dict | None = None,
        adjacency: Sequence[Sequence[float]] | np.ndarray | None = None,
        class_weights: Sequence[float] | None = None,
        pos_weights: Sequence[float] | None = None,
        class_priors: Sequence[float] | None = None,
        au_thresholds: Sequence[float] | None = None,
        **kwargs,
    ):
        if isinstance(config, dict):
            config = AffectConfig.from_dict(config)
        config = config or PRESETS["tiny"]
        size = config.image_size
        image = keras.Input((size, size, 3), name="image")
        backbone = build_backbone(config.backbone, size)
        x = Grayscale(name="grayscale")(image) if config.grayscale else image
        # Augmentation inside the model: active only when training (``augment`` docstring).
        x = build_augmenter()(x) if config.augment else x
        if config.schedule == "scratch":
            x = backbone(x)
        else:
            # A pretrained backbone keeps its BatchNorm statistics (inference mode), frozen or
            # fine-tuned, as Keras' transfer-learning guide recommends.
            x = backbone(x, training=False)
            backbone.trainable = config.schedule != "frozen"
        x = layers.Dense(config.embedding_dim, use_bias=False, name="embedding_dense")(x)
        x = layers.BatchNormalization(name="embedding_bn")(x)
        embedding = layers.Activation("relu", name=tg.EMBEDDING)(x)
        x = layers.Dropout(config.dropout, name="embedding_dropout")(embedding)
        if config.heads == "gcn":
            gcn = GCNHeads(
                adjacency,
                config.gcn_node_dim,
                config.gcn_hidden,
                learn_adjacency=config.gcn_adjacency == "learned",
                name="gcn_heads",
            )
            expression, au, va = gcn(x)
            outputs = {
                tg.EXPRESSION: layers.Identity(name=tg.EXPRESSION)(expression),
                tg.AU: layers.Identity(name=tg.AU)(au),
                tg.VA: layers.Identity(name=tg.VA)(va),
            }
        else:
            outputs = mlp_heads(x, config.head_hidden, config.dropout, config.head_features)
        kwargs.setdefault("name", f"affect_{config.name}")
        super().__init__(inputs=image, outputs=outputs, **kwargs)
        self.affect_config = config
        self.adjacency = None if adjacency is None else np.asarray(adjacency, np.float64).tolist()
        self.class_weights = _as_list(class_weights, 8, "expression class weights")
        self.pos_weights = _as_list(pos_weights, 12, "AU positive weights")
        self.class_priors = _as_list(class_priors, 8, "expression class priors")
        self.au_thresholds = _as_list(au_thresholds, 12, "AU thresholds")
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
            class_weights=self.class_weights if config.imbalance == "class_weights" else None,
            pos_weights=self.pos_weights if config.class_weighting else None,
            label_smoothing=config.label_smoothing,
            log_vars=self.task_log_vars if config.uncertainty else None,
            logit_offsets=self.logit_offsets() if config.imbalance == "logit_adjustment" else None,
            soft_labels=config.soft_labels,
            va_loss=config.va_loss,
            focal_gamma=config.focal_gamma,
        )
        for task, value in terms.items():
            self.task_losses[task].update_state(value)
        if self.losses:
            total = total + ops.sum(self.losses)
        # Keras' own losses divide by the replicas in sync (their gradients are summed over
        # the replicas, and the logged loss is multiplied back): without this a 2-replica run
        # took twice the gradient and logged twice the loss.
        return scale_loss_for_distribution(total)

    @property
    def metrics(self):
        base = super().metrics
        return [*base, *(m for m in self.task_losses.values() if all(m is not b for b in base))]

    def logit_offsets(self, tau: float = 1.0, floor: float | None = None) -> list[float] | None:
        """``τ·log π`` of the training class priors (logit adjustment), each prior clipped to at
        least ``floor`` (default: the config's ``logit_prior_floor``); None without priors.

        The clip is what keeps the option safe on real corpora: at τ = 1 a class at 0.07 %
        sits 6.5 nats below a class at 49 %, and a model trained so predicted that rare class
        for almost every face (accuracy 1.5 % on a held-out real corpus, 4 % on FER+ Valid).
        """
        if self.class_priors is None:
            return None
        priors = np.asarray(self.class_priors, np.float64)
        priors = priors / max(priors.sum(), 1e-12)
        floor = self.affect_config.logit_prior_floor if floor is None else floor
        if floor <= 0:  # no clip: a class never seen still gets the smallest prior seen, not log 0
            floor = priors[priors > 0].min() if (priors > 0).any() else 1.0
        return (tau * np.log(np.maximum(priors, floor))).tolist()

    def backbone_variable_paths(self) -> list[str]:
        """Paths of the backbone's trainable variables (``BackboneScaledAdamW``)."""
        return [v.path for v in self.get_layer("backbone").trainable_variables]

    def compile_for_training(
        self,
        steps_per_epoch: int,
        epochs: int | None = None,
        tasks: Sequence[str] | None = None,
        backbone_lr_scale: float | None = None,
        **kwargs,
    ) -> None:
        """Compiles with AdamW + cosine decay and the ABAW metrics (composite loss).

        Args:
            steps_per_epoch, epochs: The length of the cosine decay.
            tasks: Tasks to attach metrics to (those the validation data labels); default the
                trained ones. A task without labels would log a constant 0, not a measurement.
            backbone_lr_scale: Scale the backbone's learning rate (fine-tuning) by this.
        """
        config = self.affect_config
        epochs = epochs or config.epochs
        schedule = keras.optimizers.schedules.CosineDecay(
            config.learning_rate, decay_steps=max(1, steps_per_epoch * epochs), alpha=0.05
        )
        options = {"weight_decay": config.weight_decay, "clipnorm": 5.0}
        if backbone_lr_scale is not None and backbone_lr_scale != 1.0:
            optimizer = BackboneScaledAdamW(
                backbone_lr_scale, self.backbone_variable_paths(), learning_rate=schedule, **options
            )
        else:
            optimizer = keras.optimizers.AdamW(schedule, **options)
        wanted = [t for t in config.tasks if tasks is None or t in tasks]
        metrics = {task: m for task, m in training_metrics().items() if task in wanted}
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
                f"(see affect_tf.data.preprocess). Received: shape={shape}"
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
            "class_priors": self.class_priors,
            "au_thresholds": self.au_thresholds,
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
            "Expected targets as a dict {'va': (B, 3), 'expression': (B, 10), 'au': (B, 24)} "
            f"(see affect_tf.data.targets). Received: {type(y).__name__}"
        )
    for task in tasks:
        if task not in y:
            raise ValueError(
                f"Expected a target for the trained task {task!r}. Received: keys={sorted(y)}"
            )
        shape = tuple(y[task].shape)
        # The expression target may leave the distributions out (class and mask only).
        widths = (tg.TARGET_WIDTHS[task], 2) if task == tg.EXPRESSION else (tg.TARGET_WIDTHS[task],)
        if len(shape) != 2 or shape[-1] not in widths:
            raise ValueError(
                f"Expected targets[{task!r}] of shape (B, {tg.TARGET_WIDTHS[task]}) "
                f"({tg.TARGET_LAYOUT[task]}; see affect_tf.data.targets). Received: shape={shape}"
            )


def inference_copy(model: AffectModel) -> AffectModel:
    """The same model without its optimizer state and without the augmentation block (which is
    inactive at inference anyway): what export, serving and TFLite trace.

    Raises:
        ValueError: The copy's weights do not line up with the model's (a changed layout).
    """
    import dataclasses

    config = model.get_config()
    config["config"] = dataclasses.replace(model.affect_config, augment=False).to_dict()
    copy = model.__class__.from_config(config)
    # The augmentation block's only variables are its seed generators' states.
    weights = [
        w
        for v, w in zip(model.weights, model.get_weights(), strict=True)
        if "seed_generator" not in v.path
    ]
    if [w.shape for w in copy.get_weights()] != [w.shape for w in weights]:
        raise ValueError(
            "Expected the model without augmentation to have the model's weights. Received: "
            f"{len(copy.get_weights())} weights for {len(weights)}"
        )
    copy.set_weights(weights)
    return copy


def activate(outputs: dict) -> dict:
    """The one output-activation step: model outputs (expression and AU logits, tanh VA) ->
    expression probabilities (softmax), AU probabilities (sigmoid), VA; float32 tensors.

    Keras ops, so it runs eagerly and inside the serving signatures' ``tf.function``s alike.
    """
    f32 = "float32"
    return {
        tg.EXPRESSION: ops.softmax(ops.cast(outputs[tg.EXPRESSION], f32), axis=-1),
        tg.AU: ops.sigmoid(ops.cast(outputs[tg.AU], f32)),
        tg.VA: ops.cast(outputs[tg.VA], f32),
    }


def probabilities(outputs: dict) -> dict[str, np.ndarray]:
    """``activate`` as NumPy arrays (evaluation, predictions tables)."""
    return {k: np.asarray(v) for k, v in activate(outputs).items()}
