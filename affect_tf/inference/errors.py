"""The error every inference entry point raises for a user's input (one class, one style)."""

from __future__ import annotations

from affect_tf.core.errors import UserError


class InferenceError(UserError):
    """A user-facing problem with an input (unreadable image, no face, bad video, bad model)."""
