#!/bin/sh
# shellcheck shell=ash
# netifd protocol handler 'mapt': the MAP-T CE (RFC 7599) as an OpenWrt
# interface. `ce-agent run` is the interface's DHCPv6 client (IA_PD, the
# S46 MAP-T container, DNS, search list, NTP) and its translator; netifd
# runs it with proto_run_command, and its notify script
# (/lib/netifd/mapt.script, the agent's --hook) reports to netifd what
# odhcp6c's dhcpv6.script would: the delegated prefix with its lifetimes,
# DNS servers and search domains, NTP servers. The IPv4 side (the uplink
# device, its address and default route, its firewall zone) is a dynamic
# interface '<iface>_4' of this same protocol, as odhcp6c creates 'wan6_4'
# for map.sh; its setup only reports what the agent already applied.
#
#	config interface 'wan6'
#		option proto 'mapt'
#		option device '@wan'
#
# See openwrt/README.md for every option.

[ -n "$INCLUDE_ONLY" ] || {
	# shellcheck disable=SC1091
	. /lib/functions.sh
	# shellcheck disable=SC1091
	. ../netifd-proto.sh
	init_proto "$@"
}

# Paths, overridable for the test harness.
MAPT_AGENT=${MAPT_AGENT:-/usr/bin/ce-agent}
MAPT_NOTIFY=${MAPT_NOTIFY:-/lib/netifd/mapt.script}
MAPT_STATE_DIR=${MAPT_STATE_DIR:-/var/lib/ce-agent}
MAPT_RUN_DIR=${MAPT_RUN_DIR:-/var/run}
MAPT_SYSCTL=${MAPT_SYSCTL:-/proc/sys/net/ipv6/conf}

proto_mapt_init_config() {
	# The agent follows its WAN device itself (carrier, re-creation, MTU)
	# and waits for it at start: netifd must not tear the interface down,
	# killing the agent and its lease, each time the device goes.
	# shellcheck disable=SC2034 # read by init_proto
	no_device=1
	# shellcheck disable=SC2034
	available=1
	# shellcheck disable=SC2034
	renew_handler=1

	proto_config_add_string device
	proto_config_add_string tunlink
	proto_config_add_string reqopts
	proto_config_add_string clientid
	proto_config_add_string vendorclass
	proto_config_add_string userclass
	proto_config_add_boolean norelease
	proto_config_add_int mtu
	proto_config_add_int lowest_ipv6_mtu
	proto_config_add_string icmp_rate
	proto_config_add_string traffic_class
	proto_config_add_string tos
	proto_config_add_string zone
	proto_config_add_string iface4
	proto_config_add_string uplink
	proto_config_add_array 'rule:list(string)'
	proto_config_add_string dmr
	proto_config_add_string prefix
	proto_config_add_string domainfile
	proto_config_add_string log_level
	proto_config_add_defaults
	# The IPv4 interface's options, set by mapt.script.
	proto_config_add_string _parent
	proto_config_add_string ipaddr
	proto_config_add_string bmr
	proto_config_add_int psid
	proto_config_add_int psid_len
	proto_config_add_int psid_offset
	proto_config_add_string ports
	proto_config_add_int port_count
	proto_config_add_string map_address
	proto_config_add_string dmr6
	proto_config_add_string fmrs
}

# mapt_iface_device IFACE: the device of netifd interface IFACE, from its
# configuration ('device', or 'ifname' before 21.02), one '@' alias deep.
mapt_iface_device() {
	local dev=""
	config_load network
	config_get dev "$1" device
	[ -n "$dev" ] || config_get dev "$1" ifname
	case $dev in
	@*) config_get dev "${dev#@}" device ;;
	esac
	echo "$dev"
}

# mapt_wan DEVICE TUNLINK: the WAN device, from 'device' (a device name or
# '@interface') or else 'tunlink' (an interface name).
mapt_wan() {
	case $1 in
	@*) mapt_iface_device "${1#@}" ;;
	"") [ -n "$2" ] && mapt_iface_device "$2" ;;
	*) echo "$1" ;;
	esac
}

# mapt_default_duid: network.@globals[0].dhcp_default_duid, which odhcp6c
# (dhcpv6.sh) uses when an interface sets no clientid.
MAPT_DUID=""
mapt_globals_duid() {
	[ -n "$MAPT_DUID" ] || config_get MAPT_DUID "$1" dhcp_default_duid
}

