# The bus image: `bus` CLI, router and connectors. Kafka itself runs from apache/kafka.
#   docker build -t epa-bus:latest .
#   docker run --rm epa-bus:latest connector list
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY bus bus
COPY connectors connectors
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    BUS_SCHEMAS_DIR=/opt/bus/schemas/avro \
    BUS_CODELISTS_DIR=/opt/bus/schemas/codelists
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels \
    && useradd --system --uid 10001 --user-group --home-dir /var/lib/bus --create-home bus \
    && mkdir -p /data/edi /var/lib/bus/router \
    && chown -R bus:bus /data /var/lib/bus
WORKDIR /opt/bus
# Data the commands read by relative path (see docker-compose.yml); no keys, no secrets.
COPY schemas schemas
COPY policies policies
COPY federation federation
COPY deploy deploy
COPY connectors/edifact/samples samples/edifact
COPY examples examples
USER bus
# http-ingest API, connector health/metrics
EXPOSE 8080 9464
ENTRYPOINT ["bus"]
CMD ["--help"]
