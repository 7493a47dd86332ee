#!/usr/bin/env bash
# Installs what tests/deploy needs on a bare Debian 12 host (run as root; idempotent, ~15 s cold):
#   systemd-nspawn (systemd-container), mmdebstrap, ssh client, and ansible-core + ansible-lint
#   in a venv under /var/tmp (not the project venv: the controller's tools are not HEAN's deps).
# The venv path is what tests/deploy/vps.py looks for: $HEAN_DEPLOY_TOOLS or /var/tmp/hean-deploy/tools.
set -euo pipefail
TOOLS=${HEAN_DEPLOY_TOOLS:-/var/tmp/hean-deploy/tools}
need=()
command -v systemd-nspawn >/dev/null || need+=(systemd-container)
command -v mmdebstrap >/dev/null || need+=(mmdebstrap)
command -v ssh >/dev/null || need+=(openssh-client)
command -v ssh-keygen >/dev/null || need+=(openssh-client)
if [ ${#need[@]} -gt 0 ]; then
  [ -n "$(find /var/lib/apt/lists -name '*Packages*' -newermt '-1 day' 2>/dev/null | head -n1)" ] || apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if [ ! -x "$TOOLS/bin/ansible-lint" ]; then
  python3 -m venv "$TOOLS"
  "$TOOLS/bin/pip" install -q --disable-pip-version-check 'ansible-core>=2.16,<2.20' ansible-lint
fi
"$TOOLS/bin/ansible-playbook" --version | sed -n 1p   # sed reads it all: no EPIPE under pipefail
"$TOOLS/bin/ansible-lint" --version | sed -n 1p
# The host's Prometheus scrapes the deployed stacks (test_vps.py); the same install as .ci/run's.
sh "$(dirname "$0")/../observability/ci-deps.sh"
prometheus --version 2>&1 | sed -n 1p
