"""Fault injection in the web app: the request hook and the token-protected admin route."""

from app.admin.routes import bp

__all__ = ["bp"]
