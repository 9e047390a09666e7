"""Serving: ``AffectClient`` (REST and gRPC) and a development server speaking TF Serving's API.

Modules: ``client`` (``AffectClient``), ``server`` (``affect-tf serve``), ``options``,
``errors``, ``batching`` (merges concurrent requests), ``servable`` (runs one), ``model_config``,
``manager`` (polls the version folders), ``rest`` and ``grpc_service`` (TF Serving's REST and
gRPC protocols), ``monitoring``. Imports ``core``, ``data`` and ``export``.
"""

from affect_tf.serving.client import AffectClient, ServingClientError

__all__ = ["AffectClient", "ServingClientError"]
