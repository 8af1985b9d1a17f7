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
# Inside the container the HTTP side listens beyond the container's own loopback, so
# that its published port reaches it (compose publishes it on the host's loopback only).
ENV WATCHER_CONFIG=/app/config/watcher.toml \
    WATCHER_LISTEN=0.0.0.0:8765
EXPOSE 8765
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8765/healthz', timeout=4)"]

ENTRYPOINT ["watcher"]
CMD ["run", "--config", "/app/config/watcher.toml"]
