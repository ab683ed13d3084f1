'use strict';
'require view';
'require form';
'require uci';
'require uplinkd.model as model';

var v = model.validate;

/* LuCI validators get (section_id, value); the model's take the value. */
function check(fn) {
	return function(section_id, value) {
		var values = Array.isArray(value) ? value : [ value ];
		for (var i = 0; i < values.length; i++) {
			var r = fn(values[i]);
			if (r !== true) return _(r);
		}
		return true;
	};
}

/* A MultiValue's widget hands its validator the choices joined by spaces. */
function checkWords(fn) {
	var each = check(fn);
	return function(section_id, value) {
		return each(section_id, Array.isArray(value) ? value
			: String(value == null ? '' : value).split(/\s+/).filter(function(w) { return w !== ''; }));
	};
}

function names(type) {
	return uci.sections('uplinkd', type).map(function(s) { return s['.name']; });
}

return view.extend({
	load: function() {
		return uci.load('uplinkd');
	},

	render: function() {
		var m, s, o;

		m = new form.Map('uplinkd', _('uplinkd'),
			_('uplinkd watches each uplink (WAN) by probing a few addresses through it, and routes new connections over the uplinks that answer. ' +
			  '<b>Failover</b>: give one uplink a lower metric than the others; it carries everything while it is up, and the next metric takes over when it goes down. ' +
			  '<b>Balance</b>: give several uplinks the same metric; new connections are spread over them by weight, and an uplink that goes down simply leaves the mix. ' +
			  'Existing connections stay on the uplink they started on.'));

		s = m.section(form.TypedSection, 'globals', _('Global settings'));
		s.anonymous = true;
		s.addremove = false;

		o = s.option(form.ListValue, 'default_policy', _('Default policy'), _('The policy all traffic uses unless a rule says otherwise.'));
		names('policy').forEach(function(n) { o.value(n); });

		o = s.option(form.ListValue, 'last_resort', _('Last resort'),
			_('When no uplink of a policy is usable: <em>default</em> falls through to the main routing table, <em>unreachable</em> rejects, <em>blackhole</em> drops silently.'));
		o.value('default');
		o.value('unreachable');
		o.value('blackhole');
		o.default = 'default';

		o = s.option(form.Value, 'http_listen', _('Metrics and status page'),
			_('Serve /metrics (Prometheus), /status.json and a status page on this port or address:port. Empty: off. A bare port listens on 127.0.0.1 only.'));
		o.placeholder = '9110';
		o.validate = check(v.listen);

		o = s.option(form.ListValue, 'log_level', _('Log level'));
		[ 'error', 'warning', 'notice', 'info', 'debug' ].forEach(function(l) { o.value(l); });
		o.default = 'info';

		/* Interfaces */
		s = m.section(form.TypedSection, 'interface', _('Interfaces'),
			_('Each uplink to watch. Leave the device empty to follow the network interface of the same name (PPPoE, LTE, DHCP).'));
		s.addremove = true;
		s.anonymous = false;

		o = s.option(form.Flag, 'enabled', _('Enabled'));
		o.default = '1';
		o.rmempty = false;

		o = s.option(form.Value, 'device', _('Device'), _('Linux device, e.g. eth1; empty: as netifd reports it.'));
		o.optional = true;

		o = s.option(form.ListValue, 'family', _('Address family'),
			_('IPv4 and IPv6 on one interface share one health; for independent IPv6 health add a second interface on the same device with family IPv6.'));
		o.value('ipv4', _('IPv4'));
		o.value('ipv6', _('IPv6'));
		o.value('any', _('IPv4 and IPv6'));
		o.default = 'ipv4';

		o = s.option(form.DynamicList, 'gateway', _('Gateway'), _('At most one per family. Empty: discovered.'));
		o.optional = true;
		o.validate = check(v.ip);

		o = s.option(form.DynamicList, 'ip6prefix', _('Delegated IPv6 prefixes'),
			_('Connections from these prefixes always use this uplink. Empty: learned from netifd.'));
		o.optional = true;
		o.datatype = 'cidr6';
		o.depends('family', 'ipv6');
		o.depends('family', 'any');

		o = s.option(form.DynamicList, 'track_ip', _('Probe targets'),
			_('Addresses that should always answer through this uplink, at most 8. None: the uplink follows its carrier only.'));
		o.validate = check(v.ip);

		o = s.option(form.ListValue, 'track_method', _('Probe method'));
		o.value('ping', _('ICMP echo (ping)'));
		o.value('tcp', _('TCP connect'));
		o.default = 'ping';

		o = s.option(form.Value, 'track_port', _('TCP port'));
		o.depends('track_method', 'tcp');
		o.rmempty = false;
		o.validate = function(section_id, value) {
			if (value == null || value === '') return _('is required with the TCP probe method');
			return check(v.port)(section_id, value);
		};

		o = s.option(form.Value, 'reliability', _('Targets that must answer'),
			_('How many targets must answer in a round for it to count as good.'));
		o.placeholder = '1';
		o.validate = function(section_id, value) {
			var r = check(v.reliability)(section_id, value);
			if (r !== true || value == null || value === '') return r;
			var targets = this.section.formvalue(section_id, 'track_ip') || [];
			if (+value > targets.length)
				return _('is %d but only %d probe targets are configured').format(+value, targets.length);
			return true;
		};

		o = s.option(form.Value, 'interval', _('Probe interval'), _('Duration such as 1, 500ms, 2s or 1m.'));
		o.placeholder = '1s';
		o.validate = check(v.interval);

		o = s.option(form.Value, 'timeout', _('Probe timeout'));
		o.placeholder = '1s';
		o.validate = check(v.timeout);

		o = s.option(form.Value, 'down', _('Bad rounds before down'));
		o.placeholder = '3';
		o.validate = check(v.upDown);

		o = s.option(form.Value, 'up', _('Good rounds before up'));
		o.placeholder = '3';
		o.validate = check(v.upDown);

		o = s.option(form.Value, 'count', _('Probes per round'));
		o.placeholder = '1';
		o.validate = check(v.count);

		/* Members */
		s = m.section(form.TypedSection, 'member', _('Members'),
			_('An uplink as used by policies: a lower metric is preferred (failover); equal metrics share new connections by weight (balance).'));
		s.addremove = true;
		s.anonymous = false;

		o = s.option(form.ListValue, 'interface', _('Interface'));
		names('interface').forEach(function(n) { o.value(n); });
		o.rmempty = false;
		o.validate = function(section_id, value) {
			if (value == null || value === '') return _('is required');
			return check(v.reference(names('interface'), 'interface'))(section_id, value);
		};

		o = s.option(form.Value, 'metric', _('Metric'), _('1 to 256; lower is preferred.'));
		o.placeholder = '1';
		o.validate = check(v.metric);

		o = s.option(form.Value, 'weight', _('Weight'), _('1 to 1000; share among members of the same metric.'));
		o.placeholder = '1';
		o.validate = check(v.weight);

		/* Policies */
		s = m.section(form.TypedSection, 'policy', _('Policies'),
			_('A set of members traffic may use.'));
		s.addremove = true;
		s.anonymous = false;

		o = s.option(form.MultiValue, 'use_member', _('Members'));
		names('member').forEach(function(n) { o.value(n); });
		o.validate = checkWords(v.reference(names('member'), 'member'));

		o = s.option(form.ListValue, 'last_resort', _('Last resort'));
		o.value('', _('as in the global settings'));
		o.value('default');
		o.value('unreachable');
		o.value('blackhole');
		o.optional = true;

		/* Rules */
		s = m.section(form.TypedSection, 'rule', _('Rules'),
			_('Send matching traffic through another policy, or past uplinkd (default: the main routing table).'));
		s.addremove = true;
		s.anonymous = false;
		s.sortable = true;

		o = s.option(form.ListValue, 'use_policy', _('Policy'));
		o.value('default', _('default (main routing table)'));
		names('policy').forEach(function(n) { o.value(n); });
		o.rmempty = false;

		o = s.option(form.ListValue, 'family', _('Address family'));
		o.value('any', _('IPv4 and IPv6'));
		o.value('ipv4', _('IPv4'));
		o.value('ipv6', _('IPv6'));
		o.default = 'any';

		o = s.option(form.ListValue, 'proto', _('Protocol'));
		[ 'all', 'tcp', 'udp', 'icmp' ].forEach(function(p) { o.value(p); });
		o.default = 'all';

		o = s.option(form.Value, 'src_ip', _('Source address'));
		o.optional = true;
		o.datatype = 'ipaddr';

		o = s.option(form.Value, 'dest_ip', _('Destination address'));
		o.optional = true;
		o.datatype = 'ipaddr';

		o = s.option(form.Value, 'dest_port', _('Destination port'));
		o.optional = true;
		o.datatype = 'portrange';

		o = s.option(form.Flag, 'sticky', _('Sticky'), _('Keep a client on the same uplink for all its connections.'));

		return m.render();
	}
});
