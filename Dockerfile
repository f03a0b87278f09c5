# syntax=docker/dockerfile:1
# Build stage: resolve and install the project into a self-contained virtualenv.
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
# With the otel extra, so tracing is a matter of setting CRM_OTEL_ENDPOINT.
RUN pip install '.[otel]'

# Runtime stage: the virtualenv, the migrations, an unprivileged user; no build tools.
FROM python:3.11-slim
RUN useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin crm
WORKDIR /app
COPY --from=build /opt/venv /opt/venv
COPY alembic.ini ./
COPY migrations ./migrations
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    CRM_ENVIRONMENT=production \
    CRM_HOST=0.0.0.0 \
    CRM_PORT=8000 \
    CRM_BOOTSTRAP_ADMIN_KEY=false
USER crm
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
# Production mode refuses to start without CRM_DATABASE_URL (no embedded database).
# The same image runs the background worker with the command `worker` (it serves no
# HTTP, so give that container its own health check or none: --no-healthcheck).
ENTRYPOINT ["crm-api"]
CMD ["serve"]
