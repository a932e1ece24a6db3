"""The errors the face-model layer raises, so callers can tell bad input from a broken service."""

from __future__ import annotations


class InvalidImageError(ValueError):
    """The input is not an image we can read (undecodable bytes, wrong dtype or shape, missing file)."""


class PreparationError(RuntimeError):
    """A model file could not be prepared or does not fit its config.pbtxt."""


class InferenceError(RuntimeError):
    """Triton refused or failed a request (model not loaded, wrong tensor, server unreachable)."""


class SampleMediaError(RuntimeError):
    """The sample photos could not be fetched from the package registry."""
