# shellcheck shell=dash
# Test stub of netifd's netifd-proto.sh, written for the harness in
# openwrt/: every proto_* call prints one tab-separated line (call name,
# then its arguments) to $STUB_LOG, which the Go harness reads. What a
# handler adds between proto_add_data and proto_close_data is built as
# JSON by the jshn stub and logged with proto_close_data.

# shellcheck disable=SC1091
. "$IPKG_INSTROOT/usr/share/libubox/jshn.sh"

_proto_emit() {
	local IFS='	'
	echo "$*" >>"$STUB_LOG"
}

proto_config_add_string() { _proto_emit proto_config_add_string "$@"; }
proto_config_add_int() { _proto_emit proto_config_add_int "$@"; }
proto_config_add_boolean() { _proto_emit proto_config_add_boolean "$@"; }
proto_config_add_array() { _proto_emit proto_config_add_array "$@"; }
proto_config_add_defaults() { _proto_emit proto_config_add_defaults "$@"; }
proto_init_update() { _proto_emit proto_init_update "$@"; }
proto_set_keep() { _proto_emit proto_set_keep "$@"; }
proto_add_ipv4_address() { _proto_emit proto_add_ipv4_address "$@"; }
proto_add_ipv6_address() { _proto_emit proto_add_ipv6_address "$@"; }
proto_add_ipv4_route() { _proto_emit proto_add_ipv4_route "$@"; }
proto_add_ipv6_route() { _proto_emit proto_add_ipv6_route "$@"; }
proto_add_ipv6_prefix() { _proto_emit proto_add_ipv6_prefix "$@"; }
proto_add_dns_server() { _proto_emit proto_add_dns_server "$@"; }
proto_add_dns_search() { _proto_emit proto_add_dns_search "$@"; }
proto_add_data() {
	_proto_emit proto_add_data
	json_init
}
proto_close_data() { _proto_emit proto_close_data "$(json_dump)"; }
proto_send_update() { _proto_emit proto_send_update "$@"; }
proto_run_command() { _proto_emit proto_run_command "$@"; }
proto_kill_command() { _proto_emit proto_kill_command "$@"; }
proto_notify_error() { _proto_emit proto_notify_error "$@"; }
proto_block_restart() { _proto_emit proto_block_restart "$@"; }
proto_setup_failed() { _proto_emit proto_setup_failed "$@"; }
proto_add_host_dependency() { _proto_emit proto_add_host_dependency "$@"; }
proto_export() { _proto_emit proto_export "$@"; }
# proto_add_dynamic_defaults is real netifd's: the interface's default
# options for a dynamic child interface's JSON.
proto_add_dynamic_defaults() {
	[ -n "$defaultroute" ] && json_add_boolean defaultroute "$defaultroute"
	[ -n "$peerdns" ] && json_add_boolean peerdns "$peerdns"
	[ -n "$metric" ] && json_add_int metric "$metric"
	return 0
}
add_protocol() { _proto_emit add_protocol "$@"; }
