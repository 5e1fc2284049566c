# The gateway image; it doubles as the task image that Mesos and YARN
# containers run (descriptors name it as executionUnit.image: wps-gateway:latest).
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYWPS_CFG=/srv/wps/app/pywps.cfg \
    GATEWAY_DATA_DIR=/srv/wps/var \
    GATEWAY_ALLOWED_INPUT_PATHS=/srv/wps/var/sample-data

RUN useradd --system --home-dir /srv/wps --create-home wps
WORKDIR /srv/wps/app

COPY pyproject.toml README.md pywps.cfg ./
COPY wps_gateway ./wps_gateway
COPY processes ./processes
COPY mesos_backend ./mesos_backend
RUN pip install --no-cache-dir '.[postgres,mesos]' \
    && python -m processes.sampledata /srv/wps/var/sample-data \
    && chown -R wps /srv/wps

USER wps
VOLUME /srv/wps/var
EXPOSE 5000
# Migrate the store, then serve with the embedded dispatcher (GATEWAY_DISPATCHER=external to split them).
CMD ["sh", "-c", "wps-gateway db upgrade && exec wps-gateway serve --host 0.0.0.0 --port 5000"]
