# The waitline worker image used by docker-compose.yml.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md topics.yaml ./
COPY waitline ./waitline
COPY processors ./processors
COPY schemas ./schemas
RUN pip install --no-cache-dir .
ENV WAITLINE_TOPICS_FILE=/app/topics.yaml \
    WAITLINE_STATE_DIR=/var/lib/waitline
ENTRYPOINT ["waitline"]
CMD ["worker"]
