"""Data sets as uint8 NCHW arrays in memory; torch-free so any part of agscm can read them."""

from agscm.data.imageset import ImageSet
from agscm.data.registry import load_split

__all__ = ["ImageSet", "load_split"]
