// Test harness for the LuCI protocol form (openwrt/TestLuCIForm): loads a
// LuCI view module the way LuCI's loader does (its source as a function
// body, the 'require'd modules as arguments), with stubs of form, network
// and tools.widgets that record what the form declares, and prints it as
// JSON. A syntax error fails at `new Function`.
'use strict';
const fs = require('fs');
const src = fs.readFileSync(process.argv[2], 'utf8');

const out = { patterns: [], protocol: null, options: [] };
const form = {};
for (const c of ['Value', 'DynamicList', 'Flag', 'ListValue'])
	form[c] = { cls: c };
const widgets = { DeviceSelect: { cls: 'DeviceSelect' }, ZoneSelect: { cls: 'ZoneSelect' } };
const network = {
	registerPatternVirtual: function(re) { out.patterns.push(String(re)); },
	registerProtocol: function(name, impl) { out.protocol = name; return impl; },
	getIfnameOf: function(x) { return x; },
};
const _ = function(s) { return s; };

const mod = new Function('form', 'network', 'widgets', '_', src)(form, network, widgets, _);
const section = {
	taboption: function(tab, cls, name, title) {
		const o = { tab: tab, cls: cls.cls, name: name, title: title, values: [], deps: [],
			value: function(v) { this.values.push(v); }, depends: function(d) { this.deps.push(d); } };
		out.options.push(o);
		return o;
	},
};
mod.renderFormOptions(section);
out.i18n = mod.getI18n();
out.pkg = mod.getOpkgPackage();
out.floating = mod.isFloating();
console.log(JSON.stringify(out, function(k, v) { return typeof v === 'function' ? undefined : v; }));
