"""Serving: ``AffectClient`` (REST and gRPC) and the ``affect-tf serve`` development server
that speaks TF Serving's protocol (``affect_tf.serving.server``)."""

from affect_tf.serving.client import AffectClient, ServingClientError

__all__ = ["AffectClient", "ServingClientError"]
