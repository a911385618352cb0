#!/usr/bin/env bash
# libvirt adapter: libvirt >= 10.9 from <codename>-backports, whose installed RelaxNG schemas
# (/usr/share/libvirt/schemas/domaincaps.rng) know <blockers>; the tests validate against them.
#
# The schemas live in libvirt-common (11.x), which Breaks libvirt0 < 10.6, and every libvirt
# package pins libvirt0 to its own version: so the whole installed libvirt stack moves to the
# backports version together (library, daemon, QEMU driver, clients, headers), which keeps the
# daemon the tests start working.  The backports apt source is derived at run time from this
# machine's own Debian source (same archive URI and keyring), never written in here.
# Idempotent: does nothing once the installed schema has <blockers>.
set -euo pipefail

SCHEMA=/usr/share/libvirt/schemas/domaincaps.rng
PACKAGES=(libvirt-common libvirt0 libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients libvirt-dev)
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

if [ -e "$SCHEMA" ] && grep -q "blockers" "$SCHEMA"; then
  exit 0
fi

. /etc/os-release
codename=${VERSION_CODENAME:?no VERSION_CODENAME in /etc/os-release}
suite="$codename-backports"

sources=(/etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources)
have_suite() {  # is "$1" already configured in any apt source?
  local f
  for f in "${sources[@]}"; do
    [ -e "$f" ] || continue
    grep -Eq "^[^#]*(^|[[:space:]])$1([[:space:]]|$)" "$f" && return 0
  done
  return 1
}

if ! have_suite "$suite"; then
  # The archive URI and keyring of the entry that serves "$codename" itself (deb822 or one-line).
  read -r uri keyring < <(
    for f in "${sources[@]}"; do
      [ -e "$f" ] || continue
      case "$f" in
        *.sources)
          awk -v want="$codename" '
            /^[[:space:]]*$/ { if (hit && u != "") { print u, k; exit } u = ""; k = ""; hit = 0; next }
            /^URIs:/ { u = $2 }
            /^Signed-By:/ { k = $2 }
            /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == want) hit = 1 }
            END { if (hit && u != "") print u, k }' "$f" ;;
        *)
          awk -v want="$codename" '
            $1 == "deb" {
              k = ""; i = 2
              if ($2 ~ /^\[/) { for (; i <= NF; i++) { if ($i ~ /signed-by=/) { k = $i; sub(/.*signed-by=/, "", k); sub(/\]$/, "", k) } if ($i ~ /\]$/) break } i++ }
              if ($(i + 1) == want) { print $i, k; exit }
            }' "$f" ;;
      esac
    done | head -n 1
  ) || true
  if [ -z "${uri:-}" ]; then
    echo "bootstrap.d/libvirt: no apt source for '$codename' found; cannot add $suite" >&2
    exit 1
  fi
  keyring=${keyring:-/usr/share/keyrings/debian-archive-keyring.gpg}
  echo "bootstrap.d/libvirt: adding apt source $suite (from the $codename entry)"
  printf 'Types: deb\nURIs: %s\nSuites: %s\nComponents: main\nSigned-By: %s\n' "$uri" "$suite" "$keyring" |
    $SUDO tee "/etc/apt/sources.list.d/arm-cpu-filter-$suite.sources" >/dev/null
fi

echo "bootstrap.d/libvirt: installing libvirt from $suite: ${PACKAGES[*]}"
apt_opts=(-qq -o DPkg::Lock::Timeout=600)
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get "${apt_opts[@]}" update
# pkg/suite (not -t): only the libvirt packages come from backports; their other dependencies
# (QEMU: the lab needs bookworm's 7.2; systemd-container...) stay on the machine's own suite.
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get "${apt_opts[@]}" install -y --no-install-recommends \
  "${PACKAGES[@]/%//$suite}" >/dev/null

if ! grep -q "blockers" "$SCHEMA"; then
  echo "bootstrap.d/libvirt: $SCHEMA still lacks <blockers> after the install" >&2
  exit 1
fi
