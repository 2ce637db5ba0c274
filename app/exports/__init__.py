"""CSV exports: start one, follow its state, download the file."""

from app.exports.routes import bp

__all__ = ["bp"]
