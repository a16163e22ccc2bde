"""Data streams for online learning, generated in JAX (no download)."""

from .copy import copy_stream as copy_stream
