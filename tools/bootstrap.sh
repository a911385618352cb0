#!/usr/bin/env bash
# Set up everything arm-cpu-filter needs on a fresh Debian 12 machine, idempotently:
# Debian packages (apt), a virtualenv in .venv with the project and its test/runtime extras at the
# versions pinned in constraints.txt.
# Usage: tools/bootstrap.sh            (safe to rerun; does nothing that is already done)
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

# Debian packages: qemu for the real-KVM lab, libvirt (daemon + schemas) for the libvirt adapter,
# PostgreSQL for the SQL store tests, xmllint for schema checks.
APT_PACKAGES=(python3-venv qemu-system-arm libxml2-utils postgresql mariadb-server libvirt-daemon
              libvirt-daemon-driver-qemu libvirt-clients pkg-config libvirt-dev)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "bootstrap: installing Debian packages: ${missing[*]}"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Optional extra steps contributed by the adapters (each idempotent).
for hook in tools/bootstrap.d/*.sh; do
  [ -e "$hook" ] && bash "$hook"
done

PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
# the tested versions of everything (constraints.txt): a change to it reinstalls, like one to setup.cfg
stamp=.venv/.bootstrap-$(cat setup.cfg pyproject.toml constraints.txt | sha256sum | cut -c1-16)
if [ ! -e "$stamp" ]; then
  .venv/bin/pip install -q --upgrade pip >/dev/null
  .venv/bin/pip install -q -c constraints.txt -e ".[test]"
  rm -f .venv/.bootstrap-*
  touch "$stamp"
fi
echo "bootstrap: ready (.venv/bin/arm-cpu-filter)"
