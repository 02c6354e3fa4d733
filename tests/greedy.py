"""Greedy candidates through the generation service, without torch (a native engine's child process imports
this alone)."""

from __future__ import annotations


def greedy_texts(engine, chars, n=2, length=40) -> tuple:
    """The texts of n greedy (temperature 0) candidates written from a prompt made of `chars`, through the
    generation service: the same on two engines means they compute the same model."""
    from ai_writer.backends.writing.generation import Finished, GenerationRequest, GenerationService
    from ai_writer.backends.writing.sampling import SamplingSettings
    from ai_writer.models.textprep import TextPrep

    request = GenerationRequest("。".join(chars[10:60]) + "\n" + "".join(chars[60:90]), n=n, length=length,
                                sampling=SamplingSettings(temperature=0.0, seed=0), prep=TextPrep())
    service = GenerationService(engine)
    try:
        final = [e for e in service.generate(request, timeout=120) if isinstance(e, Finished)][-1]
    finally:
        service.close()
    assert not final.cancelled and all(len(t) == length for t in final.texts)
    return final.texts
