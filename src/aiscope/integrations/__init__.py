"""Integrations with web frameworks (FastAPI)."""
