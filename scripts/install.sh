#!/usr/bin/env bash
# Installs the wg-ollama gateway on a Debian 12 machine (run as root):
#
#   scripts/install.sh [--prefix DIR] [--no-systemd] [--guard]
#
# With --guard it installs a GPU host instead: the app, wg-ollama-guard.service
# and the drop-in that binds Ollama to 127.0.0.1 (no WireGuard, no firewall,
# no sysctl).
#
# 1. system packages (wireguard-tools wireguard-go iptables ipset conntrack
#    iproute2, and nodejs npm when there is no node), only those missing
# 2. npm ci (only when node_modules does not match the lockfile) and
#    npm run build in this repository
# 3. the app into PREFIX (default /opt/wg-ollama): package files, bin/, dist/,
#    web/ and the production node_modules; replaced as a whole on re-runs
# 4. /usr/local/bin/wg-ollama, a wrapper that runs PREFIX/bin/wg-ollama.js
#    with the node found now (absolute path: no dependence on PATH)
# 5. /etc/sysctl.d/60-wg-ollama.conf (net.ipv4.ip_forward=1), applied now
# 6. unless --no-systemd: the units into /etc/systemd/system and a tmpfiles.d
#    entry; when systemd is running also daemon-reload, enable both units and
#    restart the daemon if it was running (an upgrade; the tunnel survives)
#
# Idempotent: running it again updates the installation in place.
set -euo pipefail

readonly MIN_NODE=20.5 # package.json "engines"
APT_PACKAGES=(wireguard-tools wireguard-go iptables ipset conntrack iproute2)
readonly BIN_LINK=/usr/local/bin/wg-ollama
readonly SYSCTL_FILE=/etc/sysctl.d/60-wg-ollama.conf
readonly UNIT_DIR=/etc/systemd/system
readonly TMPFILES_FILE=/etc/tmpfiles.d/wg-ollama.conf
UNITS=(wg-ollama-firewall.service wg-ollama.service)
# The daily backup: installed with the gateway units, its timer enabled (it does nothing without a passphrase file).
readonly BACKUP_UNITS=(wg-ollama-backup.service wg-ollama-backup.timer)
readonly OLLAMA_DROPIN=/etc/systemd/system/ollama.service.d/wg-ollama.conf
readonly CONFIG_FILE=/etc/wg-ollama/config.json
# First line of the wrapper and name of the marker file in PREFIX: what this
# script may replace without asking.
readonly MARKER=.wg-ollama-install
readonly WRAPPER_TAG='# wg-ollama wrapper, written by scripts/install.sh'

say() { printf 'install.sh: %s\n' "$*"; }
warn() { printf 'install.sh: warning: %s\n' "$*" >&2; }
die() { printf 'install.sh: error: %s\n' "$*" >&2; exit 1; }

usage() {
  cat <<'EOF'
Usage: scripts/install.sh [--prefix DIR] [--no-systemd] [--guard] [--help]

Installs the wg-ollama gateway on Debian 12. Run as root from a checkout.

  --prefix DIR   where the app goes (default /opt/wg-ollama)
  --no-systemd   do not install the systemd units and tmpfiles.d entry
  --guard        install a GPU host: wg-ollama-guard.service and an Ollama
                 drop-in binding Ollama to 127.0.0.1 (no gateway parts)
  --help         show this help

It installs missing system packages, builds the app, installs it to DIR,
writes /usr/local/bin/wg-ollama and /etc/sysctl.d/60-wg-ollama.conf
(net.ipv4.ip_forward=1), and installs and enables wg-ollama-firewall.service
and wg-ollama.service. Running it again updates the installation.
EOF
}

prefix=/opt/wg-ollama
with_systemd=1
role=gateway
while (($#)); do
  case $1 in
    --prefix)
      (($# >= 2)) || { usage >&2; exit 2; }
      prefix=$2
      shift 2
      ;;
    --prefix=*)
      prefix=${1#--prefix=}
      shift
      ;;
    --no-systemd)
      with_systemd=0
      shift
      ;;
    --guard)
      role=guard
      shift
      ;;
    -h | --help)
      usage
      exit 0
      ;;
    *)
      printf 'install.sh: unknown option "%s"\n' "$1" >&2
      usage >&2
      exit 2
      ;;
  esac
