#!/bin/sh
# Kea run_script hook: route every delegated prefix to the CE that holds it,
# via the link-local address its DHCPv6 messages came from, as an ISP's
# edge does. Removes the route when the lease ends.
set -u

route_add() { # prefix length
	ip -6 route replace "$1/$2" via "$QUERY6_REMOTE_ADDR" dev "$QUERY6_IFACE_NAME" proto static
}

route_del() { # prefix length
	ip -6 route del "$1/$2" proto static 2>/dev/null || true
}

case "${1:-}" in
leases6_committed)
	i=0
	while [ "$i" -lt "${LEASES6_SIZE:-0}" ]; do
		eval "type=\${LEASES6_AT${i}_TYPE:-}"
		eval "addr=\${LEASES6_AT${i}_ADDRESS:-}"
		eval "plen=\${LEASES6_AT${i}_PREFIX_LEN:-}"
		# shellcheck disable=SC2154 # set by eval
		case "$type" in IA_PD | 2) route_add "$addr" "$plen" ;; esac
		i=$((i + 1))
	done
	;;
lease6_renew | lease6_rebind)
	[ "${LEASE6_TYPE:-}" = IA_PD ] && route_add "$LEASE6_ADDRESS" "$LEASE6_PREFIX_LEN"
	;;
lease6_release | lease6_expire | lease6_decline)
	[ "${LEASE6_TYPE:-}" = IA_PD ] && route_del "$LEASE6_ADDRESS" "$LEASE6_PREFIX_LEN"
	;;
esac
exit 0
