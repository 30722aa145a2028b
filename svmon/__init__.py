"""Social value contract monitor."""

__version__ = "0.1.0"
