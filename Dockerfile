# status-reporter container image (docs/design.md, "The runtime image").
#
# Public build:  podman build -t status-reporter .   (or docker build; needs a registry)
# Offline build: make image  (a local Debian build base when the public one cannot be pulled)
#
# BUILD_IMAGE is Debian bookworm, of the platform built: the build stage installs the
# Debian packages that its architecture's lock, hack/image/debian.<arch>.lock, pins
# (python3.11 and the libraries it loads), unless the base has them at those versions,
# and builds the virtualenv with its python3.11.
#
# BASE_IMAGE is what the virtualenv runs on:
# - scratch (the default): the runtime image is assembled in the build stage from what
#   the reporter runs, measured (hack/image/probe.py): the interpreter, the part of the
#   standard library it imports, the shared libraries these load, the virtualenv. No
#   shell, no package manager.
# - a distroless Python base with Debian bookworm's /usr/bin/python3.11, such as
#   gcr.io/distroless/python3-debian12:nonroot: only the virtualenv is added to it.
# Either way the image carries its SBOM (/usr/share/doc/status-reporter/sbom.cdx.json)
# and is checked by running the probe in it before it is tagged.
ARG BUILD_IMAGE=docker.io/library/debian:bookworm-slim
ARG BASE_IMAGE=scratch

FROM ${BUILD_IMAGE} AS build
ARG BASE_IMAGE
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG SOURCE=https://github.com/openshift-hyperfleet/status-reporter
# File times in the runtime tree and the SBOM's timestamp: the commit's time (build.sh).
ARG SOURCE_DATE_EPOCH=0
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_INPUT=1 \
    LANG=C.UTF-8
WORKDIR /src
COPY hack/image/debian.amd64.lock hack/image/debian.arm64.lock hack/image/debian-pins.sh hack/image/
RUN hack/image/debian-pins.sh install hack/image/debian.$(dpkg --print-architecture).lock
# Python dependencies next, hash-pinned, so source edits reuse this layer.
COPY requirements/runtime.txt requirements/build.txt requirements/
RUN python3.11 -m venv /opt/build \
 && /opt/build/bin/pip install --require-hashes -r requirements/build.txt \
 && python3.11 -m venv /opt/status-reporter \
 && /opt/status-reporter/bin/pip install --require-hashes -r requirements/runtime.txt
COPY pyproject.toml README.md LICENSE ./
COPY src ./src
# The wheel is built with the pinned backend and installed without dependencies (all
# pinned above); then pip and setuptools leave the virtualenv: nothing at run time
# installs packages.
RUN /opt/build/bin/pip wheel --no-deps --no-build-isolation --wheel-dir /tmp/wheel . \
 && /opt/status-reporter/bin/pip install --no-deps /tmp/wheel/*.whl \
 && /opt/status-reporter/bin/pip uninstall --yes pip setuptools \
 && rm -rf /tmp/wheel
COPY hack/image/probe.py hack/image/rootfs.py hack/image/sbom.py hack/image/
# Measure what the reporter loads on every path (probe.py), assemble the runtime tree
# from it (rootfs.py), describe that tree (sbom.py).
RUN /opt/status-reporter/bin/python hack/image/probe.py --trace /tmp/trace.json \
 && if [ "$BASE_IMAGE" = scratch ]; then only=; else only=--venv-only; fi \
 && python3 hack/image/rootfs.py $only --trace /tmp/trace.json --venv /opt/status-reporter \
      --lock hack/image/debian.$(dpkg --print-architecture).lock --license LICENSE --out /rootfs --manifest /tmp/manifest.json \
 && python3 hack/image/sbom.py /tmp/manifest.json /rootfs/usr/share/doc/status-reporter/sbom.cdx.json \
      --version "$VERSION" --revision "$REVISION" --source "$SOURCE"

FROM ${BASE_IMAGE} AS runtime
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG SOURCE=https://github.com/openshift-hyperfleet/status-reporter
ARG CREATED=1970-01-01T00:00:00Z
ARG VENDOR=openshift-hyperfleet
ARG BASE_IMAGE
COPY --from=build /rootfs /
ENV PATH=/opt/status-reporter/bin:/usr/bin \
    LANG=C.UTF-8 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 65532:65532
# The labels of HyperFleet's image standard (name ... description), then the OCI ones.
LABEL name="status-reporter" \
      vendor="${VENDOR}" \
      version="${VERSION}" \
      summary="Records an adapter container's result as a condition on its Job" \
      description="Kubernetes sidecar that records an adapter's result as a condition on its Job" \
      org.opencontainers.image.title="status-reporter" \
      org.opencontainers.image.description="Kubernetes sidecar that records an adapter's result as a condition on its Job" \
      org.opencontainers.image.vendor="${VENDOR}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.url="${SOURCE}" \
      org.opencontainers.image.documentation="${SOURCE}#readme" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.base.name="${BASE_IMAGE}" \
      io.status-reporter.sbom="/usr/share/doc/status-reporter/sbom.cdx.json"
ENTRYPOINT ["/opt/status-reporter/bin/status-reporter"]

# The check: the probe again, in the runtime image as it will run (no shell: exec form),
# as its user. A module or library missing from the runtime set fails the build here,
# not a Pod. In a stage of its own: the mount points a RUN leaves behind stay here.
FROM runtime AS check
RUN --mount=type=bind,from=build,source=/src/hack/image/probe.py,target=/tmp/probe.py \
    ["/opt/status-reporter/bin/python", "/tmp/probe.py", "--tmp", "/tmp"]

FROM runtime
# Nothing new (the same bytes): makes the image depend on the check, which builders
# that skip unused stages would otherwise leave out.
COPY --from=check /etc/group /etc/group
