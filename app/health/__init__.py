"""Liveness, readiness, background health and the metrics endpoint."""

from app.health.routes import bp

__all__ = ["bp"]
