#!/usr/bin/env bash
# Build deploy/Dockerfile and run it, with no container registry: a Debian bookworm root filesystem
# (python3, python3-venv) is made by mmdebstrap from this machine's apt sources and imported as the
# base image; the build never pulls. Then the container runs as its non-root user, and /healthz,
# /readyz, discovery, one signed order-sign call and a rule page are checked from the host
# (deploy/image_probe.py), with the image's HEALTHCHECK. Everything made is removed at the end.
#
#   bash deploy/check-image.sh            (as root or with passwordless sudo; Debian's podman, runc
#                                          and mmdebstrap are installed when missing)
#
# Known on this kind of machine: crun fails on hybrid cgroups (runc is used), `podman run` and
# `podman build` need explicit nofile/nproc limits, and a package index reached through a
# TLS-intercepting proxy needs the host's CA bundle: it is bind-mounted read-only for the build and
# named by the PIP_CERT build argument, never copied into the image.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
TAG="localhost/mg-cds:check-$$"
BASE="localhost/mg-cds-base:bookworm-$$"
NAME="mg-cds-check-$$"
WORK="$(mktemp -d /tmp/mg-cds-image-XXXXXX)"
CA="${HOST_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"
step() { echo "check-image: $* ($(date +%T))" >&2; }

cleanup() {
  podman rm -f --time 5 "$NAME" >/dev/null 2>&1 || true
  podman rmi -f "$TAG" "$BASE" >/dev/null 2>&1 || true
  # the build stage's image is left untagged: remove only those this run made
  if [ -f "$WORK/dangling-before" ]; then
    for id in $(podman images -q --filter dangling=true 2>/dev/null); do
      grep -qx "$id" "$WORK/dangling-before" || podman rmi -f "$id" >/dev/null 2>&1 || true
    done
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo -n"
missing=()
for tool in podman runc mmdebstrap; do command -v "$tool" >/dev/null 2>&1 || missing+=("$tool"); done
if [ ${#missing[@]} -gt 0 ]; then
  step "installing Debian's ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends podman runc mmdebstrap uidmap >/dev/null
fi
LIMITS=(--ulimit "nofile=$(ulimit -Hn):$(ulimit -Hn)" --ulimit "nproc=4096:4096")
PODMAN=(podman --runtime runc)

step "base root filesystem (mmdebstrap, bookworm, python3 + python3-venv)"
sources=/etc/apt/sources.list.d/debian.sources
[ -f "$sources" ] || sources=/etc/apt/sources.list
$SUDO mmdebstrap --quiet --variant=minbase --include=python3,python3-venv,ca-certificates,passwd \
  --format=tar bookworm "$WORK/rootfs.tar" - < "$sources"
"${PODMAN[@]}" import --quiet "$WORK/rootfs.tar" "$BASE" >/dev/null
rm -f "$WORK/rootfs.tar"

step "building deploy/Dockerfile on it (--pull=never)"
podman images -q --filter dangling=true > "$WORK/dangling-before" 2>/dev/null || true
build_ca=()
[ -f "$CA" ] && build_ca=(--volume "$CA:/run/host-ca.crt:ro" --build-arg PIP_CERT=/run/host-ca.crt)
"${PODMAN[@]}" build --quiet --pull=never --format docker "${LIMITS[@]}" --build-arg "BASE=$BASE" "${build_ca[@]}" \
  -f deploy/Dockerfile -t "$TAG" . >/dev/null

step "running it"
PORT="$("$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
"$PYTHON" deploy/image_probe.py keys "$WORK" "$PORT"
chmod a+r "$WORK"/jwks.json "$WORK"/config.yaml
"${PODMAN[@]}" run -d --name "$NAME" "${LIMITS[@]}" -p "127.0.0.1:$PORT:8080" \
  -v "$WORK/config.yaml:/etc/cds-service/config.yaml:ro" -v "$WORK/jwks.json:/etc/cds-service/keys/jwks.json:ro" \
  "$TAG" >/dev/null
if ! "$PYTHON" deploy/image_probe.py probe "http://127.0.0.1:$PORT" "$WORK"; then
  "${PODMAN[@]}" logs --tail 40 "$NAME" >&2 || true
  exit 1
fi
user="$("${PODMAN[@]}" exec "$NAME" id -u)"
[ "$user" = "10001" ] || { echo "check-image: the service runs as uid $user, not 10001" >&2; exit 1; }
"${PODMAN[@]}" healthcheck run "$NAME" >/dev/null || { echo "check-image: HEALTHCHECK failed" >&2; exit 1; }
# the sidecar's nginx (the same image): its config loads as the non-root user on this image
"${PODMAN[@]}" exec "$NAME" nginx -t -q -c /etc/cds-service/nginx.conf -e stderr \
  || { echo "check-image: the sidecar's nginx config does not load" >&2; exit 1; }
size="$("${PODMAN[@]}" image inspect "$TAG" --format '{{.Size}}')"
step "ok: uid 10001, HEALTHCHECK passes, image $((size / 1024 / 1024)) MiB; removing it"