MAPT_RULES=""
mapt_add_rule() {
	MAPT_RULES="$MAPT_RULES $1"
}

proto_mapt_setup() {
	local cfg="$1"
	local device tunlink reqopts clientid vendorclass userclass norelease mtu lowest_ipv6_mtu icmp_rate traffic_class tos
	local zone iface4 uplink dmr prefix domainfile log_level _parent defaultroute metric
	json_get_vars device tunlink reqopts clientid vendorclass userclass norelease mtu lowest_ipv6_mtu icmp_rate traffic_class tos
	json_get_vars zone iface4 uplink dmr prefix domainfile log_level _parent defaultroute metric

	if [ -n "$_parent" ]; then
		proto_mapt_setup_ipv4 "$cfg"
		return
	fi

	local wan
	wan=$(mapt_wan "$device" "$tunlink")
	if [ -z "$wan" ]; then
		proto_notify_error "$cfg" NO_WAN_DEVICE
		proto_block_restart "$cfg"
		return 1
	fi
	MAPT_RULES=""
	json_for_each_item mapt_add_rule rule
	if [ -n "$MAPT_RULES" ] && [ -n "$domainfile" ]; then
		proto_notify_error "$cfg" RULE_AND_DOMAINFILE
		proto_block_restart "$cfg"
		return 1
	fi
	if [ -n "$MAPT_RULES" ] && [ -z "$dmr" ]; then
		proto_notify_error "$cfg" MISSING_DMR
		proto_block_restart "$cfg"
		return 1
	fi
	if [ -n "$prefix$dmr" ] && [ -z "$MAPT_RULES$domainfile" ]; then
		proto_notify_error "$cfg" PREFIX_WITHOUT_RULE
		proto_block_restart "$cfg"
		return 1
	fi
	case ${log_level:=info} in
	debug | info | warn | error) ;;
	*)
		proto_notify_error "$cfg" INVALID_LOG_LEVEL
		proto_block_restart "$cfg"
		return 1
		;;
	esac
	[ -n "$uplink" ] || uplink="map-$cfg"
	[ -n "$iface4" ] || iface4="${cfg}_4"
	[ -n "$zone" ] || zone=mapt
	if [ -z "$clientid" ]; then
		config_load network
		config_foreach mapt_globals_duid globals
		clientid=$MAPT_DUID
	fi

	# 'mtu' caps the uplink's MTU; 'lowest_ipv6_mtu' is RFC 7915 s4.1's
	# (the agent's default is 1280): the uplink gets min(WAN MTU,
	# lowest_ipv6_mtu) - 28, so that no translated packet outgrows the
	# smallest IPv6 MTU on the way to the BR.

	# IAID 1: odhcp6c's for its IA_PD, so that a router moving from
	# proto dhcpv6 to proto mapt keeps its identity (DUID-LL of the WAN,
	# or clientid) and with it its prefix at the ISP. --inbound uplink (the
	# default, kept explicit): translated IPv4 enters the stack on the
	# uplink, so that fw4 filters it in the mapt zone, not the wan zone.
	set -- "$MAPT_AGENT" run --wan "$wan" --uplink "$uplink" --state-dir "$MAPT_STATE_DIR/$cfg" \
		--status-socket "$MAPT_RUN_DIR/ce-agent-$cfg.sock" --hook "$MAPT_NOTIFY" \
		--log-level "$log_level" --log-time=false --no-default-route --iaid 1 --inbound uplink
	[ "$norelease" = 1 ] || set -- "$@" --release-on-stop
	[ -n "$clientid" ] && set -- "$@" --client-id "$clientid"
	[ -n "$vendorclass" ] && set -- "$@" --vendor-class "$vendorclass"
	[ -n "$userclass" ] && set -- "$@" --user-class "$userclass"
	local opt r
	for opt in $reqopts; do
		set -- "$@" --reqopt "$opt"
	done
	[ -n "$mtu" ] && set -- "$@" --uplink-mtu "$mtu"
	[ -n "$lowest_ipv6_mtu" ] && set -- "$@" --lowest-ipv6-mtu "$lowest_ipv6_mtu"
	[ -n "$icmp_rate" ] && set -- "$@" --icmp-rate "$icmp_rate"
	[ -n "$traffic_class" ] && set -- "$@" --traffic-class "$traffic_class"
	[ -n "$tos" ] && set -- "$@" --tos "$tos"
	[ -n "$domainfile" ] && set -- "$@" --domain "$domainfile"
	for r in $MAPT_RULES; do
		set -- "$@" --rule "$r"
	done
	[ -n "$dmr" ] && set -- "$@" --dmr "$dmr"
	[ -n "$prefix" ] && set -- "$@" --prefix "$prefix"

	# With odhcp6c gone, nobody takes the WAN's IPv6 default route from
	# router advertisements but the kernel, which with forwarding on
	# needs accept_ra 2. The old value is kept for teardown.
	if [ -w "$MAPT_SYSCTL/$wan/accept_ra" ]; then
		mkdir -p "$MAPT_RUN_DIR"
		cat "$MAPT_SYSCTL/$wan/accept_ra" >"$MAPT_RUN_DIR/ce-agent-$cfg.accept_ra"
		echo 2 >"$MAPT_SYSCTL/$wan/accept_ra"
	fi

	proto_export "INTERFACE=$cfg"
	proto_export "MAPT_IFACE4=$iface4"
	proto_export "MAPT_ZONE=$zone"
	[ -n "$defaultroute" ] && proto_export "MAPT_DEFAULTROUTE=$defaultroute"
	[ -n "$metric" ] && proto_export "MAPT_METRIC=$metric"
	proto_run_command "$cfg" "$@"
}