done

# The prefix ends up in a shell wrapper and is replaced as a whole, so keep it
# to plain path characters and away from system directories.
while [[ $prefix == */ && $prefix != / ]]; do prefix=${prefix%/}; done
if [[ ! $prefix =~ ^/[A-Za-z0-9._/-]+$ || $prefix == *..* || $prefix == */./* || $prefix == */. ]]; then
  printf 'install.sh: --prefix must be an absolute path of letters, digits and . _ - / (got "%s")\n' "$prefix" >&2
  exit 2
fi
case $prefix in
  / | /bin | /boot | /dev | /etc | /home | /lib | /lib64 | /opt | /proc | /root | /run | /sbin | /srv | /sys | /tmp | /usr | /usr/* | /var | /var/lib | /var/lib/wg-ollama | /etc/*)
    printf 'install.sh: refusing --prefix %s: it must be a directory of its own, like /opt/wg-ollama\n' "$prefix" >&2
    exit 2
    ;;
esac

((EUID == 0)) || die "run as root (it installs packages and writes to /etc, /usr/local and $prefix)"

repo=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)
[[ -f $repo/package.json && -f $repo/package-lock.json && -f $repo/bin/wg-ollama.js ]] ||
  die "$repo does not look like a wg-ollama checkout (package.json, package-lock.json, bin/wg-ollama.js)"

umask 022
export DEBIAN_FRONTEND=noninteractive

# ---- versions ---------------------------------------------------------------

# Leading "MAJOR.MINOR.PATCH" of a version string ("1:18.19.0+dfsg-6" -> 18.19.0).
numeric_version() {
  local v=${1#*:}
  v=${v#v}
  if [[ $v =~ ^[0-9]+(\.[0-9]+)* ]]; then
    printf '%s\n' "${BASH_REMATCH[0]}"
  else
    return 1
  fi
}

# version_ge A B: A >= B, comparing dot-separated numbers.
version_ge() {
  local -a a b
  local i
  IFS=. read -r -a a <<<"$1"
  IFS=. read -r -a b <<<"$2"
  for i in 0 1 2; do
    ((10#${a[i]:-0} > 10#${b[i]:-0})) && return 0
    ((10#${a[i]:-0} < 10#${b[i]:-0})) && return 1
  done
  return 0
}

node_too_old() {
  die "$1 is Node.js $2; wg-ollama needs $MIN_NODE or newer (Debian 12's own nodejs package is 18.x).
  Install Node.js 20+ system-wide (e.g. the NodeSource nodejs package, or the official
  binaries unpacked under /usr/local) so that 'node' is on root's PATH, then run this again."
}

# ---- system packages ----------------------------------------------------------

package_installed() {
  [[ $(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true) == installed ]]
}

install_packages() {
  local -a missing=()
  local p
  if ! command -v apt-get >/dev/null || ! command -v dpkg-query >/dev/null; then
    die "apt-get not found: this script targets Debian 12. Install ${APT_PACKAGES[*]} and Node.js $MIN_NODE+ yourself, then run it again"
  fi
  for p in "${APT_PACKAGES[@]}"; do
    package_installed "$p" || missing+=("$p")
  done

  local node_path want_node=0
  if node_path=$(command -v node); then
    local v
    v=$(numeric_version "$("$node_path" -p 'process.versions.node')") || die "cannot read the version of $node_path"
    version_ge "$v" "$MIN_NODE" || node_too_old "$node_path" "$v"
    command -v npm >/dev/null || missing+=(npm)
  else
    want_node=1
    missing+=(nodejs npm)
  fi

  if ((${#missing[@]} == 0)); then
    say "system packages: all present"
    return
  fi
  say "installing system packages: ${missing[*]}"
  apt-get update
  if ((want_node)); then
    # Check what apt would install before installing it: Debian 12 ships 18.x.
    local candidate
    candidate=$(apt-cache policy nodejs | awk '$1 == "Candidate:" { print $2 }')
    [[ -n $candidate && $candidate != '(none)' ]] ||
      die "there is no node and apt has no nodejs package; install Node.js $MIN_NODE+ and run this again"
    candidate=$(numeric_version "$candidate") || die "cannot parse the version of apt's nodejs package"
    version_ge "$candidate" "$MIN_NODE" || node_too_old "apt's nodejs package" "$candidate"
  fi
  apt-get install -y --no-install-recommends "${missing[@]}"
}

# ---- build ----------------------------------------------------------------------

# node_modules matches package.json/package-lock.json and its native addon
# loads with this node (a node upgrade to a new ABI needs a reinstall).
deps_ok() {
  [[ -d $1/node_modules ]] &&
    (cd -- "$1" && npm ls --all >/dev/null 2>&1) &&
    (cd -- "$1" && "$node" -e 'new (require("better-sqlite3"))(":memory:").close()' >/dev/null 2>&1)
}

build() {
  if deps_ok "$repo"; then
    say "dependencies in $repo/node_modules are up to date"
  else
    say "npm ci in $repo"
    (cd -- "$repo" && npm ci --no-audit --no-fund)
  fi
  say "npm run build in $repo"
  (cd -- "$repo" && npm run build)
  [[ -f $repo/dist/cli/main.js ]] || die "the build produced no dist/cli/main.js"
}

# ---- the app ----------------------------------------------------------------------

stage=''
old=''
cleanup() {
  if [[ -n $stage && -d $stage ]]; then rm -rf -- "$stage"; fi
  if [[ -n $old && -d $old ]]; then
    # Interrupted between the two renames: put the previous installation back.
    if [[ ! -e $prefix && -d $old/${prefix##*/} ]]; then mv -- "$old/${prefix##*/}" "$prefix"; fi
    rm -rf -- "$old"
  fi
}
trap cleanup EXIT

