"""TF Serving's gRPC API (``tensorflow_serving.apis``): PredictionService.Predict and
GetModelMetadata, ModelService.GetModelStatus and HandleReloadConfigRequest."""

from __future__ import annotations

import logging
import math
import time
from concurrent import futures

import grpc
import numpy as np

from affect_tf.serving.errors import ServingError, invalid
from affect_tf.serving.manager import ModelManager
from affect_tf.serving.monitoring import Metrics

log = logging.getLogger("affect_tf.serving")
MAX_MESSAGE = 256 * 1024 * 1024


def _spec(model_spec) -> tuple[str, int | None, str | None]:
    choice = model_spec.WhichOneof("version_choice")
    version = model_spec.version.value if choice == "version" else None
    label = model_spec.version_label if choice == "version_label" else None
    return model_spec.name, version, label


def tensor_dtype(key: str, proto):
    """The dtype a TensorProto declares (None: unset), INVALID_ARGUMENT for a value that names
    no TensorFlow dtype."""
    import tensorflow as tf

    if not proto.dtype:
        return None
    try:
        return tf.dtypes.as_dtype(proto.dtype)
    except TypeError:
        raise invalid(
            f"Expected input {key!r} to declare a TensorFlow dtype. Received: dtype={proto.dtype}"
        ) from None


def check_tensor_size(key: str, proto, dtype) -> None:
    """Refuses a TensorProto whose declared shape asks for more memory than a request may
    carry, before any array is built: ``tf.make_ndarray`` fills a declared shape from one value
    (a 6 KB request declaring 2^27 strings took 2.1 GB and 19 s), so the shape is checked first.

    Rules: a known rank, no negative dimension, elements x element size <= ``MAX_MESSAGE``
    (what the request itself may hold), and a string tensor gives exactly one value per element.
    """
    shape = proto.tensor_shape
    if shape.unknown_rank:
        raise invalid(f"Expected input {key!r} with a known shape. Received: unknown rank")
    dims = [d.size for d in shape.dim]
    if any(d < 0 for d in dims):
        raise invalid(
            f"Expected input {key!r} with non-negative dimensions. Received: shape={dims}"
        )
    count = math.prod(dims)
    if dtype is not None and dtype.name == "string":
        if len(proto.string_val) != count:
            raise invalid(
                f"Expected input {key!r} to hold one string per element of its shape {dims} "
                f"({count:,}). Received: {len(proto.string_val)} strings"
            )
        return
    size = dtype.size if dtype is not None else 8
    if count * size > MAX_MESSAGE:
        raise invalid(
            f"Expected input {key!r} of at most {MAX_MESSAGE:,} bytes (the request limit). "
            f"Received: shape={dims} ({count:,} x {size} bytes)"
        )


def predict(manager: ModelManager, request):
    """A ``PredictRequest`` -> its ``PredictResponse`` (raises ``ServingError``)."""
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    name, version, label = _spec(request.model_spec)
    served = manager.resolve(name, version, label)
    signature = request.model_spec.signature_name or "serving_default"
    specs = served.input_specs.get(signature, {})
    inputs = {}
    for key, proto in request.inputs.items():
        # As strict as TF Serving: a TensorProto says its dtype, and a float64 or int tensor for
        # a float32 input is an error there, not a silent conversion.
        wanted = specs[key].dtype if key in specs else None
        given = tensor_dtype(key, proto)
        if wanted is not None and given is not None and given != wanted:
            raise invalid(f"Expects arg {key!r} to be {wanted.name} but {given.name} is provided")
        check_tensor_size(key, proto, given)
        try:
            inputs[key] = tf.make_ndarray(proto)
        except (TypeError, ValueError, MemoryError) as e:
            raise invalid(f"Expected a valid TensorProto for input {key!r}: {e}") from None
    outputs = served.predict(signature, inputs, list(request.output_filter) or None)
    response = predict_pb2.PredictResponse()
    response.model_spec.name = name
    response.model_spec.version.value = served.version
    response.model_spec.signature_name = signature
    for key, value in outputs.items():
        response.outputs[key].CopyFrom(tf.make_tensor_proto(np.asarray(value)))
    return response


