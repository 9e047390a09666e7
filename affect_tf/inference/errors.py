"""The error every inference entry point raises for a user's input (one class, one style)."""

from __future__ import annotations


class InferenceError(ValueError):
    """A user-facing problem with an input (unreadable image, no face, bad video, bad model)."""