# PREFIX is replaced as a whole: only an empty directory or an earlier
# installation (marker file) may be there.
check_prefix() {
  if [[ -e $prefix || -L $prefix ]]; then
    if [[ -L $prefix || ! -d $prefix ]]; then die "$prefix exists and is not a directory"; fi
    if [[ ! -e $prefix/$MARKER && -n $(ls -A -- "$prefix") ]]; then
      die "$prefix exists and was not installed by this script (no $MARKER in it); choose another --prefix or remove it"
    fi
  fi
}

# Builds the new tree next to PREFIX, checks it, then swaps it in, so that a
# failed run leaves the previous installation untouched and a re-run leaves no
# stale files behind.
install_app() {
  local parent d version
  parent=$(dirname -- "$prefix")
  check_prefix
  mkdir -p -- "$parent"
  stage=$(mktemp -d -- "$parent/.wg-ollama-stage.XXXXXX")

  # cp -R without -p: files belong to root and get umask 022 modes, whoever
  # owns the checkout (a root daemon must not run code others can write).
  cp -- "$repo/package.json" "$repo/package-lock.json" "$stage/"
  for d in bin dist web node_modules; do
    if [[ -d $repo/$d ]]; then cp -R -- "$repo/$d" "$stage/$d"; fi
  done
  rm -rf -- "$stage/node_modules/.cache" "$stage/node_modules/.vite" "$stage/node_modules/.vitest"
  say "removing development dependencies from the installed copy"
  (cd -- "$stage" && npm prune --omit=dev --no-audit --no-fund >/dev/null)
  find "$stage/node_modules" -mindepth 1 -maxdepth 1 -type d -name '@*' -empty -delete
  if ! (cd -- "$stage" && "$node" -e 'new (require("better-sqlite3"))(":memory:").close()' >/dev/null 2>&1); then
    say "rebuilding native modules for $node"
    (cd -- "$stage" && npm rebuild --no-audit --no-fund)
  fi
  "$node" "$stage/bin/wg-ollama.js" --help >/dev/null || die "the staged copy in $stage does not run"
  # The guard reads its chat page (web/chat) at start and will not start without it.
  "$node" --input-type=module -e 'const { pathToFileURL } = await import("node:url"); (await import(pathToFileURL(process.argv[1]).href)).loadChatSite();' \
    "$stage/dist/guard/browser.js" || die "the staged copy in $stage has no complete web/chat (the guard's chat page)"
  version=$("$node" -p 'require(process.argv[1]).version' "$stage/package.json")
  printf 'wg-ollama %s\nsource %s\n' "$version" "$repo" >"$stage/$MARKER"
  chmod 0755 -- "$stage"

  if [[ -e $prefix ]]; then
    old=$(mktemp -d -- "$parent/.wg-ollama-old.XXXXXX")
    mv -- "$prefix" "$old/"
  fi
  mv -- "$stage" "$prefix"
  stage=''
  if [[ -n $old ]]; then rm -rf -- "$old"; fi
  old=''
  say "installed wg-ollama $version into $prefix"
}

