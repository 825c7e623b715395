# soapservice as a container: `docker build -t soapservice .`, then
#   docker run -p 8080:8080 -v soapservice-data:/var/lib/soapservice soapservice
# (the SQLite store lives on the volume). deploy/docker-compose.yml runs it on
# PostgreSQL with one API process and two delivery workers.

FROM python:3.11-slim AS build
WORKDIR /src
COPY setup.py setup.cfg README.rst ./
COPY soapservice ./soapservice
# Wheels of soapservice and of every dependency (psycopg2 for PostgreSQL included).
RUN pip wheel --no-cache-dir --wheel-dir /wheels ".[postgres]"

FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    SOAPSERVICE_HOST=0.0.0.0 \
    SOAPSERVICE_PORT=8080 \
    SOAPSERVICE_DATABASE_URL=sqlite:////var/lib/soapservice/soapservice.db
COPY --from=build /wheels /wheels
# Only the wheels built above (no index): the image holds what the build resolved.
RUN pip install --no-cache-dir --no-index /wheels/*.whl \
    && rm -rf /wheels \
    && useradd --system --uid 10001 --user-group --home-dir /var/lib/soapservice \
       --create-home --shell /usr/sbin/nologin soapservice
USER 10001:10001
WORKDIR /var/lib/soapservice
VOLUME ["/var/lib/soapservice"]
EXPOSE 8080
# SIGTERM drains: no new requests, attempts in flight finish (each bounded by
# SOAPSERVICE_DELIVERY_TIMEOUT), leases are given back, exit 0. Give it that long
# (`docker stop -t 30`, compose's stop_grace_period).
STOPSIGNAL SIGTERM
# /healthz of this process: on SOAPSERVICE_METRICS_PORT when set (a worker), else on
# SOAPSERVICE_PORT. 200 while the store answers.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; port = os.environ.get('SOAPSERVICE_METRICS_PORT') or os.environ.get('SOAPSERVICE_PORT', '8080'); urllib.request.urlopen(f'http://127.0.0.1:{port}/healthz', timeout=4)"]
ENTRYPOINT ["soapservice"]
CMD ["serve"]
