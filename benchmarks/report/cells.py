"""Shared cells of the benchmark page: number formats, tables and the row labels."""

from __future__ import annotations

RUNTIME_LABELS = {
    "keras_model_predict": "Keras `keras.Model.predict` (Keras' own path)",
    "keras_predict": "Keras `model.predict`",
    "keras_predict_on_batch": "Keras `predict_on_batch`",
    "saved_model": "SavedModel `serving_aligned`",
    "tflite_fp32": "TFLite fp32",
    "tflite_fp16": "TFLite fp16",
    "tflite_int8": "TFLite int8",
}

STAGES = ("decode", "detect", "align", "model", "smooth")

INPUT_LABELS = {
    "synth_images": "SynthAffect JPEGs, 192 px",
    "photo": "photo (astronaut), 512 px",
    "video": "SynthAffect clip, 192 px",
}

MODE_LABELS = {
    "mtcnn_eager": "MTCNN eager, every frame (before)",
    "mtcnn_compiled": "MTCNN compiled, every frame",
    "mtcnn_compiled_tracking": "MTCNN compiled + O-Net tracking",
    "blazeface": "BlazeFace + face mesh, every frame",
    "blazeface_tracking": "BlazeFace + face-mesh tracking (default)",
}


def num(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "–"
    return f"{value:,.{digits}f}"


def mb(n: int | None) -> str:
    return "–" if n is None else f"{n / 1e6:.2f}"


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines
