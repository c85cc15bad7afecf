#!/bin/bash
# Kairan appliance installer for Debian 12. Idempotent: run it again after an upgrade or to
# change the relay settings; existing secrets, configuration and the store are never replaced.
#
#   sudo provisioning/install.sh --relay-host relay.example.jp --relay-addr 203.0.113.10 \
#        --relay-listen-port 18443 --relay-known-hosts relay_known_hosts \
#        --recovery-pub recovery.pub --line-channel-secret-file secret.txt \
#        --line-channel-access-token-file token.txt --staff-net 192.168.10.0/24
#
# Options (all optional; see docs/appliance.md):
#   --root DIR              install into DIR instead of / (tests; nothing is enabled or started)
#   --insecure-dev          allow running without systemd-creds: secrets are stored PLAIN
#   --skip-venv             do not create the Python venv under /opt/kairan (tests); with
#                           --python, that interpreter (which has Kairan) creates the store
#   --no-store              do not create an empty store (a backup is restored next)
#   --source DIR | --wheel FILE   what to pip-install (default: this checkout; --wheel installs
#                           offline from the wheel's folder, a wheelhouse with all dependencies)
#   --python PYTHON         interpreter for the venv (default python3)
#   --relay-host HOST --relay-addr ADDR (repeatable) --relay-ssh-port N (22)
#   --relay-user NAME (kairan-relay) --relay-listen-port N --relay-known-hosts FILE
#   --staff-net CIDR (repeatable; ssh from these networks only; default: no inbound at all)
#   --mail-addr ADDR (repeatable) --mail-ports LIST (465,587,993): the city's SMTP relay and
#                           registration mailbox; the daemon may reach only these (mail channel)
#   --kiosk-printer ADDR (repeatable) --kiosk-printer-port N (9100): the kiosk's network
#                           receipt printer; the kiosk user may reach only these (same-day queue)
#   --bot-user-id ID        LINE bot user id (webhook destination)
#   --line-channel-secret-file FILE --line-channel-access-token-file FILE
#   --mail-smtp-password-file FILE --mail-imap-password-file FILE: the mail channel's
#                           passwords (sealed like the LINE secrets; empty until given)
#   --recovery-pub FILE     the municipality's backup recovery PUBLIC key
set -euo pipefail
umask 022

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)

ROOT=/
insecure_dev=0
skip_venv=0
no_store=0
source_dir=$repo
source_given=0
wheel=""
python=python3
python_given=0
relay_host=""
relay_addrs=()
relay_ssh_port=22
ssh_port_given=0
relay_user=kairan-relay
relay_listen_port=""
relay_known_hosts=""
staff_nets=()
mail_addrs=()
mail_ports=""
printer_addrs=()
printer_port=""
bot_user_id=""
line_secret_file=""
line_token_file=""
mail_smtp_file=""
mail_imap_file=""
recovery_pub=""

die() { echo "install.sh: error: $*" >&2; exit 1; }
note() { echo "install.sh: $*"; }
need_value() { if [ $# -lt 2 ] || [ -z "$2" ]; then die "$1 needs a value"; fi; }

while [ $# -gt 0 ]; do
  case $1 in
    --root) need_value "$@"; ROOT=$2; shift 2 ;;
    --insecure-dev) insecure_dev=1; shift ;;
    --skip-venv) skip_venv=1; shift ;;
    --no-store) no_store=1; shift ;;
    --source) need_value "$@"; source_dir=$2; source_given=1; shift 2 ;;
    --wheel) need_value "$@"; wheel=$2; shift 2 ;;
    --python) need_value "$@"; python=$2; python_given=1; shift 2 ;;
    --relay-host) need_value "$@"; relay_host=$2; shift 2 ;;
    --relay-addr) need_value "$@"; relay_addrs+=("$2"); shift 2 ;;
    --relay-ssh-port) need_value "$@"; relay_ssh_port=$2; ssh_port_given=1; shift 2 ;;
    --relay-user) need_value "$@"; relay_user=$2; shift 2 ;;
    --relay-listen-port) need_value "$@"; relay_listen_port=$2; shift 2 ;;
    --relay-known-hosts) need_value "$@"; relay_known_hosts=$2; shift 2 ;;
    --staff-net) need_value "$@"; staff_nets+=("$2"); shift 2 ;;
    --mail-addr) need_value "$@"; mail_addrs+=("$2"); shift 2 ;;
    --mail-ports) need_value "$@"; mail_ports=$2; shift 2 ;;
    --kiosk-printer) need_value "$@"; printer_addrs+=("$2"); shift 2 ;;
    --kiosk-printer-port) need_value "$@"; printer_port=$2; shift 2 ;;
    --bot-user-id) need_value "$@"; bot_user_id=$2; shift 2 ;;
    --line-channel-secret-file) need_value "$@"; line_secret_file=$2; shift 2 ;;
    --line-channel-access-token-file) need_value "$@"; line_token_file=$2; shift 2 ;;
    --recovery-pub) need_value "$@"; recovery_pub=$2; shift 2 ;;
    --mail-smtp-password-file) need_value "$@"; mail_smtp_file=$2; shift 2 ;;
    --mail-imap-password-file) need_value "$@"; mail_imap_file=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/{/^set -euo/d;p}' "$0"; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done

