"""``AffectGAN``: the generator, the affect discriminator and their joint ``train_step``.

One step (Kollias et al.'s set-up, hinge loss + lazy R1 for stability at CPU-sized batches):

- **Discriminator**: hinge adversarial loss on a batch of real faces and as many generated
  ones (one forward pass over both, so batch normalisation sees one mixed batch), plus the
  composite affect loss (CCC + CE + BCE, ``affect_tf.model.losses.affect_loss``) of the
  *labelled* real faces — unlabelled real faces carry all-zero masks and so only enter the
  adversarial term (semi-supervised) — plus the R1 penalty every ``r1_every`` steps.
- **Generator**: the non-saturating hinge term ``-D(G(z, c))`` plus the affect loss of what the
  discriminator reads on ``G(z, c)`` against the condition ``c``: the generator must draw faces
  the recognizer sees as the asked-for expression, AUs and VA.

The step is written for the TensorFlow backend (``tf.GradientTape``), the backend the package
trains, exports and serves with.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops

from affect_tf.data import targets as tg
from affect_tf.gan.conditions import CONDITION_DIM, EXPR_SLICE, condition_targets
from affect_tf.gan.config import GANConfig
from affect_tf.gan.networks import CONDITION, NOISE, AffectDiscriminator, real_fake_logits
from affect_tf.model.losses import affect_loss

LOSS_NAMES = (
    "d_loss",
    "g_loss",
    "d_adv",
    "g_adv",
    "real_affect",
    "fake_affect",
    "r1",
    "d_real_acc",
    "d_fake_acc",
    "fake_expr_acc",
    "diversity",
)


@keras.saving.register_keras_serializable(package="affect_tf")
class AffectGAN(keras.Model):
    """The conditional GAN; ``fit`` it on ``((real_images, targets), conditions)`` batches.

    Args:
        generator: ``networks.build_generator`` model.
        discriminator: An ``AffectDiscriminator``.
        config: The ``GANConfig`` (or its dict).
    """

    def __init__(
        self,
        generator: keras.Model,
        discriminator: AffectDiscriminator,
        config: GANConfig | dict,
        seed: int = 0,
        **kwargs,
    ):
        kwargs.setdefault("name", "affect_gan")
        super().__init__(**kwargs)
        self.generator = generator
        self.discriminator = discriminator
        self.gan_config = GANConfig.from_dict(config) if isinstance(config, dict) else config
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.trackers = {name: keras.metrics.Mean(name=name) for name in LOSS_NAMES}
        # Both players are built models; the GAN itself has no weights of its own.
        self.built = True

    def compile(self, g_optimizer=None, d_optimizer=None, **kwargs):
        """Adam for both players (``GANConfig`` learning rates and betas) unless given."""
        c = self.gan_config
        super().compile(**kwargs)
        self.g_optimizer = g_optimizer or keras.optimizers.Adam(
            c.g_learning_rate, beta_1=c.beta_1, beta_2=c.beta_2, name="g_adam"
        )
        self.d_optimizer = d_optimizer or keras.optimizers.Adam(
            c.d_learning_rate, beta_1=c.beta_1, beta_2=c.beta_2, name="d_adam"
        )
        self.g_optimizer.build(self.generator.trainable_variables)
        self.d_optimizer.build(self.discriminator.trainable_variables)

    def get_compile_config(self):
        # The optimizers follow from the GANConfig, so a loaded GAN compiles itself the same way.
        return {"optimizers": "from_gan_config"}

    def compile_from_config(self, config):
        self.compile()

    @property
    def metrics(self):
        return list(self.trackers.values())

    def call(self, inputs, training=None):
        """``{"noise", "condition"}`` -> generated faces (the generator)."""
        return self.generator(inputs, training=training)

    def _noise(self, batch):
        return keras.random.normal((batch, self.gan_config.noise_dim), seed=self.seed_generator)

    def _affect(self, targets, outputs, real: bool):
        recognizer = self.discriminator.recognizer
        config = recognizer.affect_config
        weights = dict(zip((tg.VA, tg.EXPRESSION, tg.AU), config.loss_weights, strict=True))
        weights = {t: (w if t in config.tasks else 0.0) for t, w in weights.items()}
        # Real faces are weighted as the recognizer trains (conditions are sampled balanced).
        use_class_weights = real and config.imbalance == "class_weights"
        total, _ = affect_loss(
            targets,
            {k: outputs[k] for k in tg.OUTPUTS},
            weights=weights,
            class_weights=recognizer.class_weights if use_class_weights else None,
            pos_weights=recognizer.pos_weights if real and config.class_weighting else None,
            label_smoothing=config.label_smoothing if real else 0.0,
        )
        return total

    def _r1_gradients(self, real, variables):
        """R1 = E‖∇ₓ D(x)‖² on real faces, in the model's [-1, 1] pixel scale (d/d(x/127.5) =
        127.5·d/dx), and the gradients of its weighted term w.r.t. the discriminator."""
        c = self.gan_config
        with tf.GradientTape() as outer:
            with tf.GradientTape() as inner:
                inner.watch(real)
                d_sum = ops.sum(real_fake_logits(self.discriminator(real, training=True)))
            slope = inner.gradient(d_sum, real) * 127.5
            r1 = ops.mean(ops.sum(ops.square(slope), axis=[1, 2, 3]))
            loss = 0.5 * c.r1_weight * c.r1_every * r1
        grads = outer.gradient(loss, variables)
        return r1, [
            ops.zeros_like(v) if g is None else g for g, v in zip(grads, variables, strict=True)
        ]

    def train_step(self, data):
        (real, targets), conditions = data
        c = self.gan_config
        real = ops.cast(real, "float32")
        batch = ops.shape(real)[0]
        conditions = ops.cast(conditions, "float32")[:batch]
        half = batch // 2
        if c.mode_seeking_weight > 0:
            # Pairs of faces share a condition (first half = second half) so that the
            # mode-seeking term can compare two noise vectors under one condition.
            conditions = ops.concatenate([conditions[:half], conditions[: batch - half]], axis=0)
        cond_targets = condition_targets(conditions)

        d = self._discriminator_step(real, targets, conditions, batch)
        g = self._generator_step(real, conditions, cond_targets, batch, half)
        d_real, d_fake, r1, do_r1 = d.pop("d_real"), d.pop("d_fake"), d.pop("r1"), d.pop("do_r1")
        asked = ops.argmax(conditions[:, EXPR_SLICE], axis=-1)
        read = ops.argmax(g.pop("fake_out")[tg.EXPRESSION], axis=-1)
        values = {
            "d_loss": d["d_loss"],
            "g_loss": g["g_loss"],
            "d_adv": d["d_adv"],
            "g_adv": g["g_adv"],
            "real_affect": d["real_affect"],
            "fake_affect": g["fake_affect"],
            "d_real_acc": ops.mean(ops.cast(d_real > 0, "float32")),
            "d_fake_acc": ops.mean(ops.cast(d_fake < 0, "float32")),
            "fake_expr_acc": ops.mean(ops.cast(ops.equal(asked, read), "float32")),
            "diversity": g["diversity"],
        }
        for name, value in values.items():
            self.trackers[name].update_state(value)
        # R1 only counts on the steps that compute it.
        self.trackers["r1"].update_state(r1, sample_weight=ops.cast(do_r1, "float32"))
        return {name: tracker.result() for name, tracker in self.trackers.items()}

    def _discriminator_step(self, real, targets, conditions, batch) -> dict:
        """One discriminator update: hinge loss, the task heads on real faces, lazy R1."""
        c = self.gan_config
        fake = self.generator({NOISE: self._noise(batch), CONDITION: conditions}, training=True)
        variables = self.discriminator.trainable_variables
        with tf.GradientTape() as tape:
            out = self.discriminator(ops.concatenate([real, fake], axis=0), training=True)
            logits = real_fake_logits(out)
            d_real, d_fake = logits[:batch], logits[batch:]
            d_adv = ops.mean(ops.relu(1.0 - d_real)) + ops.mean(ops.relu(1.0 + d_fake))
            real_out = {k: out[k][:batch] for k in tg.OUTPUTS}
            real_affect = self._affect(targets, real_out, real=True)
            d_loss = c.adversarial_weight * d_adv + c.real_affect_weight * real_affect
        grads = tape.gradient(d_loss, variables)
        grads = [
            ops.zeros_like(v) if g is None else g for g, v in zip(grads, variables, strict=True)
        ]
        # Lazy R1 (every r1_every steps, scaled by it): its own pass over the real faces.
        do_r1 = ops.equal(self.d_optimizer.iterations % c.r1_every, 0)
        if c.r1_weight > 0:
            r1, r1_grads = tf.cond(
                do_r1,
                lambda: self._r1_gradients(real, variables),
                lambda: (ops.zeros((), "float32"), [ops.zeros_like(v) for v in variables]),
            )
            grads = [g + r for g, r in zip(grads, r1_grads, strict=True)]
            d_loss = d_loss + ops.cast(do_r1, "float32") * 0.5 * c.r1_weight * c.r1_every * r1
        else:
            r1 = ops.zeros((), "float32")
        self.d_optimizer.apply_gradients(zip(grads, variables, strict=True))

        return {
            "d_loss": d_loss,
            "d_adv": d_adv,
            "real_affect": real_affect,
            "d_real": d_real,
            "d_fake": d_fake,
            "r1": r1,
            "do_r1": do_r1,
        }

    def _generator_step(self, real, conditions, cond_targets, batch, half) -> dict:
        """One generator update: adversarial, the asked-for affect (ramped in), mode seeking."""
        c = self.gan_config
        with tf.GradientTape() as tape:
            noise = self._noise(batch)
            fake = self.generator({NOISE: noise, CONDITION: conditions}, training=True)
            # Mode seeking (Mao et al. 2019): image distance over noise distance between two
            # faces of one condition; the generator minimises its inverse, so the noise keeps
            # changing the face (identity, pose, lighting) instead of being ignored.
            image_gap = ops.mean(ops.abs(fake[:half] - fake[half : 2 * half])) / 127.5
            noise_gap = ops.mean(ops.abs(noise[:half] - noise[half : 2 * half]))
            diversity = image_gap / (noise_gap + 1e-5)
            out = self.discriminator(ops.concatenate([real, fake], axis=0), training=True)
            g_fake = real_fake_logits(out)[batch:]
            fake_out = {k: out[k][batch:] for k in tg.OUTPUTS}
            g_adv = -ops.mean(g_fake)
            fake_affect = self._affect(cond_targets, fake_out, real=False)
            ramp = ops.minimum(
                1.0, ops.cast(self.g_optimizer.iterations, "float32") / max(1, c.fake_affect_warmup)
            )
            g_loss = c.adversarial_weight * g_adv + ramp * c.fake_affect_weight * fake_affect
            if c.mode_seeking_weight > 0:
                capped = ops.minimum(diversity, c.mode_seeking_cap)
                g_loss = g_loss + c.mode_seeking_weight / (capped + 1e-5)
        variables = self.generator.trainable_variables
        self.g_optimizer.apply_gradients(
            zip(tape.gradient(g_loss, variables), variables, strict=True)
        )

        return {
            "g_loss": g_loss,
            "g_adv": g_adv,
            "fake_affect": fake_affect,
            "diversity": diversity,
            "fake_out": fake_out,
        }

    def get_config(self):
        return {
            "generator": keras.saving.serialize_keras_object(self.generator),
            "discriminator": keras.saving.serialize_keras_object(self.discriminator),
            "config": self.gan_config.to_dict(),
            "name": self.name,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["generator"] = keras.saving.deserialize_keras_object(config["generator"])
        config["discriminator"] = keras.saving.deserialize_keras_object(config["discriminator"])
        return cls(**config)


def check_condition_width(conditions) -> None:
    """Fails clearly on a condition array of the wrong width."""
    shape = tuple(getattr(conditions, "shape", ()))
    if len(shape) != 2 or shape[1] != CONDITION_DIM:
        raise ValueError(
            f"Expected conditions of shape (N, {CONDITION_DIM}) (affect_tf.gan.conditions). "
            f"Received: shape={shape}"
        )
