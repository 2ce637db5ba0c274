"""The JSON API under /api/todos, described by /api/openapi.json."""

from app.api.routes import bp

__all__ = ["bp"]
