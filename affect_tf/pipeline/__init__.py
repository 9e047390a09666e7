"""The TFX pipeline's work: settings, inputs, FaceExampleGen's Beam logic, Transform, Trainer, TFMA.

Modules: ``config`` and ``settings`` (the pipeline's settings), ``inputs`` (written before the
graph is built), ``example_gen`` (FaceExampleGen's Beam logic), ``transform``
(``preprocessing_fn``), ``trainer`` (``run_fn``), ``evaluation`` (TFMA metrics),
``tflite_export``, ``summary`` (the run summary from MLMD), ``components/`` (the component
declarations). ``pipelines/affect.py`` wires these into the graph.
"""
