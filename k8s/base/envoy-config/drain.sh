#!/bin/bash
# preStop hook of the Envoy pod (k8s/base/envoy.yaml). Envoy exits at once on
# SIGTERM, so before the kubelet sends it: fail the health check (/healthz
# answers 503, readiness drops the pod from the Service), drain the listeners
# gracefully (HTTP/2 GOAWAY, HTTP/1.1 Connection: close), then wait so that
# in-flight calls and streams finish. Plain bash (/dev/tcp): the Envoy image
# has no curl.
set -u
admin_host=${TATOR_ENVOY_ADMIN_HOST:-127.0.0.1}
admin_port=${TATOR_ENVOY_ADMIN_PORT:-9901}

post() {
  exec 3<>"/dev/tcp/$admin_host/$admin_port" || return 1
  printf 'POST %s HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n' "$1" >&3
  head -n 1 <&3
  exec 3>&-
}

post /healthcheck/fail
post '/drain_listeners?graceful'
sleep "${TATOR_ENVOY_DRAIN_S:-20}"
