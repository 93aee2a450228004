# shellcheck shell=dash
# Test stand-in for netifd calling a protocol handler: sources the OpenWrt
# and netifd stubs, then the handler ($1) with INCLUDE_ONLY set (as
# netifd's own scripts do to reuse a handler), and calls the function named
# by $2 with the rest of the arguments, e.g. proto_mapt_setup wan6. The
# interface's configuration comes as CFG_<option> variables (see the jshn
# stub).
# shellcheck disable=SC1091
. "$IPKG_INSTROOT/lib/functions.sh"
# shellcheck disable=SC1091
. "$IPKG_INSTROOT/lib/netifd/netifd-proto.sh"
# shellcheck disable=SC2034 # read by the handler
INCLUDE_ONLY=1
handler=$1
shift
# shellcheck disable=SC1090
. "$handler"
"$@"
status=$?
case $1 in
*_init_config)
	# What init_proto would hand netifd besides the config list.
	# shellcheck disable=SC2154 # set by the handler
	printf 'flags\tno_device=%s\tavailable=%s\trenew_handler=%s\n' "$no_device" "$available" "$renew_handler" >>"$STUB_LOG"
	;;
esac
exit $status
