# The bus image: `bus` CLI, router and connectors. Kafka itself runs from apache/kafka.
#   docker build -t epa-bus:latest .
#   docker run --rm epa-bus:latest connector list
# Users install the wheel, so the image does too: built here with its dependencies, then
# installed offline below. bus/_data/ links to schemas/, policies/ and examples/, which the
# wheel carries as package data (bus.adapters.resources finds them; no BUS_SCHEMAS_DIR).
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY schemas schemas
COPY policies policies
COPY examples examples
COPY bus bus
COPY connectors connectors
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels \
    && useradd --system --uid 10001 --user-group --home-dir /var/lib/bus --create-home bus \
    && mkdir -p /data/edi /var/lib/bus/router \
    && chown -R bus:bus /data /var/lib/bus
WORKDIR /opt/bus
# Files operators name on the command line (see docker-compose.yml) and may replace with a
# mount; the bus itself reads its schemas and code lists from the installed package.
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
