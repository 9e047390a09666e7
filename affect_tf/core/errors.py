"""The base class of every error a user's input causes (files, labels, configs, models).

Library modules raise a subclass with a message in the house form — "Expected …. Received: …",
naming the file or field — and the command line turns any ``UserError`` into one line and exit
status 2 (``affect_tf.cli.errors``), never a traceback.
"""

from __future__ import annotations


class UserError(ValueError):
    """A problem with what the user gave (a file, a label, a setting), described for them."""
