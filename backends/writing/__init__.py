"""The writing service: candidates generated from a manuscript (generation.py), with its prompt cache,
sampling and the bits-per-character evaluation, on any engine."""
