"""The error of a model file that cannot be used (no torch needed to raise or catch it)."""


class ModelFileError(ValueError):
    """A model file that cannot be used; the message names the file and the problem."""
