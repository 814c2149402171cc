#!/usr/bin/env bash
# Container images with buildah (no docker daemon needed).
#
#   scripts/image.sh build   wheelhouse + hadolint + build tator and tator-web
#   scripts/image.sh check   the same on a local debootstrap base, then start every
#                            service from the image (non-root, read-only root, models
#                            volume mounted) and wait for SERVING; prints sizes and times
#
# Environment: BASE_IMAGE (default: the digest pinned in the Dockerfile), TAG (dev),
# WEB_DIST (web/dist, or a placeholder page when it does not exist), TATOR_HOME
# (its models/ is the volume the smoke test mounts), BUILDAH_FLAGS.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PY:-.venv/bin/python}
TAG=${TAG:-dev}
EXTRAS=detector,sam3,qwen,classifier,orchestrator
WORK=${IMAGE_WORK:-/var/tmp/tator-image}
# vfs + chroot isolation: no overlay filesystem and no user namespaces needed,
# which is what a CI runner inside a container offers.
BUILDAH=(buildah --storage-driver vfs)
BUILD_FLAGS=(--isolation chroot --layers=false ${BUILDAH_FLAGS:-})
TATOR_HOME=${TATOR_HOME:-$ROOT/.tator}

log() { printf '[image] %s\n' "$*" >&2; }

tator_wheel() {
  # The project itself, rebuilt on every build (the source changes often).
  rm -rf build/tator-wheel build/wheels/tator-*.whl
  "$PY" -m pip wheel -q --no-deps --no-build-isolation -w build/tator-wheel .
  mkdir -p build/wheels && cp build/tator-wheel/tator-*.whl build/wheels/
}

wheels() {
  # Every dependency, resolved on this machine with its pip configuration; the
  # build installs from here with --no-index. Downloaded again only when
  # pyproject.toml changed.
  local stamp
  stamp=$(sha256sum pyproject.toml | cut -c1-16)
  if [[ -f build/wheels/.stamp && $(cat build/wheels/.stamp) == "$stamp" ]]; then tator_wheel; return; fi
  rm -rf build/wheels && tator_wheel
  # By path, not by name: PyPI has an unrelated project called tator.
  local whl
  whl=$(find build/tator-wheel -name 'tator-*.whl')
  "$PY" -m pip download -q -d build/wheels "$whl[$EXTRAS]"
  # ultralytics asks for opencv-python, which links libGL; the image swaps in
  # the headless build of the same version (same cv2 module, no X libraries).
  local cv
  cv=$(find build/wheels -name 'opencv_python-*.whl' -printf '%f\n' | cut -d- -f2)
  if [[ -n $cv ]]; then "$PY" -m pip download -q --no-deps -d build/wheels "opencv-python-headless==$cv"; fi
  echo "$stamp" > build/wheels/.stamp
  du -sh build/wheels >&2
}

lint() {
  .venv/bin/hadolint Dockerfile deploy/web/Dockerfile
  log "hadolint clean"
}

web_dist() {
  # The web UI's static build when it exists; else a placeholder page, so the
  # image (and its smoke test) can be built before the UI is.
  if [[ -n ${WEB_DIST:-} ]]; then echo "$WEB_DIST"; return; fi
  if [[ -f web/dist/index.html ]]; then echo web/dist; return; fi
  mkdir -p build/web-placeholder
  printf '<!doctype html><title>Tator</title><p>The web UI was not built (npm run build in web/).</p>\n' \
    > build/web-placeholder/index.html
  echo build/web-placeholder
}

build_images() {
  local base_args=()
  if [[ -n ${BASE_IMAGE:-} ]]; then base_args=(--build-arg "BASE_IMAGE=$BASE_IMAGE"); fi
  local t0=$SECONDS
  "${BUILDAH[@]}" bud "${BUILD_FLAGS[@]}" "${base_args[@]}" --build-arg "EXTRAS=$EXTRAS" \
    -f Dockerfile -t "localhost/tator:$TAG" .
  local t1=$SECONDS
  "${BUILDAH[@]}" bud "${BUILD_FLAGS[@]}" "${base_args[@]}" --build-arg "WEB_DIST=$(web_dist)" \
    -f deploy/web/Dockerfile -t "localhost/tator-web:$TAG" .
  local t2=$SECONDS
  echo "{\"build_s\": {\"tator\": $((t1 - t0)), \"tator-web\": $((t2 - t1))}}"
}

base_image() {
  # Debian bookworm from debootstrap plus python3: the stand-in for the pinned
  # base when no registry is reachable. Built once and kept.
  if "${BUILDAH[@]}" inspect --type image localhost/tator-base:bookworm >/dev/null 2>&1; then return; fi
  if [[ ! -x $WORK/rootfs/usr/bin/python3 ]]; then
    mkdir -p "$WORK"
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
      bookworm "$WORK/rootfs" http://deb.debian.org/debian
  fi
  local ctr
  ctr=$("${BUILDAH[@]}" from scratch)
  "${BUILDAH[@]}" copy "$ctr" "$WORK/rootfs" / >/dev/null
  "${BUILDAH[@]}" commit --rm "$ctr" localhost/tator-base:bookworm >/dev/null
  log "base image localhost/tator-base:bookworm"
}

