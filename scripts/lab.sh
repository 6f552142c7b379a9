#!/usr/bin/env bash
# The wg-ollama test lab: network namespaces joined by bridges and veth pairs.
#
#   scripts/lab.sh up PREFIX     create PREFIX-gw, PREFIX-gpu, PREFIX-other, PREFIX-c1, PREFIX-c2
#   scripts/lab.sh host PREFIX NAME IP   (after up) one more LAN host PREFIX-NAME at IP/24, routing
#                                the tunnel subnet via the gateway (GPU hosts of a pool)
#   scripts/lab.sh down PREFIX   kill every process in PREFIX-* (by PID) and delete them
#
#   "internet"  PREFIX-c1 192.0.2.10, PREFIX-c2 192.0.2.11  --  PREFIX-gw 192.0.2.1 (bridge in gw)
#   "LAN"       PREFIX-gw 198.51.100.1, 2001:db8:1::1  --  PREFIX-gpu 198.51.100.10, 2001:db8:1::10,
#               PREFIX-other 198.51.100.20 (bridge in gw)
#
# The GPU host and the other LAN host route the tunnel subnet (10.66.0.0/16)
# back via the gateway: no NAT. Nothing here touches the root namespace.
set -euo pipefail

cmd=${1:-}
P=${2:-wgolab}
[[ $P =~ ^[a-z0-9]{1,8}$ ]] || { echo "lab: prefix must be 1-8 characters of a-z0-9" >&2; exit 2; }

ns() { ip netns exec "$1" "${@:2}"; }

# veth NS_A IF_A NS_B IF_B: a veth pair created inside NS_A with its peer moved to NS_B.
veth() {
  ns "$1" ip link add "$2" type veth peer name "$4"
  ns "$1" ip link set "$4" netns "$3"
}

up() {
  for n in gw gpu other c1 c2; do
    ip netns add "$P-$n"
    ns "$P-$n" ip link set lo up
  done
  ns "$P-gw" ip link add br-inet type bridge
  ns "$P-gw" ip link add br-lan type bridge
  ns "$P-gw" ip addr add 192.0.2.1/24 dev br-inet
  ns "$P-gw" ip addr add 198.51.100.1/24 dev br-lan
  ns "$P-gw" ip -6 addr add 2001:db8:1::1/64 dev br-lan nodad
  for c in c1 c2; do
    veth "$P-gw" "v-$c" "$P-$c" eth0
    ns "$P-gw" ip link set "v-$c" master br-inet up
  done
  for h in gpu other; do
    veth "$P-gw" "v-$h" "$P-$h" eth0
    ns "$P-gw" ip link set "v-$h" master br-lan up
  done
  ns "$P-gw" ip link set br-inet up
  ns "$P-gw" ip link set br-lan up
  ns "$P-c1" ip addr add 192.0.2.10/24 dev eth0
  ns "$P-c2" ip addr add 192.0.2.11/24 dev eth0
  ns "$P-gpu" ip addr add 198.51.100.10/24 dev eth0
  ns "$P-gpu" ip -6 addr add 2001:db8:1::10/64 dev eth0 nodad
  ns "$P-other" ip addr add 198.51.100.20/24 dev eth0
  for n in c1 c2 gpu other; do ns "$P-$n" ip link set eth0 up; done
  for c in c1 c2; do ns "$P-$c" ip route add default via 192.0.2.1; done
  for h in gpu other; do ns "$P-$h" ip route add 10.66.0.0/16 via 198.51.100.1; done
  ns "$P-gpu" ip -6 route add default via 2001:db8:1::1
}

host() {
  local name=$1 ip=$2
  [[ $name =~ ^h[0-9]{1,2}$ ]] || { echo "lab: a host name is h1 .. h99" >&2; exit 2; }
  [[ $ip =~ ^198\.51\.100\.([3-9][0-9])$ ]] || { echo "lab: a host address is 198.51.100.30 .. .99" >&2; exit 2; }
  ip netns add "$P-$name"
  ns "$P-$name" ip link set lo up
  veth "$P-gw" "v-$name" "$P-$name" eth0
  ns "$P-gw" ip link set "v-$name" master br-lan up
  ns "$P-$name" ip addr add "$ip/24" dev eth0
  ns "$P-$name" ip link set eth0 up
  ns "$P-$name" ip route add 10.66.0.0/16 via 198.51.100.1
}

# Every namespace of the lab: the five of `up` and the hosts of `host`.
lab_namespaces() {
  ip netns list | awk '{print $1}' | grep -E "^$P-(gw|gpu|other|c1|c2|h[0-9]{1,2})$" || true
}

down() {
  local n pids
  for n in $(lab_namespaces); do
    pids=$(ip netns pids "$n" 2>/dev/null || true)
    [ -n "$pids" ] && kill -9 $pids 2>/dev/null || true
  done
  sleep 0.2
  for n in $(lab_namespaces); do
    ip netns del "$n" 2>/dev/null || true
  done
}

case $cmd in
  up) down; up ;;
  host) host "${3:?host NAME}" "${4:?host IP}" ;;
  down) down ;;
  *) echo "usage: $0 up|host|down [PREFIX] [NAME IP]" >&2; exit 2 ;;
esac
