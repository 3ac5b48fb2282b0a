# status-reporter container image.
#
# Public build:  podman build -t status-reporter .   (or docker build)
# Offline build: make image  (builds a local Debian base when the public one cannot be pulled)
#
# BASE_IMAGE is the runtime base; BUILD_IMAGE builds the virtualenv and must have the
# same Python at the same path (by default they are the same image).
ARG BASE_IMAGE=docker.io/library/python:3.11-slim-bookworm
ARG BUILD_IMAGE=${BASE_IMAGE}

FROM ${BUILD_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_INPUT=1
WORKDIR /src
# Dependencies first, hash-pinned, so source edits reuse this layer.
COPY requirements/runtime.txt requirements/build.txt requirements/
RUN python3 -m venv /opt/build \
 && /opt/build/bin/pip install --require-hashes -r requirements/build.txt \
 && python3 -m venv /opt/status-reporter \
 && /opt/status-reporter/bin/pip install --require-hashes -r requirements/runtime.txt
COPY pyproject.toml README.md ./
COPY src ./src
# The wheel is built with the pinned backend, installed without dependencies (all
# pinned above), then pip and setuptools leave the runtime venv: nothing at run time
# installs packages. pip compiles bytecode, so a read-only root file system needs
# no writes.
RUN /opt/build/bin/pip wheel --no-deps --no-build-isolation --wheel-dir /tmp/wheel . \
 && /opt/status-reporter/bin/pip install --no-deps /tmp/wheel/*.whl \
 && /opt/status-reporter/bin/pip uninstall --yes pip setuptools \
 && rm -rf /tmp/wheel

FROM ${BASE_IMAGE}
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG SOURCE=https://github.com/openshift-hyperfleet/status-reporter
LABEL org.opencontainers.image.title="status-reporter" \
      org.opencontainers.image.description="Kubernetes sidecar that records an adapter's result as a condition on its Job" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /opt/status-reporter /opt/status-reporter
ENV PATH=/opt/status-reporter/bin:/usr/local/bin:/usr/bin:/bin \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 65532:65532
ENTRYPOINT ["/opt/status-reporter/bin/status-reporter"]
