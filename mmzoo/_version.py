"""The version of mmzoo (one place: `setup.cfg` reads it, `mmzoo.__version__` is it)."""

__version__ = "0.1.0"
