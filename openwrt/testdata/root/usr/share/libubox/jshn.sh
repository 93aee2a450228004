# shellcheck shell=dash
# Test stub of libubox's jshn.sh, written for the harness in openwrt/: the
# json_add_* family builds one JSON text in JSON_BUF (json_dump prints it),
# and json_get_var / json_get_vars / json_for_each_item read the
# configuration the harness gives as CFG_<name> variables (lists
# space-separated), standing in for the JSON netifd passes a handler.

JSON_BUF=""
JSON_FIRST=1

json_init() {
	JSON_BUF="{"
	JSON_FIRST=1
}

# _json_escape prints $1 as a JSON string body.
_json_escape() {
	printf '%s' "$1" | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g'
}

_json_key() {
	[ "$JSON_FIRST" = 1 ] || JSON_BUF="$JSON_BUF,"
	JSON_FIRST=0
	[ -n "$1" ] && JSON_BUF="$JSON_BUF\"$(_json_escape "$1")\":"
	return 0
}

json_add_string() {
	_json_key "$1"
	JSON_BUF="$JSON_BUF\"$(_json_escape "$2")\""
}

json_add_int() {
	_json_key "$1"
	JSON_BUF="$JSON_BUF$2"
}

json_add_boolean() {
	_json_key "$1"
	case $2 in
	1 | true) JSON_BUF="${JSON_BUF}true" ;;
	*) JSON_BUF="${JSON_BUF}false" ;;
	esac
}

json_add_object() {
	_json_key "$1"
	JSON_BUF="$JSON_BUF{"
	JSON_FIRST=1
}

json_close_object() {
	JSON_BUF="$JSON_BUF}"
	JSON_FIRST=0
}

json_add_array() {
	_json_key "$1"
	JSON_BUF="${JSON_BUF}["
	JSON_FIRST=1
}

json_close_array() {
	JSON_BUF="$JSON_BUF]"
	JSON_FIRST=0
}

json_dump() {
	echo "$JSON_BUF}"
}

json_load() { :; }

json_get_var() {
	eval "$1=\${CFG_$2:-}"
}

json_get_vars() {
	local __v
	for __v in "$@"; do
		eval "$__v=\${CFG_$__v:-}"
	done
}

json_for_each_item() {
	local __fn="$1" __var="$2" __item __items
	shift 2
	eval "__items=\${CFG_$__var:-}"
	for __item in $__items; do
		"$__fn" "$__item" "$@"
	done
}
