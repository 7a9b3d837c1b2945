# syntax=docker/dockerfile:1
# The operator's image: `make image` (IMAGE=scaivault-operator:dev), used by the Helm chart and `make e2e`.
# Stage 1 builds the package and its dependencies into a virtualenv (every dependency ships wheels: nothing is
# compiled); stage 2 copies only that virtualenv onto the same slim base — no build tools, no pip, no sources.
ARG PYTHON_IMAGE=python:3.12-slim

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/venv
WORKDIR /src
# The dependencies first, in their own layer (kept while only the sources change), as wheels only.
COPY pyproject.toml ./
RUN python -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))' \
      > /tmp/requirements.txt \
 && /opt/venv/bin/pip install --quiet --only-binary=:all: --requirement /tmp/requirements.txt
# Then the package: built into a wheel (hatchling lives in pip's throw-away build environment), installed alone.
COPY README.md ./
COPY operator/src operator/src
RUN pip wheel --quiet --no-deps --wheel-dir /tmp/wheels . \
 && /opt/venv/bin/pip install --quiet --no-deps /tmp/wheels/*.whl \
 && /opt/venv/bin/pip check \
 && /opt/venv/bin/python -c 'import kopf, lightkube, scaivault_operator.cli, scaivault_operator.devvault' \
 && ! /opt/venv/bin/python -c 'import kubernetes' 2>/dev/null \
 && /opt/venv/bin/pip uninstall --quiet --yes pip

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="scaivault-operator" \
      org.opencontainers.image.description="Materializes ScaiVault secrets as Kubernetes Secrets" \
      org.opencontainers.image.licenses="Apache-2.0"
# A fixed non-root user (the chart runs as 65532:65532 with a read-only root filesystem). USER is set too, so
# that getpass.getuser() answers under any UID an admission controller picks.
RUN groupadd --system --gid 65532 scaivault \
 && useradd --system --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin scaivault
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    USER=scaivault
USER 65532:65532
WORKDIR /tmp
# 8080: Kopf's /healthz (probes); 9090: /metrics. `scaivault-operator dev-vault` serves a local ScaiVault (8200).
EXPOSE 8080 9090
ENTRYPOINT ["scaivault-operator"]
CMD ["run"]
