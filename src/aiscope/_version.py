"""The package version, in the core so every layer can read it without the package root."""

__version__ = "0.1.0"
