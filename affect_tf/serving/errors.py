"""Serving errors as gRPC status codes with TF Serving's messages (REST maps them to HTTP)."""

from __future__ import annotations

import re

import grpc

# TF's error codes are gRPC's; a runtime error is reported with the same code.
CODE_NAMES = {code.value[0]: code for code in grpc.StatusCode}


class ServingError(Exception):
    """A request that cannot be served: a gRPC status code and a message for the client."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def invalid(message: str) -> ServingError:
    """An INVALID_ARGUMENT error (the client's request is wrong)."""
    return ServingError(grpc.StatusCode.INVALID_ARGUMENT, message)


def clean_tf_message(message: str) -> str:
    """The user-facing first line of a TensorFlow runtime error (no node names, no traces)."""
    lines = []
    for line in str(message).splitlines():
        line = line.strip()
        if not line or line.startswith(
            ("Detected at node", "File ", "[[", "Traceback", "<stack traces")
        ):
            continue
        if line.startswith("Graph execution error"):
            continue
        line = re.sub(r"\s*\[\[\{\{node [^}]*\}\}\]\]", "", line)
        line = re.sub(r"^\{\{function_node [^}]*\}\}\s*", "", line)
        line = re.sub(r"\s*\[Op:[^\]]*\]$", "", line)
        lines.append(line)
    return lines[0] if lines else str(message).strip()
