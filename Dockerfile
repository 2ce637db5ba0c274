# Images of the todo lab. Targets:
#   runtime (default, last stage): the web app (gunicorn) and, with another command, the Celery
#            worker: `celery -A worker.make_celery worker`
#   lab:     the runtime plus Locust and JupyterLab, for the load generator and the notebooks
# Both install exactly the hashed versions of the lock files (`make lock`); the final stages
# hold a virtualenv and the sources, no compiler and no pip cache.

ARG PYTHON_IMAGE=python:3.11.9-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
COPY requirements.lock /tmp/requirements.lock
# The locked packages (psycopg2-binary included) install from wheels: no compiler needed.
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir --require-hashes \
        -r /tmp/requirements.lock

FROM ${PYTHON_IMAGE} AS builder-lab
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
COPY requirements-lab.lock /tmp/requirements-lab.lock
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir --require-hashes \
        -r /tmp/requirements-lab.lock

FROM ${PYTHON_IMAGE} AS base
# The sources are run from /app (not installed), so the migrations, the gunicorn config and
# the analysis code sit where the settings expect them. VAR_DIR is outside the sources.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    VAR_DIR=/var/lib/todo \
    EXPORT_DIR=/var/lib/todo/exports
# A fixed uid/gid so that named volumes (exports, faults, logs, reports) are shared by web,
# worker and jupyter. A new named volume takes its owner and mode from these directories:
# group-writable and setgid, so jupyter (running as the host user's uid, in group 10001) can
# switch faults, record load runs and keep what the lab writes under VAR_DIR (a blind
# incident's record), and what it writes stays readable by the app.
RUN groupadd --system --gid 10001 todo \
    && useradd --system --uid 10001 --gid todo --home-dir /home/todo --create-home \
        --shell /usr/sbin/nologin todo \
    && mkdir -p /var/lib/todo/exports /var/lib/todo/faults /var/lib/todo/log \
        /var/lib/todo/reports \
    && chown -R todo:todo /var/lib/todo \
    && chmod 2775 /var/lib/todo /var/lib/todo/faults /var/lib/todo/log /var/lib/todo/reports
WORKDIR /app

FROM base AS lab
COPY --from=builder-lab /opt/venv /opt/venv
# Sources stay owned by root: the app user can read them, not change them.
COPY . /app
# jq: the logs notebook's jq exercises run the learner's filter with it. The notebooks'
# kernel, registered in the venv now: at run time the venv is read-only.
RUN apt-get update -qq \
    && apt-get install -y -qq --no-install-recommends "jq=1.6*" \
    && rm -rf /var/lib/apt/lists/* \
    && python -c "from curriculum.notebook_run import ensure_kernel; ensure_kernel()"
USER 10001:10001
EXPOSE 8089 8888
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ.get('HEALTHCHECK_URL', 'http://127.0.0.1:8888/api'), timeout=2)"]
CMD ["jupyter", "lab", "--ip=0.0.0.0", "--port=8888", "--no-browser", "--notebook-dir=/app/notebooks"]

FROM base AS runtime
COPY --from=builder /opt/venv /opt/venv
COPY alembic.ini /app/
COPY app /app/app
COPY worker /app/worker
COPY stack/gunicorn.conf.py /app/stack/gunicorn.conf.py
USER 10001:10001
ENV GUNICORN_BIND=0.0.0.0:5000
EXPOSE 5000
# The worker runs this image too; compose gives it a healthcheck of its own (its metrics port),
# or set HEALTHCHECK_URL.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ.get('HEALTHCHECK_URL', 'http://127.0.0.1:5000/healthz'), timeout=2)"]
CMD ["gunicorn", "-c", "stack/gunicorn.conf.py"]
