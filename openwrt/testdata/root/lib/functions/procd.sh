# shellcheck shell=dash
# Test stub of OpenWrt's /lib/functions/procd.sh: every call prints one
# tab-separated line (call name, then its arguments) to $STUB_LOG,
# which the Go harness reads.

emit() {
	local IFS='	'
	echo "$*" >>"$STUB_LOG"
}

procd_open_instance() { emit open_instance "$@"; }
procd_close_instance() { emit close_instance "$@"; }
procd_set_param() { emit set_param "$@"; }
procd_append_param() { emit append_param "$@"; }
procd_add_reload_trigger() { emit reload_trigger "$@"; }
procd_add_interface_trigger() { emit interface_trigger "$@"; }
procd_open_trigger() { emit open_trigger "$@"; }
procd_close_trigger() { emit close_trigger "$@"; }
