"""The todo list: the HTML page and the original JSON routes (/add, /toggle, /edit, ...)."""

from app.todos.routes import bp

__all__ = ["bp"]
