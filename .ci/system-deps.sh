#!/usr/bin/env bash
# Debian packages the test suite needs (real ssh for the tunnel test, shellcheck, nft; systemd's
# tools for the unit scores, credentials and sysusers; iproute2 for the firewall namespace test;
# age: a backup is opened with Debian's age alone; fonts-ipaexfont: the Japanese font in PDFs).
# Installs only what is missing; needs root (CI and the appliance build machine run as root).
set -euo pipefail
need=()
for pair in sshd:openssh-server ssh:openssh-client shellcheck:shellcheck nft:nftables curl:curl \
            systemd-analyze:systemd ip:iproute2 age:age; do
  cmd=${pair%%:*}; pkg=${pair##*:}
  command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ] || need+=("$pkg")
done
[ -f /usr/share/fonts/opentype/ipaexfont-gothic/ipaexg.ttf ] || need+=(fonts-ipaexfont)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "missing Debian packages: ${need[*]} (run as root or: sudo apt-get install ${need[*]})" >&2
  exit 1
fi
echo "installing Debian packages: ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
