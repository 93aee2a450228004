# shellcheck shell=dash
# Test stub of OpenWrt's /lib/functions.sh: just the UCI helpers the init
# script uses, written for the harness in openwrt/initscript_test.go. A UCI
# file is valid shell once `config`, `option` and `list` are functions,
# which is how OpenWrt loads it too.

CONFIG_SECTIONS=""
CONFIG_SECTION=""
CONFIG_LIST_STATE=""

# Anonymous sections get generated names, as `uci -n export` gives them.
CONFIG_ANON=0

config() {
	local name="$2"
	if [ -z "$name" ]; then
		CONFIG_ANON=$((CONFIG_ANON + 1))
		name="cfg$CONFIG_ANON"
	fi
	CONFIG_SECTION=$name
	CONFIG_SECTIONS="$CONFIG_SECTIONS $name"
	eval "CONFIG_${name}_TYPE=\$1"
}

option() {
	eval "CONFIG_${CONFIG_SECTION}_${1}=\$2"
}

list() {
	local n
	eval "n=\${CONFIG_${CONFIG_SECTION}_${1}_LENGTH:-0}"
	[ "$n" = 0 ] && CONFIG_LIST_STATE="$CONFIG_LIST_STATE ${CONFIG_SECTION}_${1}"
	n=$((n + 1))
	eval "CONFIG_${CONFIG_SECTION}_${1}_LENGTH=\$n"
	eval "CONFIG_${CONFIG_SECTION}_${1}_ITEM${n}=\$2"
	# Like OpenWrt, the plain variable holds the items joined by spaces.
	eval "CONFIG_${CONFIG_SECTION}_${1}=\"\${CONFIG_${CONFIG_SECTION}_${1}:+\$CONFIG_${CONFIG_SECTION}_${1} }\$2\""
}

# Like OpenWrt's uci_load, a new load forgets the sections and lists of
# the previous one.
config_load() {
	local s
	for s in $CONFIG_SECTIONS; do
		unset "CONFIG_${s}_TYPE"
	done
	for s in $CONFIG_LIST_STATE; do
		unset "CONFIG_${s}" "CONFIG_${s}_LENGTH"
	done
	CONFIG_SECTIONS=""
	CONFIG_LIST_STATE=""
	[ -f "$UCI_CONFIG_DIR/$1" ] || return 1
	# shellcheck disable=SC1090
	. "$UCI_CONFIG_DIR/$1"
}

# Locals carry a prefix: the caller's variable name ($1) must not be one.
config_get() {
	local __cg_v
	eval "__cg_v=\${CONFIG_${2}_${3}:-\$4}"
	eval "$1=\$__cg_v"
}

config_get_bool() {
	local __cgb_v
	config_get __cgb_v "$2" "$3" "$4"
	case $__cgb_v in
	1 | on | true | yes | enabled) __cgb_v=1 ;;
	*) __cgb_v=0 ;;
	esac
	eval "$1=\$__cgb_v"
}

config_foreach() {
	local fn="$1" type="$2" s t
	shift
	[ $# -gt 0 ] && shift
	for s in $CONFIG_SECTIONS; do
		eval "t=\$CONFIG_${s}_TYPE"
		[ -n "$type" ] && [ "$t" != "$type" ] && continue
		"$fn" "$s" "$@"
	done
}

config_list_foreach() {
	local s="$1" o="$2" fn="$3" n i v
	shift 3
	eval "n=\${CONFIG_${s}_${o}_LENGTH:-0}"
	i=1
	while [ "$i" -le "$n" ]; do
		eval "v=\$CONFIG_${s}_${o}_ITEM${i}"
		"$fn" "$v" "$@"
		i=$((i + 1))
	done
}