# --- smoke test -----------------------------------------------------------------
# The image's root, mounted read-only, with writable tmpfs on /tmp and /tator
# (what the pod gets from emptyDir/PVC). First the model-fill Job's program
# runs from the image as uid 10001 and fills a fresh models volume from
# $TATOR_HOME/models; then the volume is remounted read-only at /tator/models
# and every service is started from the image (scripts/image_smoke.py).
SMOKE_MOUNTS=()
smoke_mount() {  # smoke_mount TARGET ARGS...: mount and remember for teardown
  local target=$1; shift
  mount "$@" "$target"
  SMOKE_MOUNTS=("$target" "${SMOKE_MOUNTS[@]}")
}

smoke_setup() {
  local ctr=$1 root
  root=$("${BUILDAH[@]}" mount "$ctr")
  SMOKE=$WORK/smoke-root
  mkdir -p "$SMOKE"
  smoke_mount "$SMOKE" --bind "$root"
  mount -o remount,bind,ro "$SMOKE"
  smoke_mount "$SMOKE/tmp" -t tmpfs -o size=512m,mode=1777 tmpfs
  smoke_mount "$SMOKE/tator" -t tmpfs -o size=64m,uid=10001,gid=10001 tmpfs
  smoke_mount "$SMOKE/proc" -t proc proc
  smoke_mount "$SMOKE/dev" --rbind /dev
  # The source as a models image would ship it (world-readable), and an empty
  # volume owned by the pods' user.
  rm -rf "$WORK/smoke-source" "$WORK/smoke-models"
  cp -a "$TATOR_HOME/models" "$WORK/smoke-source" && chmod -R a+rX "$WORK/smoke-source"
  mkdir -p "$WORK/smoke-models" && chown 10001:10001 "$WORK/smoke-models"
  mkdir -p "$SMOKE/tmp/source" "$SMOKE/tator/models"
  smoke_mount "$SMOKE/tmp/source" --bind "$WORK/smoke-source"
  smoke_mount "$SMOKE/tator/models" --bind "$WORK/smoke-models"
}

smoke_teardown() {
  local m
  for m in "${SMOKE_MOUNTS[@]}"; do umount -l "$m" 2>/dev/null || true; done
  SMOKE_MOUNTS=()
}

SMOKE_CTR=""
WEB_CTR=""
smoke_web_setup() {
  local root
  WEB_CTR=$("${BUILDAH[@]}" from "localhost/tator-web:$TAG")
  root=$("${BUILDAH[@]}" mount "$WEB_CTR")
  SMOKE_WEB=$WORK/smoke-web
  mkdir -p "$SMOKE_WEB"
  smoke_mount "$SMOKE_WEB" --bind "$root"
  mount -o remount,bind,ro "$SMOKE_WEB"
  smoke_mount "$SMOKE_WEB/dev" --rbind /dev
}

smoke() {
  local image=localhost/tator:$TAG rc=0
  [[ -f $TATOR_HOME/models/registry.yaml ]] || { log "no models under $TATOR_HOME (make fixtures)"; exit 1; }
  SMOKE_CTR=$("${BUILDAH[@]}" from "$image")
  trap 'smoke_teardown; for c in $SMOKE_CTR $WEB_CTR; do "${BUILDAH[@]}" rm "$c" >/dev/null 2>&1; done; true' EXIT
  smoke_setup "$SMOKE_CTR"
  smoke_web_setup
  if touch "$SMOKE/usr/probe" 2>/dev/null; then log "root is writable"; exit 1; fi
  log "model-fill from the image, as uid 10001"
  env -i PATH=/opt/venv/bin:/usr/bin:/bin HOME=/tmp "$(command -v chroot)" --userspec=10001:10001 "$SMOKE" \
    /opt/venv/bin/python -m tator_core.model_fill --from-dir /tmp/source --dest /tator/models
  mount -o remount,bind,ro "$SMOKE/tator/models"
  "$PY" scripts/image_smoke.py --root "$SMOKE" --web-root "$SMOKE_WEB" || rc=$?
  return $rc
}

sizes() {
  "${BUILDAH[@]}" images --format '{"image": "{{.Name}}:{{.Tag}}", "size": "{{.Size}}"}' \
    | grep -E 'tator(-web|-base)?:'
}

case ${1:-build} in
  wheels) wheels ;;
  lint) lint ;;
  build) lint; wheels; build_images; sizes ;;
  build-local) lint; wheels; base_image; BASE_IMAGE=localhost/tator-base:bookworm build_images; sizes ;;
  check) "$0" build-local; smoke ;;
  smoke) smoke ;;
  *) echo "usage: $0 build|build-local|check|wheels|lint|smoke" >&2; exit 2 ;;
esac
