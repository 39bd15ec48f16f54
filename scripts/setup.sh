#!/usr/bin/env bash
# Installs and starts what orcaops needs on a fresh Debian machine, idempotently:
# the Docker engine, a running dockerd, headless Chromium and chromedriver, a local `busybox:latest` image built from
# Debian's busybox-static (no registry needed), and a Python venv with the MCP SDK
# for the MCP tests, and Prometheus's promtool and server for tests/metrics.rs. Safe to
# run again and again.
set -euo pipefail

log() { printf '[setup] %s\n' "$*" >&2; }
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

need_pkgs=()
command -v dockerd >/dev/null 2>&1 || need_pkgs+=(docker.io)
[ -x /bin/busybox ] || need_pkgs+=(busybox-static)
# The kubectl tests make a self-signed certificate: kubectl sends a token only over TLS.
command -v openssl >/dev/null 2>&1 || need_pkgs+=(openssl)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  log "installing ${need_pkgs[*]} (apt-get)"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi

# kubectl is only for the tests that drive local mode with a real kubectl.
if ! command -v kubectl >/dev/null 2>&1; then
  log "installing kubectl (apt-get) for the kubectl tests"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq kubectl >/dev/null 2>&1 \
    || log "warning: kubectl could not be installed; tests/kubectl.rs will fail until it is on PATH"
fi

# Headless Chromium and its WebDriver are only for tests/dashboard.rs and
# scripts/screenshots.sh, which drive the dashboard in a real browser.
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  log "installing chromium and chromium-driver (apt-get) for the dashboard tests"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null 2>&1 \
    || log "warning: chromium could not be installed; tests/dashboard.rs will fail until chromium and chromedriver are on PATH"
fi

# promtool and prometheus are only for tests/metrics.rs, which starts its own server
# on a temporary port: the package's service is kept from starting (policy-rc.d).
if ! command -v promtool >/dev/null 2>&1 || ! command -v prometheus >/dev/null 2>&1; then
  log "installing prometheus (apt-get; its service is not started) for the metrics tests"
  policy=/usr/sbin/policy-rc.d
  added_policy=""
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\n# added by orcaops scripts/setup.sh while installing prometheus\nexit 101\n' | $SUDO tee "$policy" >/dev/null
    $SUDO chmod 755 "$policy"
    added_policy=1
  fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null 2>&1 \
    || log "warning: prometheus could not be installed; tests/metrics.rs will fail until promtool and prometheus are on PATH"
  [ -z "$added_policy" ] || $SUDO rm -f "$policy"
fi

if ! docker info >/dev/null 2>&1; then
  log "starting dockerd (log: /var/log/orcaops-dockerd.log)"
  # Prefer the init system when there is one; otherwise run the daemon directly.
  if command -v systemctl >/dev/null 2>&1 && systemctl is-system-running >/dev/null 2>&1; then
    $SUDO systemctl start docker
  else
    $SUDO sh -c 'nohup dockerd >/var/log/orcaops-dockerd.log 2>&1 &'
  fi
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && break
    sleep 0.5
  done
  docker info >/dev/null 2>&1 || { log "dockerd did not come up; see /var/log/orcaops-dockerd.log"; exit 5; }
fi

# The examples say `image: busybox:latest`, which a machine with a registry pulls;
# here we build the same name locally so that nothing needs a registry.
if ! docker image inspect busybox:latest >/dev/null 2>&1; then
  log "building busybox:latest from /bin/busybox (docker import)"
  root=$(mktemp -d)
  trap 'rm -rf "$root"' EXIT
  mkdir -p "$root/bin" "$root/tmp" "$root/etc" "$root/root" "$root/work"
  chmod 1777 "$root/tmp"
  cp /bin/busybox "$root/bin/busybox"
  for applet in $(/bin/busybox --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
  done
  echo 'root:x:0:0:root:/root:/bin/sh' > "$root/etc/passwd"
  echo 'root:x:0:' > "$root/etc/group"
  tar -C "$root" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["sh"]' - busybox:latest >/dev/null
fi
# The MCP tests drive `orcaops mcp` with a client we did not write: the official MCP
# Python SDK, in a venv of its own (tests/mcp.rs looks for it here).
MCP_VENV="${ORCAOPS_MCP_VENV:-$HOME/.cache/orcaops/mcp-venv}"
MCP_SDK_VERSION="2.3.0"
has_sdk() {
  "$MCP_VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('mcp') != '$MCP_SDK_VERSION')" 2>/dev/null
}
if ! has_sdk; then
  if ! python3 -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
    log "installing python3 and python3-venv (apt-get)"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3 python3-venv >/dev/null
  fi
  log "installing the MCP Python SDK $MCP_SDK_VERSION into $MCP_VENV"
  rm -rf "$MCP_VENV"
  python3 -m venv "$MCP_VENV"
  "$MCP_VENV/bin/pip" install -q --disable-pip-version-check "mcp==$MCP_SDK_VERSION"
  has_sdk || { log "the MCP SDK did not install into $MCP_VENV"; exit 1; }
fi
log "ready: docker $(docker version --format '{{.Server.Version}}'), image busybox:latest, MCP SDK $MCP_SDK_VERSION"