is_port() { case $1 in ''|*[!0-9]*) return 1 ;; *) [ "$1" -ge 1 ] && [ "$1" -le 65535 ] ;; esac; }
is_port "$relay_ssh_port" || die "--relay-ssh-port must be a port number"
[ -z "$relay_listen_port" ] || is_port "$relay_listen_port" || die "--relay-listen-port must be a port number"
case $bot_user_id in ''|U[0-9a-f]*) ;; *) die "--bot-user-id must look like U followed by hex digits" ;; esac
case $bot_user_id in *[!Ua-f0-9]*) die "--bot-user-id must look like U followed by hex digits" ;; esac
case $relay_host in *[!A-Za-z0-9.:-]*) die "--relay-host must be a host name or address" ;; esac
case $relay_user in ''|*[!a-z0-9_-]*) die "--relay-user must be a plain user name" ;; esac
for a in "${relay_addrs[@]}" "${staff_nets[@]}" "${mail_addrs[@]}" "${printer_addrs[@]}"; do
  case $a in ''|*[!0-9A-Fa-f.:/]*) die "not an IP address or network: $a" ;; esac
done
for p in ${mail_ports//,/ }; do is_port "$p" || die "--mail-ports must be port numbers separated by commas"; done
[ -z "$printer_port" ] || is_port "$printer_port" || die "--kiosk-printer-port must be a port number"

[ "$(id -u)" -eq 0 ] || die "run as root (files are owned by the service users)"
ROOT=$(cd "$ROOT" 2>/dev/null && pwd) || die "--root: no such directory"
R=${ROOT%/}   # "" for the real root, so "$R/etc" is always right

# --- remembered firewall options -----------------------------------------------------------------
# A re-run without --relay-addr / --staff-net / --relay-ssh-port keeps the previous values.
options_file="$R/etc/kairan/install-options"
if [ -r "$options_file" ]; then
  old_relay=(); old_staff=(); old_mail=(); old_printer=()
  while IFS='=' read -r key value; do
    case $key in
      relay_addr) old_relay+=("$value") ;;
      staff_net) old_staff+=("$value") ;;
      mail_addr) old_mail+=("$value") ;;
      mail_ports) [ -n "$mail_ports" ] || mail_ports=$value ;;
      printer_addr) old_printer+=("$value") ;;
      printer_port) [ -n "$printer_port" ] || printer_port=$value ;;
      relay_ssh_port) [ "$ssh_port_given" -eq 1 ] || relay_ssh_port=$value ;;
    esac
  done < "$options_file"
  [ ${#relay_addrs[@]} -gt 0 ] || relay_addrs=("${old_relay[@]}")
  [ ${#staff_nets[@]} -gt 0 ] || staff_nets=("${old_staff[@]}")
  [ ${#mail_addrs[@]} -gt 0 ] || mail_addrs=("${old_mail[@]}")
  [ ${#printer_addrs[@]} -gt 0 ] || printer_addrs=("${old_printer[@]}")
fi
mail_ports=${mail_ports:-465,587,993}
printer_port=${printer_port:-9100}

# --- secrets need systemd-creds ----------------------------------------------------------------
seal_plain=0
if ! command -v systemd-creds >/dev/null 2>&1; then
  if [ "$insecure_dev" -eq 1 ]; then
    seal_plain=1
    note "WARNING: systemd-creds not found; --insecure-dev stores secrets UNENCRYPTED in /etc/credstore/kairan"
  else
    die "systemd-creds is required to seal the secrets (Debian 12: systemd >= 250). Use --insecure-dev only on a throwaway development machine."
  fi
fi
if [ -n "$R" ]; then
  # A scratch root gets its own host key, never this machine's (and never the TPM).
  export SYSTEMD_CREDENTIAL_SECRET="$R/var/lib/systemd/credential.secret"
  mkdir -p "$R/var/lib/systemd"
  with_key=host
else
  with_key=auto
fi

# --- users and groups (sysusers.d) -------------------------------------------------------------
install -d -m 0755 "$R/etc/sysusers.d" "$R/etc/tmpfiles.d" "$R/etc/systemd/system"
install -m 0644 "$repo/systemd/kairan.sysusers" "$R/etc/sysusers.d/kairan.conf"
install -m 0644 "$repo/systemd/kairan.tmpfiles" "$R/etc/tmpfiles.d/kairan.conf"
if command -v systemd-sysusers >/dev/null 2>&1; then
  if [ -n "$R" ]; then
    systemd-sysusers --root="$R" "$R/etc/sysusers.d/kairan.conf" >/dev/null
  else
    systemd-sysusers /etc/sysusers.d/kairan.conf >/dev/null
  fi
elif [ -z "$R" ]; then
  getent group kairan-staff >/dev/null || groupadd --system kairan-staff
  getent passwd kairan >/dev/null || useradd --system --user-group --home-dir /var/lib/kairan --shell /usr/sbin/nologin kairan
  getent passwd kairan-tunnel >/dev/null || useradd --system --user-group --home-dir /nonexistent --shell /usr/sbin/nologin kairan-tunnel
  getent passwd kairan-kiosk >/dev/null || useradd --system --user-group --home-dir /nonexistent --shell /usr/sbin/nologin kairan-kiosk
  getent passwd kairan-board >/dev/null || useradd --system --user-group --home-dir /nonexistent --shell /usr/sbin/nologin kairan-board
  usermod -aG kairan kairan-tunnel
  usermod -aG kairan-staff kairan
  usermod -aG kairan-staff kairan-kiosk
  usermod -aG kairan-staff kairan-board
else
  die "systemd-sysusers is needed to create users inside --root"
fi

uid_of() { awk -F: -v n="$1" '$1 == n { print $3 }' "$R/etc/passwd"; }
gid_of() { awk -F: -v n="$1" '$1 == n { print $3 }' "$R/etc/group"; }
kairan_uid=$(uid_of kairan); tunnel_uid=$(uid_of kairan-tunnel); kiosk_uid=$(uid_of kairan-kiosk)
kairan_gid=$(gid_of kairan); tunnel_gid=$(gid_of kairan-tunnel)
if [ -z "$kairan_uid" ] || [ -z "$tunnel_uid" ] || [ -z "$kiosk_uid" ] || [ -z "$(gid_of kairan-staff)" ]; then
  die "the users kairan / kairan-tunnel / kairan-kiosk / group kairan-staff were not created"
fi

# --- directories (the same as systemd/kairan.tmpfiles) ------------------------------------------
install -d -m 0750 -o 0 -g "$kairan_gid" "$R/etc/kairan" "$R/etc/kairan/tls"
install -d -m 0755 -o 0 -g 0 "$R/etc/kairan/nftables"
install -d -m 0700 -o 0 -g 0 "$R/etc/credstore.encrypted" "$R/etc/credstore.encrypted/kairan"
install -d -m 0700 -o "$kairan_uid" -g "$kairan_gid" "$R/var/lib/kairan" "$R/var/backups/kairan"
install -d -m 0755 -o 0 -g 0 "$R/opt/kairan" "$R/opt/kairan/libexec" "$R/opt/kairan/share/doc"

# --- the program ----------------------------------------------------------------------------------
# A re-run (e.g. to rotate a key) keeps the installed program unless --source or --wheel asks
# for an upgrade: the firewall gives root no route to PyPI once it is loaded.
if [ "$skip_venv" -eq 0 ] && [ -x "$R/opt/kairan/bin/kairand" ] && [ "$source_given" -eq 0 ] \
   && [ -z "$wheel" ]; then
  note "Kairan is already installed in /opt/kairan (upgrade with --wheel FILE)"
elif [ "$skip_venv" -eq 0 ]; then
  [ -x "$R/opt/kairan/bin/python" ] || "$python" -m venv "$R/opt/kairan"
  if [ -n "$wheel" ]; then
    # Offline: the wheel's folder is a wheelhouse with every dependency (`pip wheel -w DIR .`
    # on a build machine). The appliance's firewall does not let root reach PyPI.
    "$R/opt/kairan/bin/python" -m pip install --quiet --upgrade --no-index \
      --find-links "$(dirname "$wheel")" "$wheel"
  else
    "$R/opt/kairan/bin/python" -m pip install --quiet --upgrade "$source_dir"
  fi
else
  note "--skip-venv: /opt/kairan/bin is not populated"
fi
install -m 0755 "$repo/provisioning/kairan-tunnel" "$R/opt/kairan/libexec/kairan-tunnel"
install -m 0755 "$repo/provisioning/kairanctl-with-credentials" "$R/opt/kairan/libexec/kairanctl-with-credentials"
for doc in "運用マニュアル.md:operations-manual.ja.md" "appliance.md:appliance.md" \
           "threat-model.md:threat-model.md"; do
  src=${doc%%:*}; dst=${doc##*:}
  if [ -f "$repo/docs/$src" ]; then install -m 0644 "$repo/docs/$src" "$R/opt/kairan/share/doc/$dst"; fi
done
install -m 0644 "$repo/provisioning/relay/README.md" "$R/opt/kairan/share/doc/relay-README.md"

# --- configuration (written once) -------------------------------------------------------------------
config="$R/etc/kairan/kairan.toml"
if [ ! -e "$config" ]; then
  sed "s/@BOT_USER_ID@/$bot_user_id/" "$repo/provisioning/kairan.toml.template" > "$config.new"
  chown 0:"$kairan_gid" "$config.new"; chmod 0640 "$config.new"
  mv "$config.new" "$config"
  note "wrote /etc/kairan/kairan.toml"
fi

tunnel_env="$R/etc/kairan/tunnel.env"
if [ -n "$relay_host" ] || [ ! -e "$tunnel_env" ]; then
  {
    echo "# Settings for kairan-tunnel.service (written by install.sh; see docs/appliance.md)."
    echo "KAIRAN_RELAY_HOST=${relay_host}"
    echo "KAIRAN_RELAY_SSH_PORT=${relay_ssh_port}"
    echo "KAIRAN_RELAY_USER=${relay_user}"
    echo "KAIRAN_RELAY_LISTEN_PORT=${relay_listen_port}"
    echo "KAIRAN_WEBHOOK_SOCKET=/run/kairan/webhook.sock"
    echo "KAIRAN_KNOWN_HOSTS=/etc/kairan/relay_known_hosts"
  } > "$tunnel_env.new"
  chown 0:"$tunnel_gid" "$tunnel_env.new"; chmod 0640 "$tunnel_env.new"
  if cmp -s "$tunnel_env.new" "$tunnel_env" 2>/dev/null; then rm -f "$tunnel_env.new"; else mv "$tunnel_env.new" "$tunnel_env"; fi
fi
if [ -n "$relay_known_hosts" ]; then
  install -m 0644 -o 0 -g 0 "$relay_known_hosts" "$R/etc/kairan/relay_known_hosts"
elif [ ! -e "$R/etc/kairan/relay_known_hosts" ]; then
  note "no --relay-known-hosts: the tunnel stays down until /etc/kairan/relay_known_hosts holds the relay's host key"
fi
if [ -n "$recovery_pub" ]; then
  grep -q "BEGIN PUBLIC KEY" "$recovery_pub" || die "--recovery-pub is not a PEM public key"
  install -m 0644 -o 0 -g 0 "$recovery_pub" "$R/etc/kairan/recovery.pub"
elif [ ! -e "$R/etc/kairan/recovery.pub" ]; then
  note "no --recovery-pub: backups fail until /etc/kairan/recovery.pub exists (kairanctl backup keygen)"
fi

{
  echo "# Firewall options remembered by install.sh (edit by re-running it with new options)."
  echo "relay_ssh_port=$relay_ssh_port"
  for a in "${relay_addrs[@]}"; do echo "relay_addr=$a"; done
  for a in "${staff_nets[@]}"; do echo "staff_net=$a"; done
  for a in "${mail_addrs[@]}"; do echo "mail_addr=$a"; done
  echo "mail_ports=$mail_ports"
  for a in "${printer_addrs[@]}"; do echo "printer_addr=$a"; done
  echo "printer_port=$printer_port"
} > "$options_file.new"
chmod 0644 "$options_file.new"
if cmp -s "$options_file.new" "$options_file"; then rm -f "$options_file.new"; else mv "$options_file.new" "$options_file"; fi

# --- secrets ---------------------------------------------------------------------------------------
credstore="$R/etc/credstore.encrypted/kairan"
if [ "$seal_plain" -eq 1 ]; then
  credstore="$R/etc/credstore/kairan"
  install -d -m 0700 -o 0 -g 0 "$R/etc/credstore" "$credstore"
fi
# seal ID: the value on stdin becomes $credstore/ID (0600 root), unless it already exists.
seal() {
  local id=$1 out="$credstore/$1"
  if [ "$seal_plain" -eq 1 ]; then
    (umask 077; cat > "$out.new")
  else
    systemd-creds encrypt --name="$id" --with-key="$with_key" - "$out.new"
  fi
  chown 0:0 "$out.new"; chmod 0600 "$out.new"; mv "$out.new" "$out"
  note "sealed secret $id"
}
random_b64() { head -c 32 /dev/urandom | base64 -w0; }
[ -e "$credstore/db-key" ] || head -c 32 /dev/urandom | od -An -tx1 -v | tr -d ' \n' | seal db-key
# An Ed25519 private key is any 32 random bytes (kairand.keys.secrets.signing_key).
[ -e "$credstore/signing-key" ] || random_b64 | seal signing-key
[ -e "$credstore/receipt-hmac-key" ] || random_b64 | seal receipt-hmac-key
if [ -n "$line_secret_file" ]; then
  tr -d '\r\n' < "$line_secret_file" | seal line-channel-secret
elif [ ! -e "$credstore/line-channel-secret" ]; then
  note "no --line-channel-secret-file: kairand will not start until line-channel-secret is sealed"
fi
if [ -n "$line_token_file" ]; then
  tr -d '\r\n' < "$line_token_file" | seal line-channel-access-token
elif [ ! -e "$credstore/line-channel-access-token" ]; then
  note "no --line-channel-access-token-file: kairand will not start until it is sealed"
fi
# The mail channel's passwords: an empty placeholder keeps the unit startable while
# [mail] enabled = false; kairand refuses to start the mail channel with an empty one.
for pair in "mail-smtp-password:${mail_smtp_file:-}" "mail-imap-password:${mail_imap_file:-}"; do
  id=${pair%%:*} file=${pair#*:}
  if [ -n "$file" ]; then
    tr -d '\r\n' < "$file" | seal "$id"
  elif [ ! -e "$credstore/$id" ]; then
    printf '' | seal "$id"
  fi
done
if [ ! -e "$credstore/tunnel-ssh-key" ]; then
  keydir=$(mktemp -d)
  ssh-keygen -q -t ed25519 -N "" -C "kairan-tunnel@$(hostname -s 2>/dev/null || echo appliance)" -f "$keydir/key"
  seal tunnel-ssh-key < "$keydir/key"
  install -m 0644 -o 0 -g 0 "$keydir/key.pub" "$R/etc/kairan/tunnel-ssh-key.pub"
  rm -rf "$keydir"
fi

# --- the store (created once, empty, with the sealed db-key) ----------------------------------
# kairand refuses to start without its store, so that a lost disk is never silently replaced
# by an empty one. The key goes to Python on stdin (never in argv or the environment).
store_python=""
if [ "$skip_venv" -eq 0 ]; then
  store_python="$R/opt/kairan/bin/python"
elif [ "$python_given" -eq 1 ]; then
  store_python=$python
fi
if [ -e "$R/var/lib/kairan/kairan.db" ]; then
  :
elif [ "$no_store" -eq 1 ]; then
  note "--no-store: restore a backup next (kairanctl backup restore FILE --recovery-key KEY)"
elif [ -z "$store_python" ]; then
  note "--skip-venv without --python: the store is not created (kairand will not start)"
else
  read_db_key() {
    if [ "$seal_plain" -eq 1 ]; then cat "$credstore/db-key"
    else systemd-creds decrypt --name=db-key "$credstore/db-key" -; fi
  }
  read_db_key | "$store_python" -c '
import sys
from pathlib import Path
import keyring
from kairand.config import load_config
from kairand.keys.backends import SERVICE, MemoryKeyring
from kairand.store.bootstrap import open_store
config = load_config(Path(sys.argv[1]))
daemon = config.daemon.model_copy(update={"state_dir": Path(sys.argv[2])})
config = config.model_copy(update={"daemon": daemon})
backend = MemoryKeyring()
backend.set_password(SERVICE, "db-key", sys.stdin.read().strip())
keyring.set_keyring(backend)
open_store(config, create=True).close()
' "$config" "$R/var/lib/kairan"
  for f in "$R"/var/lib/kairan/kairan.db*; do chown "$kairan_uid:$kairan_gid" "$f"; chmod 0600 "$f"; done
  note "created the empty store /var/lib/kairan/kairan.db"
fi

# --- systemd units -------------------------------------------------------------------------------
# The kiosk and board units are templates (the instance is the console); they are not enabled:
# see docs/運用マニュアル.md (番号札) for when and how.
for unit in kairand.service kairan-tunnel.service kairan-backup.service kairan-backup.timer \
            kairan-kiosk@.service kairan-board@.service; do
  install -m 0644 -o 0 -g 0 "$repo/systemd/$unit" "$R/etc/systemd/system/$unit"
done
if [ "$seal_plain" -eq 1 ]; then
  # Without systemd-creds the same credential IDs come from plain files (development only).
  for unit in kairand kairan-backup kairan-tunnel; do
    dropin="$R/etc/systemd/system/$unit.service.d"
    install -d -m 0755 "$dropin"
    {
      echo "# --insecure-dev: secrets are plain files. Never on a real appliance."
      echo "[Service]"
      echo "LoadCredentialEncrypted="
      grep '^LoadCredentialEncrypted=' "$repo/systemd/$unit.service" \
        | sed 's#^LoadCredentialEncrypted=#LoadCredential=#; s#/etc/credstore.encrypted/#/etc/credstore/#'
    } > "$dropin/insecure-dev.conf"
    chmod 0644 "$dropin/insecure-dev.conf"
  done
fi

# --- firewall ------------------------------------------------------------------------------------
existing_uids() {
  local name uid out=()
  for name in "$@"; do uid=$(uid_of "$name"); [ -n "$uid" ] && out+=("$uid"); done
  local IFS=,; echo "${out[*]}"
}
elements() {
  [ $# -gt 0 ] || return 0
  local IFS=,; echo "elements = { $* }"
}
relay_v4=(); relay_v6=(); staff_v4=(); staff_v6=(); mail_v4=(); mail_v6=(); printer_v4=(); printer_v6=()
for a in "${mail_addrs[@]}"; do case $a in *:*) mail_v6+=("$a") ;; *) mail_v4+=("$a") ;; esac; done
for a in "${printer_addrs[@]}"; do case $a in *:*) printer_v6+=("$a") ;; *) printer_v4+=("$a") ;; esac; done
for a in "${relay_addrs[@]}"; do case $a in *:*) relay_v6+=("$a") ;; *) relay_v4+=("$a") ;; esac; done
for a in "${staff_nets[@]}"; do case $a in *:*) staff_v6+=("$a") ;; *) staff_v4+=("$a") ;; esac; done
dns_uids=$(existing_uids root kairan kairan-tunnel systemd-resolve _apt)
ntp_uids=$(existing_uids root systemd-timesync _chrony ntpsec)
apt_uids=$(existing_uids _apt)
nft_out="$R/etc/kairan/nftables/kairan.nft"
sed -e "s|@RELAY_V4_ELEMENTS@|$(elements "${relay_v4[@]}")|" \
    -e "s|@RELAY_V6_ELEMENTS@|$(elements "${relay_v6[@]}")|" \
    -e "s|@STAFF_V4_ELEMENTS@|$(elements "${staff_v4[@]}")|" \
    -e "s|@STAFF_V6_ELEMENTS@|$(elements "${staff_v6[@]}")|" \
    -e "s|@MAIL_V4_ELEMENTS@|$(elements "${mail_v4[@]}")|" \
    -e "s|@MAIL_V6_ELEMENTS@|$(elements "${mail_v6[@]}")|" \
    -e "s|@MAIL_PORTS@|$mail_ports|g" \
    -e "s|@PRINTER_V4_ELEMENTS@|$(elements "${printer_v4[@]}")|" \
    -e "s|@PRINTER_V6_ELEMENTS@|$(elements "${printer_v6[@]}")|" \
    -e "s|@PRINTER_PORT@|$printer_port|g" -e "s|@KIOSK_UID@|$kiosk_uid|g" \
    -e "s|@DNS_UIDS@|${dns_uids:-0}|g" -e "s|@NTP_UIDS@|${ntp_uids:-0}|g" \
    -e "s|@KAIRAN_UID@|$kairan_uid|g" -e "s|@TUNNEL_UID@|$tunnel_uid|g" \
    -e "s|@RELAY_SSH_PORT@|$relay_ssh_port|g" \
    "$repo/provisioning/nftables/kairan.nft.in" > "$nft_out.new"
if [ -n "$apt_uids" ]; then
  sed -i "s|@APT_UIDS@|$apt_uids|" "$nft_out.new"
else
  sed -i '/@APT_UIDS@/d' "$nft_out.new"
fi
chmod 0644 "$nft_out.new"; mv "$nft_out.new" "$nft_out"
if [ -e "$R/etc/nftables.conf" ] && ! grep -q '/etc/kairan/nftables/kairan.nft' "$R/etc/nftables.conf"; then
  [ -e "$R/etc/nftables.conf.before-kairan" ] || cp -p "$R/etc/nftables.conf" "$R/etc/nftables.conf.before-kairan"
fi
printf '#!/usr/sbin/nft -f\n# Written by Kairan install.sh (the previous file: nftables.conf.before-kairan).\nflush ruleset\ninclude "/etc/kairan/nftables/kairan.nft"\n' > "$R/etc/nftables.conf"
chmod 0755 "$R/etc/nftables.conf"

# --- sshd: staff get the TUI only ----------------------------------------------------------------
install -d -m 0755 "$R/etc/ssh/sshd_config.d"
install -m 0644 -o 0 -g 0 "$repo/provisioning/sshd/kairan-staff.conf" "$R/etc/ssh/sshd_config.d/kairan-staff.conf"

# --- security updates (S23): Debian security suite only, daily, through the _apt egress rule -----
install -d -m 0755 "$R/etc/apt/apt.conf.d"
install -m 0644 -o 0 -g 0 "$repo/provisioning/apt/20auto-upgrades" "$R/etc/apt/apt.conf.d/20auto-upgrades"
install -m 0644 -o 0 -g 0 "$repo/provisioning/apt/52kairan-unattended-upgrades" \
  "$R/etc/apt/apt.conf.d/52kairan-unattended-upgrades"

# --- activate (real root only) ---------------------------------------------------------------
if [ -z "$R" ] && [ -d /run/systemd/system ]; then
  systemd-tmpfiles --create /etc/tmpfiles.d/kairan.conf
  nft -c -f /etc/nftables.conf || die "the generated nftables ruleset does not load"
  sshd -t || die "sshd rejects its configuration with the Kairan drop-in"
  systemctl daemon-reload
  systemctl enable --now nftables.service
  systemctl reload ssh.service || true
  systemctl enable kairand.service kairan-backup.timer
  if command -v unattended-upgrade >/dev/null 2>&1; then
    systemctl enable apt-daily.timer apt-daily-upgrade.timer || true
  else
    note "unattended-upgrades is not installed: security updates are NOT applied automatically (apt-get install unattended-upgrades)"
  fi
  if [ -n "$relay_host" ] && [ -n "$relay_listen_port" ]; then
    systemctl enable kairan-tunnel.service
  fi
  note "enabled kairand, kairan-backup.timer and nftables; start with: systemctl start kairand kairan-tunnel"
else
  note "installed into $ROOT (nothing enabled or started)"
fi
if [ -e "$R/etc/kairan/tunnel-ssh-key.pub" ] && [ -n "$relay_listen_port" ]; then
  note "authorized_keys line for the relay (/etc/ssh/kairan-relay/authorized_keys):"
  echo "restrict,port-forwarding,permitlisten=\"127.0.0.1:${relay_listen_port}\" $(cat "$R/etc/kairan/tunnel-ssh-key.pub")"
fi