# Writes FILE with CONTENT (mode MODE) unless it already has that content;
# returns 1 when nothing had to be written.
write_if_changed() {
  local file=$1 content=$2 mode=$3 tmp
  if [[ -f $file && ! -L $file ]] && [[ $(<"$file") == "${content%$'\n'}" ]]; then
    chmod "$mode" -- "$file"
    return 1
  fi
  mkdir -p -- "$(dirname -- "$file")"
  tmp=$(mktemp -- "$file.XXXXXX")
  printf '%s' "$content" >"$tmp"
  chmod "$mode" -- "$tmp"
  mv -f -- "$tmp" "$file"
  return 0
}

install_wrapper() {
  if [[ -e $BIN_LINK || -L $BIN_LINK ]]; then
    local ours=0
    if [[ -L $BIN_LINK ]]; then
      if [[ $(readlink -- "$BIN_LINK") == */wg-ollama.js ]]; then ours=1; fi
    elif [[ -f $BIN_LINK ]] && grep -qxF -- "$WRAPPER_TAG" "$BIN_LINK"; then
      ours=1
    fi
    ((ours)) || die "$BIN_LINK exists and is not wg-ollama's; remove it and run this again"
    # An older symlink install (npm link, npm install -g) becomes the wrapper.
    if [[ -L $BIN_LINK ]]; then rm -f -- "$BIN_LINK"; fi
  fi
  # $node and $prefix are plain paths (checked), safe inside single quotes.
  local content
  content=$(printf '#!/bin/sh\n%s\nexec '\''%s'\'' '\''%s/bin/wg-ollama.js'\'' "$@"\n' "$WRAPPER_TAG" "$node" "$prefix")
  if write_if_changed "$BIN_LINK" "$content"$'\n' 0755; then
    say "wrote $BIN_LINK (runs $prefix/bin/wg-ollama.js with $node)"
  else
    say "$BIN_LINK is up to date"
  fi
}

install_sysctl() {
  local content
  content='# wg-ollama: the gateway forwards tunnel traffic to the Ollama host.
# The wg-ollama units cannot change sysctls themselves (ProtectKernelTunables).
net.ipv4.ip_forward = 1
'
  if write_if_changed "$SYSCTL_FILE" "$content" 0644; then
    say "wrote $SYSCTL_FILE"
  fi
  if sysctl -q -p "$SYSCTL_FILE"; then
    say "net.ipv4.ip_forward = $(cat /proc/sys/net/ipv4/ip_forward)"
  else
    warn "could not apply $SYSCTL_FILE now (read-only /proc/sys?); it applies at the next boot, and wg-ollama serve refuses to run while net.ipv4.ip_forward is 0"
  fi
}

install_guard_systemd() {
  install -m 0644 -- "$repo/systemd/wg-ollama-guard.service" "$UNIT_DIR/wg-ollama-guard.service"
  mkdir -p -- "$(dirname -- "$OLLAMA_DROPIN")"
  install -m 0644 -- "$repo/systemd/ollama-loopback.conf" "$OLLAMA_DROPIN"
  say "installed wg-ollama-guard.service and $OLLAMA_DROPIN (Ollama on 127.0.0.1:11434)"
  if [[ ! -d /run/systemd/system ]]; then
    say "systemd is not running here: units installed but not enabled"
    return
  fi
  systemctl daemon-reload
  systemctl enable wg-ollama-guard.service
  if systemctl is-active --quiet ollama.service; then systemctl restart ollama.service; fi
  if systemctl is-active --quiet wg-ollama-guard.service; then systemctl restart wg-ollama-guard.service; fi
}

guard_next_steps() {
  printf '\nNext steps on this GPU host:\n'
  printf '  1. on the gateway: wg-ollama add-guard NAME --address THIS_HOST_IP --out DIR; copy DIR to /etc/wg-ollama/guard (mode 0700)\n'
  printf '  2. route the tunnel subnet back via the gateway (no NAT), e.g. ip route add 10.66.0.0/24 via GATEWAY_LAN_IP\n'
  printf '  3. systemctl start wg-ollama-guard\n'
  printf '  4. wg-ollama doctor --guard --config /etc/wg-ollama/guard/guard.json\n'
}

install_systemd() {
  local u
  mkdir -p -- "$UNIT_DIR" "$(dirname -- "$TMPFILES_FILE")"
  for u in "${UNITS[@]}" "${BACKUP_UNITS[@]}"; do
    install -m 0644 -- "$repo/systemd/$u" "$UNIT_DIR/$u"
  done
  install -m 0644 -- "$repo/systemd/wg-ollama-tmpfiles.conf" "$TMPFILES_FILE"
  say "installed ${UNITS[*]} ${BACKUP_UNITS[*]} into $UNIT_DIR and $TMPFILES_FILE"

  if [[ ! -d /run/systemd/system ]]; then
    say "systemd is not running here: units installed but not enabled"
    return
  fi
  systemctl daemon-reload
  systemd-tmpfiles --create -- "$TMPFILES_FILE"
  systemctl enable -- "${UNITS[@]}" wg-ollama-backup.timer
  if systemctl is-active --quiet wg-ollama.service; then
    # KillMode=process: the tunnel (wireguard-go or the kernel interface) stays up.
    systemctl restart wg-ollama.service
    say "restarted wg-ollama.service on the new version"
  fi
}

next_steps() {
  local n=1 systemd_up=0
  if ((with_systemd)) && [[ -d /run/systemd/system ]]; then systemd_up=1; fi
  printf '\nNext steps:\n'
  if [[ ! -e $CONFIG_FILE ]]; then
    printf '  %d. wg-ollama init --endpoint HOST:51820 --ollama-host IP\n' "$n"
    printf '     (HOST: the public name or address clients dial; IP: the GPU host running Ollama or the guard)\n'
    n=$((n + 1))
  fi
  if ((systemd_up)); then
    printf '  %d. systemctl start wg-ollama        (starts wg-ollama-firewall first)\n' "$n"
  elif ((with_systemd)); then
    printf '  %d. once systemd runs: systemctl daemon-reload && systemctl enable --now %s\n' "$n" "${UNITS[*]}"
  else
    printf '  %d. wg-ollama firewall-init && wg-ollama serve   (no systemd units installed)\n' "$n"
  fi
  n=$((n + 1))
  printf '  %d. wg-ollama doctor\n' "$n"
  n=$((n + 1))
  printf '  %d. on the GPU host, route the tunnel subnet back via this gateway (no NAT), e.g.\n' "$n"
  printf '     ip route add 10.66.0.0/24 via GATEWAY_LAN_IP\n'
}

# ---- main -------------------------------------------------------------------------

if [[ $role == guard ]]; then APT_PACKAGES=(iproute2); fi
check_prefix
install_packages
node=$(command -v node) || die "node is still not on PATH after installing packages"
command -v npm >/dev/null || die "npm is not on PATH"
case $node in
  /home/* | /root/*)
    msg="node is $node, inside a home directory, which the hardened units cannot see (ProtectHome=yes); install Node.js system-wide"
    if ((with_systemd)); then die "$msg"; else warn "$msg"; fi
    ;;
esac
[[ $node =~ ^/[A-Za-z0-9._/+-]+$ ]] || die "unexpected characters in the node path $node"
say "using $node (Node.js $("$node" -p 'process.versions.node'))"

build
install_app
install_wrapper
if [[ $role == guard ]]; then
  if ((with_systemd)); then install_guard_systemd; else say "--no-systemd: units not installed"; fi
  guard_next_steps
  exit 0
fi
install_sysctl
if ((with_systemd)); then
  install_systemd
else
  say "--no-systemd: units not installed"
fi
next_steps
