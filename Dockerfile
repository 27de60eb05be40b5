# The waitline image of docker-compose.yml: `waitline worker` by default, any waitline command
# as arguments (`topics create`). It runs as the unprivileged user waitline (uid 10001), which
# owns the state directory; mount a volume there to keep state across containers.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md topics.yaml ./
COPY waitline ./waitline
COPY processors ./processors
COPY schemas ./schemas
RUN pip install --no-cache-dir . \
    && groupadd --system --gid 10001 waitline \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin waitline \
    && mkdir -p /var/lib/waitline \
    && chown 10001:10001 /var/lib/waitline
ENV WAITLINE_TOPICS_FILE=/app/topics.yaml \
    WAITLINE_STATE_DIR=/var/lib/waitline
USER 10001:10001
ENTRYPOINT ["waitline"]
CMD ["worker"]
