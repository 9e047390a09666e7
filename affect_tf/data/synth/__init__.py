"""SynthAffect: a procedural face corpus that is a real learning problem, not a lookup.

Faces are drawn from geometry that the 12 AUs drive (brows raise/lower and knit, lids tighten,
cheeks raise, lip corners pull/depress, lips tighten/press/part, jaw drops). Expressions are
EMFACS-style AU combinations at a random intensity, with idiosyncratic AUs added and dropped;
valence/arousal come from the expression's place on the circumplex, its intensity and noise.
Nuisances vary independently of the labels: identity (face shape, proportions, skin tone, hair),
head roll and yaw, scale and position in a larger frame, lighting and colour cast, blur, sensor
noise, background clutter and partial occlusion. Short "videos" interpolate smoothly between
expression keyframes (per-frame label noise on top), so temporal smoothing has work to do.
Some tasks are left unlabelled per video and per frame, as in real corpora.

Everything is deterministic given the seed; each video has its own random stream, so rendering
in parallel gives the same files. ``write_corpus`` writes a manifest corpus (``manifest.csv`` +
images) that ``affect-tf convert --format manifest`` reads.

Modules: ``labels`` (the label model: AU prototypes, expressions, VA, identities, the config),
``renderer`` (drawing frames and videos), ``corpus`` (label masks, records, the manifest corpus
writer), ``media`` (a grid of faces, one mp4).
"""

from affect_tf.data.synth.corpus import iter_frames, video_records, write_corpus
from affect_tf.data.synth.labels import (
    AU_THRESHOLD,
    SOURCE,
    Frame,
    Identity,
    Pose,
    SynthConfig,
    random_identity,
    sample_keyframe,
)
from affect_tf.data.synth.media import write_expression_grid, write_video
from affect_tf.data.synth.renderer import render_frame, render_video

__all__ = [
    "AU_THRESHOLD",
    "SOURCE",
    "Frame",
    "Identity",
    "Pose",
    "SynthConfig",
    "write_expression_grid",
    "iter_frames",
    "random_identity",
    "render_frame",
    "render_video",
    "sample_keyframe",
    "video_records",
    "write_corpus",
    "write_video",
]
