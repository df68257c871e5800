"""The one exception type for user mistakes (bad files, bad names, bad options).

The CLI and the app turn a ``LightSRError`` into one clear line; anything else is a bug
and keeps its traceback.
"""

__all__ = ["LightSRError"]


class LightSRError(ValueError):
    """A problem with what the user gave us, with a message meant for them."""
