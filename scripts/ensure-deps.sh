#!/usr/bin/env bash
# ensure-deps.sh PKG... — install the Debian packages that are missing, and
# only those. Quick when everything is present (one dpkg -s call); runs
# apt-get update only when something must be installed.
set -euo pipefail
missing=()
for p in "$@"; do
	if ! dpkg -s "$p" 2>/dev/null | grep -q '^Status: install ok installed'; then
		missing+=("$p")
	fi
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
	echo "ensure-deps: missing ${missing[*]} and not root: install them first" >&2
	exit 1
fi
echo "ensure-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# Installing must never start services (docker.io and containerd would
# otherwise start host daemons): deny them for the install, as Docker's
# own images do, unless the host already has a policy.
if [ ! -e /usr/sbin/policy-rc.d ]; then
	printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
	chmod 755 /usr/sbin/policy-rc.d
	trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
