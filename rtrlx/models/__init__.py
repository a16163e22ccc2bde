"""Models built from cells: deep stacks of independent recurrent modules."""

from .deep import DeepRecurrent as DeepRecurrent
