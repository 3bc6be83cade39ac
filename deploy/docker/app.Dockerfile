# One image for every Python process of the exchanger (services, gateway, sandbox, migrations);
# docker-compose.yml picks the command. Multi-stage: compilers stay in the builder.
FROM python:3.11-slim-bookworm AS builder
RUN apt-get update && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY requirements.txt constraints.txt ./
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir --upgrade pip \
    && /opt/venv/bin/pip install --no-cache-dir -r requirements.txt -c constraints.txt

FROM python:3.11-slim-bookworm AS runtime
RUN apt-get update && apt-get install -y --no-install-recommends postgresql-client \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --create-home --uid 10001 exchanger
COPY --from=builder /opt/venv /opt/venv
WORKDIR /app
COPY libs ./libs
COPY services ./services
COPY gateway ./gateway
COPY sandbox ./sandbox
COPY deploy ./deploy
COPY Procfile ./
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONUNBUFFERED=1 \
    GATEWAY_METRICS_DIR=/tmp/prometheus-gateway
USER exchanger
# Overridden per process in docker-compose.yml.
CMD ["gunicorn", "-c", "deploy/gunicorn.conf.py", "gateway.wsgi:app"]
