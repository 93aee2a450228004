'use strict';
'require form';
'require network';
'require tools.widgets as widgets';

// The IPv4 uplink devices the agent creates (map-<iface>) are virtual.
network.registerPatternVirtual(/^map-.+$/);

return network.registerProtocol('mapt', {
	getI18n: function() {
		return _('MAP-T (ce-agent)');
	},

	getIfname: function() {
		return this._ubus('l3_device') || this.get('device');
	},

	getOpkgPackage: function() {
		return 'ce-agent';
	},

	isFloating: function() {
		return true;
	},

	isVirtual: function() {
		return true;
	},

	getDevices: function() {
		return null;
	},

	containsDevice: function(ifname) {
		return (network.getIfnameOf(ifname) == this.getIfname());
	},

	renderFormOptions: function(s) {
		var o;

		o = s.taboption('general', widgets.DeviceSelect, 'device', _('WAN device'),
			_('The device the ISP\'s DHCPv6 server is on; @wan for the device of interface wan.'));
		o.rmempty = false;
		o.nocreate = true;

		o = s.taboption('general', form.DynamicList, 'rule', _('Static MAP rules'),
			_('Only for networks without DHCPv6 S46 options: IPV6PREFIX,IPV4PREFIX,EA[,a=N][,k=N][,psid=N][,fmr].'));
		o.placeholder = '2001:db8:ce::/51,192.0.2.0/24,13,a=0';

		o = s.taboption('general', form.Value, 'dmr', _('Default mapping rule (DMR)'),
			_('The BR\'s RFC 6052 prefix, for static rules.'));
		o.datatype = 'cidr6';
		o.depends({ rule: /.+/ });

		o = s.taboption('general', form.Value, 'prefix', _('Fixed end-user prefix'),
			_('With static rules: no DHCPv6 at all. Empty: the prefix delegated by DHCPv6.'));
		o.datatype = 'cidr6';
		o.depends({ rule: /.+/ });

		o = s.taboption('advanced', form.Value, 'clientid', _('Client ID to send when requesting DHCPv6'),
			_('The DUID in hex; default: DUID-LL of the WAN device.'));
		o.datatype = 'hexstring';

		o = s.taboption('advanced', form.Value, 'reqopts', _('Additional DHCPv6 options to request'),
			_('Option codes, space-separated. DNS, search list, NTP, MAP-T and S46 priority are always requested.'));

		o = s.taboption('advanced', form.Value, 'vendorclass', _('Vendor class to send when requesting DHCPv6'),
			_('Hex: enterprise number, then data.'));
		o.datatype = 'hexstring';

		o = s.taboption('advanced', form.Value, 'userclass', _('User class to send when requesting DHCPv6'));

		o = s.taboption('advanced', form.Flag, 'norelease', _('Do not send a Release when restarting'));
		o.default = o.disabled;

		o = s.taboption('advanced', form.Value, 'mtu', _('Maximum IPv4 uplink MTU'));
		o.datatype = 'range(68, 65535)';
		o.placeholder = _('WAN MTU - 28');

		o = s.taboption('advanced', form.Value, 'lowest_ipv6_mtu', _('Lowest IPv6 MTU'),
			_('RFC 7915: IPv4 packets without DF leave as IPv6 fragments of at most this size.'));
		o.datatype = 'range(1280, 65535)';
		o.placeholder = '1280';

		o = s.taboption('advanced', widgets.ZoneSelect, 'zone', _('Firewall zone of the IPv4 interface'));
		o.nocreate = true;
		o.default = 'mapt';

		o = s.taboption('advanced', form.ListValue, 'log_level', _('Log level'));
		o.value('debug', _('Debug'));
		o.value('info', _('Info'));
		o.value('warn', _('Warning'));
		o.value('error', _('Error'));
		o.default = 'info';
	}
});
