# The autoscaler image.
#   docker build -t registry.example.com/shiny-autoscaler:0.1.0 .
# Two stages: the build stage installs the package and its dependencies into a virtualenv;
# the runtime stage is the same slim Python image with only that virtualenv added.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY autoscaler ./autoscaler
RUN python -m venv /venv \
 && /venv/bin/pip install --no-compile . \
 && /venv/bin/autoscaler --help >/dev/null

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="shiny-swarm-autoscaler" \
      org.opencontainers.image.description="Autoscaler and monitoring sidecar for ShinyProxy on Docker Swarm"
# uid 10001 owns the ledger folder, and the folder of the role credentials that
# stack.aws-role.yml hands to the autoscaler (a new volume takes its owner from here). The
# Docker socket belongs to root and the host's docker group, so stack.yml runs the
# container as 10001 with that group's id (DOCKER_GID) instead of as root.
RUN useradd --system --uid 10001 --gid 0 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin autoscaler \
 && mkdir -p /etc/autoscaler/rules /var/lib/autoscaler /var/lib/aws-role \
 && chown 10001:0 /var/lib/autoscaler /var/lib/aws-role \
 && chmod 0775 /var/lib/autoscaler \
 && chmod 0700 /var/lib/aws-role
COPY --from=build /venv /venv
ENV PATH=/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    AUTOSCALER_RULES=/etc/autoscaler/rules \
    AUTOSCALER_LEDGER=/var/lib/autoscaler/decisions.jsonl
USER 10001
WORKDIR /var/lib/autoscaler
EXPOSE 8080
# /healthz answers 503 when no pass succeeded lately; urlopen raises on it.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4)"]
ENTRYPOINT ["autoscaler"]
CMD ["run"]