# proto_mapt_setup_ipv4 reports the IPv4 side the agent applied: the
# uplink device with the CE's address (external: the agent owns it), the
# default route (netifd installs it, honouring defaultroute and metric),
# the firewall zone and the binding, for ifstatus, network_find_wan, fw4
# and LuCI.
proto_mapt_setup_ipv4() {
	local cfg="$1"
	local uplink ipaddr zone bmr psid psid_len psid_offset ports port_count map_address dmr6 fmrs
	json_get_vars uplink ipaddr zone bmr psid psid_len psid_offset ports port_count map_address dmr6 fmrs
	if [ -z "$uplink" ] || [ -z "$ipaddr" ]; then
		proto_notify_error "$cfg" MISSING_BINDING
		proto_block_restart "$cfg"
		return 1
	fi
	proto_init_update "$uplink" 1 1
	proto_add_ipv4_address "$ipaddr" 32
	proto_add_ipv4_route 0.0.0.0 0
	proto_add_data
	[ -n "$zone" ] && json_add_string zone "$zone"
	json_add_object mapt
	json_add_string bmr "$bmr"
	json_add_string ipv4 "$ipaddr"
	[ -n "$psid" ] && json_add_int psid "$psid"
	[ -n "$psid_len" ] && json_add_int psid_len "$psid_len"
	[ -n "$psid_offset" ] && json_add_int psid_offset "$psid_offset"
	json_add_array ports
	local p
	for p in $ports; do
		json_add_string "" "$p"
	done
	json_close_array
	[ -n "$port_count" ] && json_add_int port_count "$port_count"
	json_add_string map_address "$map_address"
	json_add_string dmr "$dmr6"
	json_add_array fmrs
	for p in $fmrs; do
		json_add_string "" "$p"
	done
	json_close_array
	json_close_object
	proto_close_data
	proto_send_update "$cfg"
}

proto_mapt_renew() {
	# SIGUSR1: the agent's DHCPv6 client rebinds (as odhcp6c renews).
	proto_kill_command "$1" 10
}

proto_mapt_teardown() {
	local cfg="$1" _parent iface4 device tunlink
	json_get_vars _parent iface4 device tunlink
	# The IPv4 side: the agent owns the device and its address.
	[ -n "$_parent" ] && return 0
	# SIGTERM: the agent sends its Release, removes its uplink, nft
	# table and TC programs, and tells netifd (mapt.script stopped).
	proto_kill_command "$cfg"
	ubus call "network.interface.${iface4:-${cfg}_4}" remove >/dev/null 2>&1
	local wan saved="$MAPT_RUN_DIR/ce-agent-$cfg.accept_ra"
	wan=$(mapt_wan "$device" "$tunlink")
	if [ -f "$saved" ] && [ -n "$wan" ] && [ -w "$MAPT_SYSCTL/$wan/accept_ra" ]; then
		cat "$saved" >"$MAPT_SYSCTL/$wan/accept_ra"
	fi
	rm -f "$saved"
	return 0
}

[ -n "$INCLUDE_ONLY" ] || {
	add_protocol mapt
}
