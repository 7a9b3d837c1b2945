# syntax=docker/dockerfile:1
# The operator's image: `make image` (IMAGE=scaivault-operator:dev), used by the Helm chart and `make e2e`.
# Stage 1 builds the package and its dependencies into a virtualenv (every dependency ships wheels: nothing is
# compiled); stage 2 copies only that virtualenv onto the same slim base — no build tools, no pip, no sources.
# The base of both stages, pinned by digest: a rebuild of the same commit starts from the same bytes, and a moved
# tag cannot change what ships. The tag stays in the reference for readers; the digest is what Docker pulls. This is
# the multi-platform index of python:3.12-slim, i.e. 3.12.15-slim-trixie (Debian 13), built 2026-10-06 and listed by
# Docker Hub on 2026-10-10. To bump it: `docker buildx imagetools inspect python:3.12-slim` prints the index digest
# ("Digest:"); put it here, in a commit of its own. Renovate's dockerfile manager updates the digest in this ARG
# itself; Dependabot does not follow an ARG into FROM (dependabot-core#2057). Another base, e.g. a mirror's:
# `docker build --build-arg PYTHON_IMAGE=registry.example.com/library/python:3.12-slim@sha256:... .`
# checkov:skip=CKV_DOCKER_7: checkov does not resolve ARGs in FROM; PYTHON_IMAGE's default is pinned by tag and digest
ARG PYTHON_IMAGE=python:3.12-slim@sha256:a6e34c598f2467ed0e9a8d349809fcd8b5c603269512df273a0bb1784edc11b1

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
# No Docker HEALTHCHECK, on purpose: Kubernetes ignores it (the chart's liveness and readiness probes do that job),
# and the same image also runs `dev-vault` and one-off commands, which serve no /healthz.
HEALTHCHECK NONE
ENTRYPOINT ["scaivault-operator"]
CMD ["run"]
