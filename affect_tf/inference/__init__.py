"""Inference: images and videos in, one row per face out, from any exported model.

``AffectRecognizer`` wraps a SavedModel (a version folder, or a TF Serving base folder -> its
newest version), a ``.keras`` file or a TFLite file.

>>> rec = AffectRecognizer.load("runs/demo/serving/affect")
>>> table = rec.predict_images(["a.jpg", "photos/"])      # one row per face
>>> video = rec.predict_video("clip.mp4", smooth="mean:15")  # one row per frame

Modules: ``backends`` (the three model kinds), ``images`` (image inputs), ``recognizer``,
``video`` (main-face tracking and smoothing), ``abaw`` (ABAW output files), ``errors``, ``clock``;
``explain`` (saliency / Grad-CAM++ maps) and ``visualize`` (overlays, VA plots), imported on use.
"""

from affect_tf.inference.abaw import fill_frames, write_abaw
from affect_tf.inference.backends import keras_config, load_backend, resolve_model
from affect_tf.inference.clock import StageClock
from affect_tf.inference.errors import InferenceError
from affect_tf.inference.images import IMAGE_SUFFIXES, expand_inputs, read_image
from affect_tf.inference.recognizer import AffectRecognizer
from affect_tf.inference.video import BOX_COLUMNS, MainFaceTracker

__all__ = [
    "BOX_COLUMNS",
    "IMAGE_SUFFIXES",
    "AffectRecognizer",
    "InferenceError",
    "MainFaceTracker",
    "StageClock",
    "expand_inputs",
    "fill_frames",
    "keras_config",
    "load_backend",
    "read_image",
    "resolve_model",
    "write_abaw",
]
