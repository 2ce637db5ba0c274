"""The Celery worker of the todo app: celery_init_app binds Celery to a Flask app."""

from worker.celery_app import celery_init_app

__all__ = ["celery_init_app"]
