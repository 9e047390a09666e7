"""affect-tf's own TFX components (declarations only; the work is in ``affect_tf.pipeline``).

Inside the package, so TFX records importable executor names and no pipeline file has to edit
``sys.path``: ``FaceExampleGen`` (``face_example_gen``) and ``TFLiteExport`` (``tflite_export``).
"""
