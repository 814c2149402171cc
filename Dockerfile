# One image for every Tator service: `python -m svc_<name>` picks the service
# (k8s/base/*.yaml). Build it with `make image` (scripts/image.sh).
#
# The base is pinned by digest and overridable: `--build-arg BASE_IMAGE=...`.
# Any Debian-like image with python3 (>= 3.11) and its venv module works; the
# offline check (`make image-check`) passes a bookworm base made with
# debootstrap, since no base-image registry is reachable there.
#
# Dependencies come from a wheelhouse in the build context (build/wheels,
# filled by `pip download` in scripts/image.sh), installed with --no-index: the
# build itself needs no network and installs exactly the wheels that were
# downloaded, and no stage compiles anything.
ARG BASE_IMAGE=docker.io/library/python:3.11-slim-bookworm@sha256:2e32f7d302adc1c37428355c1e646897c0c53f4fd60b6a551245fb90ee129f91

# --- build: a venv holding the project and its dependencies ------------------
FROM ${BASE_IMAGE} AS build
ARG EXTRAS=detector,sam3,qwen,classifier,orchestrator
ARG WHEELS=build/wheels
COPY ${WHEELS} /wheels
# The tator wheel is in the wheelhouse too, so the source tree never enters
# the image and nothing is installed in editable mode.
# hadolint ignore=DL3013
RUN python3 -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-index --find-links /wheels --no-cache-dir --no-compile \
      "tator[${EXTRAS}]" \
 && if /opt/venv/bin/pip show -q opencv-python 2>/dev/null; then \
      /opt/venv/bin/pip uninstall -y opencv-python \
      && /opt/venv/bin/pip install --no-index --find-links /wheels --no-deps --no-cache-dir opencv-python-headless; \
    fi \
 && /opt/venv/bin/pip uninstall -y pip \
 && /opt/venv/bin/python -c "import cv2, tator_core, svc_detector, svc_sam3, svc_qwen, svc_classifier, svc_orchestrator" \
 && find /opt/venv -name '__pycache__' -type d -prune -exec rm -rf {} +

# --- runtime: the base, a non-root user and the venv; no pip, no compilers ---
FROM ${BASE_IMAGE} AS runtime
# 10001 matches runAsUser in k8s/base; the home is /tmp because the root
# filesystem is mounted read-only in the cluster.
RUN groupadd --system --gid 10001 tator \
 && useradd --system --uid 10001 --gid 10001 --home-dir /tmp --no-create-home --shell /usr/sbin/nologin tator \
 && mkdir -p /tator/models \
 && chown -R 10001:10001 /tator
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    TATOR_HOME=/tator
WORKDIR /tator
USER 10001:10001
# gRPC ports 50050-50054 and metrics ports 9460-9464 (config/stack.yaml).
EXPOSE 50050 50051 50052 50053 50054 9460 9461 9462 9463 9464
ENTRYPOINT ["python", "-m"]
CMD ["svc_orchestrator"]