def model_metadata(manager: ModelManager, request):
    """A ``GetModelMetadataRequest`` -> the signature defs (raises ``ServingError``)."""
    from tensorflow_serving.apis import get_model_metadata_pb2

    fields = list(request.metadata_field)
    if fields != ["signature_def"]:
        raise invalid(
            f"Expected metadata_field ['signature_def'] (the only one TF Serving "
            f"supports). Received: {fields}"
        )
    served = manager.resolve(*_spec(request.model_spec))
    defs = get_model_metadata_pb2.SignatureDefMap()
    for key, value in served.signature_defs.items():
        defs.signature_def[key].CopyFrom(value)
    response = get_model_metadata_pb2.GetModelMetadataResponse()
    response.model_spec.name = served.name
    response.model_spec.version.value = served.version
    response.metadata["signature_def"].Pack(defs)
    return response


def model_status(manager: ModelManager, request):
    """A ``GetModelStatusRequest`` -> every version's state (raises ``ServingError``)."""
    from tensorflow_serving.apis import get_model_status_pb2

    name, version, _ = _spec(request.model_spec)
    rows = manager.status(name, version)
    response = get_model_status_pb2.GetModelStatusResponse()
    for v, state, message in rows:
        status = response.model_version_status.add()
        status.version = v
        status.state = get_model_status_pb2.ModelVersionStatus.State.Value(state)
        status.status.error_code = 2 if message else 0  # UNKNOWN / OK
        status.status.error_message = message
    return response


def make_servicers(manager: ModelManager, metrics: Metrics):
    """TF Serving's PredictionService and ModelService over ``manager`` (errors -> status)."""
    from tensorflow_serving.apis import (
        model_management_pb2,
        model_service_pb2_grpc,
        prediction_service_pb2_grpc,
    )

    class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
        def Predict(self, request, context):  # noqa: N802 - gRPC's naming
            start = time.perf_counter()
            code = grpc.StatusCode.OK
            try:
                return predict(manager, request)
            except ServingError as e:
                code = e.code
                context.abort(e.code, e.message)
            except Exception as e:  # noqa: BLE001 - the server's own fault, said as INTERNAL
                log.exception("gRPC Predict failed")
                code = grpc.StatusCode.INTERNAL
                context.abort(code, f"Internal error: {e}")
            finally:
                if request.model_spec.name:
                    metrics.observe(
                        request.model_spec.name,
                        "predict/grpc",
                        code.name,
                        time.perf_counter() - start,
                    )

        def GetModelMetadata(self, request, context):  # noqa: N802
            try:
                return model_metadata(manager, request)
            except ServingError as e:
                context.abort(e.code, e.message)

        def _unsupported(self, request, context):
            context.abort(
                grpc.StatusCode.UNIMPLEMENTED,
                "The affect model's signatures are predict signatures; use Predict",
            )

        Classify = Regress = MultiInference = _unsupported  # noqa: N815

    class ModelService(model_service_pb2_grpc.ModelServiceServicer):
        def GetModelStatus(self, request, context):  # noqa: N802
            try:
                return model_status(manager, request)
            except ServingError as e:
                context.abort(e.code, e.message)

        def HandleReloadConfigRequest(self, request, context):  # noqa: N802
            response = model_management_pb2.ReloadConfigResponse()
            try:
                manager.reload(request.config)
            except Exception as e:  # noqa: BLE001 - reported in the response's status
                response.status.error_code = 3  # INVALID_ARGUMENT
                response.status.error_message = str(e)
            return response

    return PredictionService(), ModelService()


def make_grpc_server(
    manager: ModelManager, port: int, metrics: Metrics, max_threads: int = 32, host="0.0.0.0"
) -> tuple[grpc.Server, int]:
    """The gRPC server (not started) and the port it bound."""
    from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_threads),
        options=[
            ("grpc.max_send_message_length", MAX_MESSAGE),
            ("grpc.max_receive_message_length", MAX_MESSAGE),
            # gRPC binds with SO_REUSEPORT by default: a second server on a busy port would
            # start and the kernel would split the traffic between the two.
            ("grpc.so_reuseport", 0),
        ],
    )
    prediction, model = make_servicers(manager, metrics)
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(prediction, server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(model, server)
    try:
        bound = server.add_insecure_port(f"{host}:{port}")
    except RuntimeError:  # newer grpc raises where older ones return 0
        bound = 0
    if bound == 0:
        raise OSError(f"Expected a free gRPC port. Received: --port={port} (in use or not allowed)")
    return server, bound
