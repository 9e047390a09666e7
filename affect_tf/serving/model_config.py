"""Which models and versions to serve: TF Serving's ``ModelServerConfig`` and version policies.

A ``--model_config_file`` (text proto) or one ``--model_name``/``--model_base_path``; numeric
version folders under each base path; policies ``latest {num_versions}`` (default 1), ``all``
and ``specific {versions}``; ``version_labels`` (``stable``/``canary``).
"""

from __future__ import annotations

from pathlib import Path


def single_model_config(name: str, base_path: str):
    """The ``ModelServerConfig`` of ``--model_name``/``--model_base_path``."""
    from tensorflow_serving.config import model_server_config_pb2

    config = model_server_config_pb2.ModelServerConfig()
    model = config.model_config_list.config.add()
    model.name = name
    model.base_path = base_path
    model.model_platform = "tensorflow"
    return config


def read_model_config(path: str | Path):
    """Parses a ``--model_config_file`` (text ``ModelServerConfig``), naming the file on error."""
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"Expected a model config file. Received: {str(path)!r} (not found)")
    try:
        config = text_format.Parse(path.read_text(), model_server_config_pb2.ModelServerConfig())
    except text_format.ParseError as e:
        raise ValueError(
            f"Expected a ModelServerConfig text proto in {path}. Received: {e}"
        ) from None
    base = path.parent
    for model in config.model_config_list.config:
        if not model.name or not model.base_path:
            raise ValueError(f"Expected a name and a base_path for every model in {path}")
        if not Path(model.base_path).is_absolute() and not Path(model.base_path).exists():
            # TF Serving reads relative paths from its working directory; from the config's
            # folder is what a repository's checked-in config means.
            model.base_path = str(base / model.base_path)
    return config


def wanted_versions(policy, available: list[int]) -> list[int]:
    """The versions a ``ModelVersionPolicy`` serves among those on disk."""
    which = policy.WhichOneof("policy_choice")
    if which == "all":
        return sorted(available)
    if which == "specific":
        return sorted(set(policy.specific.versions) & set(available))
    count = policy.latest.num_versions if which == "latest" and policy.latest.num_versions else 1
    return sorted(available)[-count:]
