"""The version of pdl (one place)."""

__version__ = "0.1.0"
