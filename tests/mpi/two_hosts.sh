#!/bin/sh
# Runs `mpirun ARGS...` across two "hosts" on this machine: two network
# namespaces joined by a veth pair, with Open MPI's TCP transport between
# them. mpirun starts in the first namespace and reaches the second through
# an rsh agent that runs the remote command with `ip netns exec`, as ssh
# would on a real second machine. Needs root and iproute2. The namespaces
# are removed on exit.
#
# usage: two_hosts.sh PROGRAM-AND-ARGUMENTS...
set -eu
net=10.231.7
a=wengert-host-a
b=wengert-host-b
work=$(mktemp -d)
cleanup() {
    ip netns del "$a" 2>/dev/null || true
    ip netns del "$b" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT INT TERM
cleanup_stale() { ip netns del "$a" 2>/dev/null || true; ip netns del "$b" 2>/dev/null || true; }
cleanup_stale

ip netns add "$a"
ip netns add "$b"
ip link add wengert-va type veth peer name wengert-vb
ip link set wengert-va netns "$a"
ip link set wengert-vb netns "$b"
ip -n "$a" addr add "$net.1/24" dev wengert-va
ip -n "$b" addr add "$net.2/24" dev wengert-vb
for ns in "$a" "$b"; do ip -n "$ns" link set lo up; done
ip -n "$a" link set wengert-va up
ip -n "$b" link set wengert-vb up

# The rsh agent: Open MPI calls it as `agent [options] HOST COMMAND...`.
cat >"$work/agent" <<AGENT
#!/bin/sh
while [ "\${1#-}" != "\$1" ]; do shift; done
host=\$1; shift
case \$host in
    $net.1) ns=$a ;;
    $net.2) ns=$b ;;
    *) echo "agent: unknown host \$host" >&2; exit 1 ;;
esac
exec ip netns exec "\$ns" sh -c "\$*"
AGENT
chmod +x "$work/agent"

exec_mpirun() {
    ip netns exec "$a" mpirun --allow-run-as-root --oversubscribe \
        --host "$net.1,$net.2" -np 2 \
        --mca plm_rsh_agent "$work/agent" \
        --mca btl tcp,self \
        --mca btl_tcp_if_include "$net.0/24" \
        --mca oob_tcp_if_include "$net.0/24" \
        -x PATH -x OMPI_ALLOW_RUN_AS_ROOT=1 -x OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
        "$@"
}
exec_mpirun "$@"
