"""The state file that half of the candidates start from, read and checked against the running model
([generation] compare_state: two starts side by side in the candidates panel)."""

from __future__ import annotations


def read_compared_state(path: str, engine):
    """The TunedState at `path`; ValueError (one line naming the file) when it is unreadable or does not fit
    `engine`'s model."""
    from ai_writer.backends.engines.start_state import with_start_state
    from ai_writer.models.checkpoint import ModelFileError
    from ai_writer.models.state_file import read_state_file

    try:
        tuned = read_state_file(path)
    except ModelFileError as exc:
        raise ValueError(str(exc)) from None
    if engine is not None:
        with_start_state(getattr(engine, "inner", engine), tuned)  # LoadError (a ValueError) when it does not fit
    return tuned
