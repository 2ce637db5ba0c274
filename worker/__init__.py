"""The Celery worker process: its entry module (make_celery) and its signal handlers.

The tasks and the Celery binding live in the app (app/jobs.py, app/exports/tasks.py), as in
Flask's Celery example; this package only runs them.
"""
