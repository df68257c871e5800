"""The one exception type for user mistakes (bad files, bad names, bad options).

The CLI and the app turn a ``LightSRError`` into one clear line; anything else is a bug
and keeps its traceback.
"""

__all__ = ["LightSRError", "first_line"]


class LightSRError(ValueError):
    """A problem with what the user gave us, with a message meant for them."""


def first_line(err: BaseException) -> str:
    """What a one-line message quotes of ``err``: its first line, or its type where it has no text."""
    text = str(err)
    return text.splitlines()[0] if text.strip() else type(err).__name__
