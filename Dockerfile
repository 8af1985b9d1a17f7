# The watcher daemon. State lives in the /app/data volume; the config is
# baked in from config/ and is normally replaced by a bind mount (see
# docker-compose.yml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

WORKDIR /app

COPY pyproject.toml README.md ./
COPY watcher/ ./watcher/
COPY config/ ./config/
RUN pip install --no-cache-dir .

# Run as a non-root user that owns the data directory, so a fresh named volume
# mounted there inherits that ownership and the state file can be written.
RUN useradd --system --uid 10001 --home-dir /app --no-create-home watcher \
    && mkdir -p /app/data \
    && chown watcher:watcher /app/data
USER watcher

VOLUME /app/data
ENV WATCHER_CONFIG=/app/config/watcher.toml

ENTRYPOINT ["watcher"]
CMD ["run", "--config", "/app/config/watcher.toml"]
