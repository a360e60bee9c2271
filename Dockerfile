# coinql: multi-stage build, runs as a non-root user, migrates then serves.
# Build: docker build -t coinql .    Run: see docker-compose.yml
FROM python:3.11-slim AS build
WORKDIR /src
RUN python -m venv /opt/coinql
COPY pyproject.toml README.md ./
COPY src ./src
RUN /opt/coinql/bin/pip install --no-cache-dir .

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 coinql
COPY --from=build /opt/coinql /opt/coinql
ENV PATH="/opt/coinql/bin:$PATH" \
    COINQL_ENV=production \
    PYTHONUNBUFFERED=1
USER coinql
WORKDIR /home/coinql
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health/live')"
CMD ["sh", "-c", "coinql migrate && exec coinql serve --host 0.0.0.0 --port 8000"]
