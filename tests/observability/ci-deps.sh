#!/bin/sh
# Tools the observability tests need: promtool (prometheus) and amtool (prometheus-alertmanager),
# from Debian, without the recommended exporters. Called from .ci/run; idempotent.
set -eu
if command -v promtool >/dev/null && command -v amtool >/dev/null \
   && command -v prometheus >/dev/null && command -v prometheus-alertmanager >/dev/null; then
    exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends prometheus prometheus-alertmanager
# The packages start their daemons where an init system runs; the tests start their own on loopback.
if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    $SUDO systemctl disable --now prometheus prometheus-alertmanager >/dev/null 2>&1 || true
fi
