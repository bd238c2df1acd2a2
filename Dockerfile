# syntax=docker/dockerfile:1
# Build stage: resolve exactly what uv.lock says into /app/.venv.
FROM python:3.11-slim AS build
COPY --from=ghcr.io/astral-sh/uv:0.9 /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never
WORKDIR /app
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY omni ./omni
COPY bot ./bot
COPY agent ./agent
COPY gateway ./gateway
COPY memory ./memory
COPY mcp_server ./mcp_server
COPY skills ./skills
COPY migrations ./migrations
RUN uv sync --frozen --no-dev --no-editable

# Runtime stage: the venv only, run as an unprivileged user, state in /data.
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends git \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 1000 omni \
    && mkdir /data && chown omni:omni /data
COPY --from=build --chown=omni:omni /app/.venv /app/.venv
ENV PATH=/app/.venv/bin:$PATH OMNI_DATA_DIR=/data PYTHONUNBUFFERED=1
USER omni
WORKDIR /data
VOLUME ["/data"]
CMD ["omni", "bot"]
