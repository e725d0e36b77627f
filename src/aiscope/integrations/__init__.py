"""Integrations with web frameworks (FastAPI)."""

# each integration is a module of its own (``aiscope.integrations.fastapi``), imported
# when used: importing the package must not import a web framework
__all__: list[str] = []
