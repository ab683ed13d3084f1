'use strict';
'require view';
'require form';
'require uci';
'require rpc';
'require ui';
'require uplinkd.model as model';

var v = model.validate;

/* Without `reject`: the daemon's answer to a refused reload, `{ error: "..." }`, comes back. */
var callReload = rpc.declare({ object: 'uplinkd', method: 'reload' });

/* Set by Save & Apply; the page LuCI reloads after applying asks the daemon then. */
var PENDING = 'uplinkd-apply-pending';

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

/* The value of another option of the same section as the form has it now. */
function other(o, section_id, option) {
	var x = o.section.formvalue(section_id, option);
	return x == null ? uci.get('uplinkd', section_id, option) : x;
}

/*
 * A list option: each new entry is checked against those already there (`fn(list)`), and
 * the whole list again when the form is saved, so that LuCI refuses what the daemon would.
 */
function listCheck(o, fn) {
	var base = form.DynamicList.prototype;
	var whole = function(section_id) {
		var list = this.formvalue(section_id);
		var r = fn.call(this, section_id, list == null ? [] : list);
		return r === true ? '' : _(r);
	};
	o.validate = function(section_id, value) {
		if (value == null || value === '') return true;
		var list = (this.formvalue(section_id) || []).filter(function(x) { return x !== value; });
		var r = fn.call(this, section_id, list.concat([ value ]));
		return r === true ? true : _(r);
	};
	o.isValid = function(section_id) {
		return base.isValid.call(this, section_id) && whole.call(this, section_id) === '';
	};
	o.getValidationError = function(section_id) {
		return base.getValidationError.call(this, section_id) || whole.call(this, section_id);
	};
}

function names(type) {
	return uci.sections('uplinkd', type).map(function(s) { return s['.name']; });
}

/*
 * Choices that name sections are read again each time the form is drawn (LuCI redraws it
 * after Add), so an interface added in this session is offered to a new member at once.
 */
function choicesOf(o, type, fixed) {
	var load = o.load;
	o.load = function(section_id) {
		this.keylist = [];
		this.vallist = [];
		(fixed || []).forEach(function(f) { this.value(f[0], f[1]); }, this);
		names(type).forEach(function(n) { this.value(n); }, this);
		return load.call(this, section_id);
	};
}

function number(s, tab, name, title, help, placeholder, fn) {
	var o = s.taboption(tab, form.Value, name, title, help);
	o.placeholder = placeholder;
	o.optional = true;
	o.validate = check(fn);
	return o;
}

return view.extend({
	load: function() {
		return uci.load('uplinkd');
	},

	/* After Save & Apply LuCI reloads the page; reloading the daemon from here answers
	 * with its verdict (procd's reload only writes it to the system log). */
	showReload: function() {
		var pending = null;
		try {
			pending = window.sessionStorage.getItem(PENDING);
			window.sessionStorage.removeItem(PENDING);
		} catch (e) {}
		if (pending == null || Date.now() - (+pending) > 300000)
			return;
		return callReload().then(function(r) {
			var out = model.reloadOutcome(r);
			ui.addNotification(null, E('p', { 'class': 'uplinkd-reload', 'data-ok': out.ok ? '1' : '0' },
				_(out.message)), out.ok ? 'info' : 'danger');
		}).catch(function(e) {
			ui.addNotification(null, E('p', { 'class': 'uplinkd-reload', 'data-ok': '0' },
				_(model.ubusError(e))), 'danger');
		});
	},

	handleSaveApply: function(ev, mode) {
		try { window.sessionStorage.setItem(PENDING, String(Date.now())); } catch (e) {}
		return this.super('handleSaveApply', [ ev, mode ]);
	},

	render: function() {
		var m, s, o;

		m = new form.Map('uplinkd', _('uplinkd'),
			_('uplinkd watches each uplink (WAN) by probing a few addresses through it, and routes new connections over the uplinks that answer. ' +
			  '<b>Failover</b>: give one uplink a lower metric than the others; it carries everything while it is up, and the next metric takes over when it goes down. ' +
			  '<b>Balance</b>: give several uplinks the same metric; new connections are spread over them by weight, and an uplink that goes down simply leaves the mix. ' +
			  'Existing connections stay on the uplink they started on.'));

		/* Globals */
		s = m.section(form.TypedSection, 'globals', _('Global settings'));
		s.anonymous = true;
		s.addremove = false;
		s.tab('general', _('General'));
		s.tab('advanced', _('Advanced'));

		o = s.taboption('general', form.ListValue, 'default_policy', _('Default policy'),
			_('The policy all traffic uses unless a rule says otherwise. Empty: the first policy; <em>default</em>: the main routing table, as mwan3 leaves traffic no rule matches.'));
		choicesOf(o, 'policy', [ [ '', _('the first policy') ], [ 'default', _('default (main routing table)') ] ]);
		o.optional = true;

		o = s.taboption('general', form.ListValue, 'last_resort', _('Last resort'),
			_('When no uplink of a policy is usable: <em>default</em> falls through to the main routing table, <em>unreachable</em> rejects, <em>blackhole</em> drops silently.'));
		o.value('default');
		o.value('unreachable');
		o.value('blackhole');
		o.default = 'default';

		o = s.taboption('general', form.Value, 'http_listen', _('Metrics and status page'),
			_('Serve /metrics (Prometheus), /status.json and a status page on this port or address:port. Empty: off. A bare port listens on 127.0.0.1 only.'));
		o.placeholder = '9110';
		o.optional = true;
		o.validate = check(v.listen);

		o = s.taboption('general', form.ListValue, 'log_level', _('Log level'));
		[ 'error', 'warning', 'notice', 'info', 'debug' ].forEach(function(l) { o.value(l); });
		o.default = 'info';

		o = number(s, 'advanced', 'table_first', _('First routing table'),
			_('uplinkd owns the routing tables from this id to the last one: one per interface and per policy.'), '1100', v.tableId);
		o = number(s, 'advanced', 'table_last', _('Last routing table'), null, '1199', v.tableId);
		o.validate = function(section_id, value) {
			var self = this, r = check(v.tableId)(section_id, value);
			return r !== true ? r : check(function(x) {
				return v.tableRange(other(self, section_id, 'table_first'), x);
			})(section_id, value);
		};
		number(s, 'advanced', 'rule_priority', _('Rule priority'),
			_('uplinkd owns the 1000 routing rule priorities from this one on.'), '4000', v.rulePriority);
		number(s, 'advanced', 'route_proto', _('Route protocol'),
			_('Protocol number stamped on the routes, rules and nexthops uplinkd owns (5 to 254).'), '212', v.routeProto);
		number(s, 'advanced', 'fwmark_mask', _('Firewall mark bits'),
			_('Bits of the packet and connection mark uplinkd may use to pin connections to an uplink.'), '0x3F00', v.mask);
		o = s.taboption('advanced', form.Value, 'quota_state', _('Quota state file'),
			_('Where the metered uplinks\' counts are kept across restarts (an absolute path; default /etc/uplinkd/quota.json).'));
		o.placeholder = '/etc/uplinkd/quota.json';
		o.optional = true;
		o.validate = function(section_id, value) {
			return (value == null || value === '' || (/^\/.*[^\/]$/.test(value))) ? true : _('must be an absolute file path');
		};
		number(s, 'advanced', 'reconcile_interval', _('Resync interval'),
			_('How often the kernel state is re-read and corrected even without events (1s to 1h).'), '30s', v.reconcile);

		/* Interfaces */
		s = m.section(form.TypedSection, 'interface', _('Interfaces'),
			_('Each uplink to watch. Leave the device empty to follow the network interface of the same name (PPPoE, LTE, DHCP).'));
		s.addremove = true;
		s.anonymous = false;
		s.tab('general', _('General'));
		s.tab('probes', _('Probing'));
		s.tab('quality', _('Latency and loss'));
		s.tab('damping', _('Flap damping'));
		s.tab('quota', _('Data quota'));

		o = s.taboption('general', form.Flag, 'enabled', _('Enabled'));
		o.default = '1';
		o.rmempty = false;

		o = s.taboption('general', form.Value, 'device', _('Device'), _('Linux device, e.g. eth1; empty: as netifd reports it.'));
		o.optional = true;
		o.validate = check(v.device);

		o = s.taboption('general', form.ListValue, 'family', _('Address family'),
			_('IPv4 and IPv6 on one interface share one health; for independent IPv6 health add a second interface on the same device with family IPv6.'));
		o.value('ipv4', _('IPv4'));
		o.value('ipv6', _('IPv6'));
		o.value('any', _('IPv4 and IPv6'));
		o.default = 'ipv4';

		o = s.taboption('general', form.DynamicList, 'gateway', _('Gateway'),
			_('At most one per family, of the address family above. Empty: discovered.'));
		o.optional = true;
		listCheck(o, function(section_id, list) {
			return v.gateways(list, other(this, section_id, 'family'));
		});

		o = s.taboption('general', form.DynamicList, 'ip6prefix', _('Delegated IPv6 prefixes'),
			_('Connections from these prefixes always use this uplink. Empty: learned from netifd.'));
		o.optional = true;
		o.depends('family', 'ipv6');
		o.depends('family', 'any');
		listCheck(o, function(section_id, list) {
			return v.ip6prefixes(list, other(this, section_id, 'family'));
		});

		o = s.taboption('general', form.MultiValue, 'flush_conntrack', _('Flush connections'),
			_("Delete this uplink's pinned connections (only those) so that they start afresh: when it goes down (the default), when it comes back, or never."));
		o.value('ifdown', _('when it goes down'));
		o.value('ifup', _('when it comes back'));
		o.value('never', _('never'));
		o.optional = true;
		o.validate = function(section_id, value) {
			var r = v.flush(value);
			return r === true ? true : _(r);
		};

		number(s, 'general', 'bandwidth_down', _('Download capacity'),
			_('kbit/s (1 to 100000000); needed by the least used and overflow modes.'), '', v.bandwidth);
		number(s, 'general', 'bandwidth_up', _('Upload capacity'),
			_('kbit/s (1 to 100000000); needed by the least used and overflow modes.'), '', v.bandwidth);

		o = number(s, 'quota', 'quota', _('Data quota'),
			_('Data allowed per period, e.g. 20G or 500M (K/M/G/T are powers of 1000, Ki/Mi/Gi/Ti of 1024). Once it is spent the uplink is used only when no other is usable. Empty: not metered.'), '', v.quota);
		o = s.taboption('quota', form.ListValue, 'quota_period', _('Period'));
		o.value('monthly', _('monthly'));
		o.value('weekly', _('weekly'));
		o.value('daily', _('daily'));
		o.default = 'monthly';
		o.optional = true;
		o.depends({ quota: '', '!reverse': true });
		o = number(s, 'quota', 'quota_reset_day', _('Reset day'),
			_('Monthly: day of the month 1 to 31 (a shorter month resets on its last day). Weekly: mon to sun, or 1 to 7 with 1 = Monday.'), '1', function(x) { return true; });
		o.depends('quota_period', 'monthly');
		o.depends('quota_period', 'weekly');
		o.validate = function(section_id, value) {
			var r = v.quotaDay(value, other(this, section_id, 'quota_period'));
			return r === true ? true : _(r);
		};
		o = number(s, 'quota', 'quota_reset_time', _('Reset time'),
			_('Local time of day (HH:MM) the period starts; the router\'s time zone (System settings).'), '00:00', v.quotaTime);
		o.depends({ quota: '', '!reverse': true });
		o = s.taboption('quota', form.ListValue, 'quota_direction', _('What counts'));
		o.value('both', _('download and upload'));
		o.value('down', _('download only'));
		o.value('up', _('upload only'));
		o.default = 'both';
		o.optional = true;
		o.depends({ quota: '', '!reverse': true });
		o = number(s, 'quota', 'quota_warn', _('Warn at'),
			_('Percent of the quota (1 to 100) at which a warning event and hook run.'), '80', v.quotaWarn);
		o.depends({ quota: '', '!reverse': true });
		o = number(s, 'quota', 'quota_save_interval', _('Save interval'),
			_('Longest time a count stays unsaved to flash (1m to 24h, e.g. 30m or 1h).'), '1h', v.quotaSave);
		o.depends({ quota: '', '!reverse': true });

		o = s.taboption('probes', form.DynamicList, 'track_ip', _('Probe targets'),
			_('Addresses that should always answer through this uplink, at most 8, of the address family above. None: the uplink follows its carrier only.'));
		o.depends({ track_method: 'gateway', '!reverse': true });
		listCheck(o, function(section_id, list) {
			return v.targets(list, other(this, section_id, 'family'));
		});

		o = s.taboption('probes', form.ListValue, 'track_method', _('Probe method'));
		o.value('ping', _('ICMP echo (ping)'));
		o.value('tcp', _('TCP connect'));
		o.value('http', _('HTTP GET (sees captive portals)'));
		o.value('dns', _('DNS query (targets are resolvers)'));
		o.value('gateway', _('Gateway ARP/NDP (no targets: the kernel re-resolves the gateway each round)'));
		o.default = 'ping';

		o = s.taboption('probes', form.Value, 'track_port', _('TCP port'));
		o.depends('track_method', 'tcp');
		o.rmempty = false;
		o.validate = function(section_id, value) {
			if (value == null || value === '') return _('is required with the TCP probe method');
			return check(v.port)(section_id, value);
		};

		o = s.taboption('probes', form.Value, 'http_path', _('HTTP path'),
			_('Plain HTTP only. A redirect or a page with another status is a failed round.'));
		o.depends('track_method', 'http');
		o.placeholder = '/generate_204';

		o = s.taboption('probes', form.Value, 'track_host', _('HTTP Host header'),
			_('Default: the target address.'));
		o.depends('track_method', 'http');
		o.datatype = 'hostname';

		o = s.taboption('probes', form.Value, 'expect_status', _('Expected HTTP status'),
			_('100-599, or any.'));
		o.depends('track_method', 'http');
		o.placeholder = '204';

		o = s.taboption('probes', form.Value, 'expect_body', _('Expected text in the body'));
		o.depends('track_method', 'http');

		o = s.taboption('probes', form.Value, 'dns_query', _('DNS name to ask for'),
			_('NOERROR and NXDOMAIN answer; SERVFAIL, REFUSED and silence fail.'));
		o.depends('track_method', 'dns');
		o.datatype = 'hostname';
		o.placeholder = 'example.com';

		o = s.taboption('probes', form.ListValue, 'dns_type', _('DNS record type'));
		o.depends('track_method', 'dns');
		o.value('A');
		o.value('AAAA');
		o.default = 'A';

		o = s.taboption('probes', form.Value, 'reliability', _('Targets that must answer'),
			_('How many targets must answer in a round for it to count as good.'));
		o.placeholder = '1';
		o.optional = true;
		o.validate = function(section_id, value) {
			var r = v.reliabilityFor(value, this.section.formvalue(section_id, 'track_ip') || [],
				other(this, section_id, 'track_method'), other(this, section_id, 'family'));
			return r === true ? true : _(r);
		};

		number(s, 'probes', 'count', _('Probes per round'),
			_('Probes sent to each target per round; the target answers if any of them does (1 to 10).'), '1', v.count);
		number(s, 'probes', 'interval', _('Probe interval'),
			_('Time between rounds: a duration such as 500ms, 2s or 1m (100ms to 1h); a plain number is seconds.'), '1s', v.interval);
		number(s, 'probes', 'failure_interval', _('Interval while failing'),
			_('Time between rounds while a failure is being confirmed. Empty: half the probe interval.'), '', v.interval);
		number(s, 'probes', 'recovery_interval', _('Interval while recovering'),
			_('Time between rounds while a down uplink is coming back. Empty: the probe interval.'), '', v.interval);
		o = number(s, 'probes', 'standby_interval', _('Interval on standby'),
			_('Time between rounds while no policy would choose this uplink (a backup behind a better one that is up): one probe to as many targets as reliability asks, in turn. Saves data on a metered backup. Empty: always the probe interval.'), '', v.interval);
		o.validate = function(section_id, value) {
			var self = this, r = check(v.interval)(section_id, value);
			return r !== true ? r : check(function(x) {
				return v.standbyInterval(x, other(self, section_id, 'interval'));
			})(section_id, value);
		};
		o = s.taboption('probes', form.ListValue, 'standby_method', _('Probe method on standby'),
			_('The probe kind of a standby round, to the same targets (which must answer it). Ping is the cheapest through the uplink. The probe method comes back with the normal pace. Empty: the probe method.'));
		o.value('', _('the probe method'));
		o.value('ping', _('ICMP echo (ping)'));
		o.value('tcp', _('TCP connect (to the TCP port)'));
		o.value('http', _('HTTP GET (port 80 unless the probe method is HTTP)'));
		o.value('dns', _('DNS query (port 53 unless the probe method is DNS)'));
		o.value('gateway', _('Gateway ARP/NDP'));
		o.optional = true;
		number(s, 'probes', 'timeout', _('Probe timeout'),
			_('How long to wait for an answer (100ms to 60s).'), '1s', v.timeout);
		number(s, 'probes', 'down', _('Bad rounds before down'), _('1 to 100.'), '3', v.upDown);
		number(s, 'probes', 'up', _('Good rounds before up'), _('1 to 100.'), '3', v.upDown);

		o = s.taboption('probes', form.ListValue, 'initial_state', _('Initial state'),
			_('What the uplink is taken to be at start, before its probes have spoken: <em>online</em> carries traffic at once, <em>offline</em> waits for good rounds.'));
		o.value('online', _('online'));
		o.value('offline', _('offline'));
		o.default = 'online';

		o = s.taboption('quality', form.Flag, 'check_quality', _('Judge latency and loss'),
			_('An uplink whose targets answer, but too slowly or with too much loss, is marked degraded and only used when nothing better is up.'));
		o.default = '0';

		o = number(s, 'quality', 'failure_latency', _('Degraded above latency'),
			_('Round-trip time; a plain number is milliseconds (1ms to 60s).'), '1000', v.latency);
		o.depends('check_quality', '1');
		o = number(s, 'quality', 'recovery_latency', _('Recovered below latency'),
			_('Must not exceed the latency above.'), '500', v.latency);
		o.depends('check_quality', '1');
		o.validate = function(section_id, value) {
			var self = this, r = check(v.latency)(section_id, value);
			return r !== true ? r : check(function(x) {
				return v.latencyPair(x, other(self, section_id, 'failure_latency') || '1000');
			})(section_id, value);
		};
		var lossHigh = number(s, 'quality', 'failure_loss', _('Degraded above loss (%)'), _('0 to 100.'), '40', v.lossPercent);
		lossHigh.depends('check_quality', '1');
		var lossLow = number(s, 'quality', 'recovery_loss', _('Recovered below loss (%)'),
			_('Must not exceed the loss above.'), '10', v.lossPercent);
		lossLow.depends('check_quality', '1');
		lossLow.validate = function(section_id, value) {
			var self = this, r = check(v.lossPercent)(section_id, value);
			return r !== true ? r : check(function(x) {
				return v.lossPair(x, other(self, section_id, 'failure_loss') || '40');
			})(section_id, value);
		};

		o = s.taboption('damping', form.Flag, 'flap_damping', _('Hold a flapping uplink down'),
			_('Each fall adds a penalty that halves every half-life; above the suppress limit the uplink is held down until the penalty decays below the reuse limit, at most for the longest hold.'));
		o.default = '1';
		o.rmempty = false;
		var flap = [
			[ 'flap_penalty', _('Penalty per fall'), '1000' ],
			[ 'flap_suppress', _('Suppress limit'), '2000' ],
			[ 'flap_reuse', _('Reuse limit'), '750' ]
		];
		flap.forEach(function(f) {
			var fo = number(s, 'damping', f[0], f[1], _('1 to 1000000.'), f[2], v.flapNumber);
			fo.depends('flap_damping', '1');
			if (f[0] === 'flap_reuse')
				fo.validate = function(section_id, value) {
					var self = this, r = check(v.flapNumber)(section_id, value);
					return r !== true ? r : check(function(x) {
						return v.reuseBelowSuppress(x || '750', other(self, section_id, 'flap_suppress') || '2000');
					})(section_id, value);
				};
		});
		o = number(s, 'damping', 'flap_half_life', _('Half-life'), _('1s to 1h; a plain number is seconds.'), '60s', v.flapDuration);
		o.depends('flap_damping', '1');
		o = number(s, 'damping', 'flap_max_hold', _('Longest hold'), _('1s to 1h; a plain number is seconds.'), '300s', v.flapDuration);
		o.depends('flap_damping', '1');

		/* Members */
		s = m.section(form.TypedSection, 'member', _('Members'),
			_('An uplink as used by policies: a lower metric is preferred (failover); equal metrics share new connections by weight (balance).'));
		s.addremove = true;
		s.anonymous = false;

		o = s.option(form.ListValue, 'interface', _('Interface'));
		choicesOf(o, 'interface');
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
		choicesOf(o, 'member');
		o.validate = function(section_id, value) {
			var r = v.members(value, names('member'));
			return r === true ? true : _(r);
		};

		o = s.option(form.ListValue, 'mode', _('Mode'),
			_('How new connections are spread over the usable members of the best metric.'));
		o.value('weighted', _('weighted (random, by weight)'));
		o.value('round_robin', _('round robin (in turn, by weight)'));
		o.value('least_connections', _('least connections (per unit of weight)'));
		o.value('lowest_latency', _('lowest latency'));
		o.value('least_used', _('least used (spare capacity)'));
		o.value('overflow', _('overflow (fill in order)'));
		o.default = 'weighted';
		o.optional = true;

		o = s.option(form.Value, 'overflow_threshold', _('Overflow at'),
			_('Percent of a member\'s capacity (1 to 100) above which new connections spill to the next one.'));
		o.placeholder = '80';
		o.optional = true;
		o.depends('mode', 'overflow');
		o.validate = check(v.overflowThreshold);

		o = s.option(form.Value, 'latency_margin', _('Latency margin'),
			_('How much faster another member must be to take over: 0 to 10s; a plain number is milliseconds.'));
		o.placeholder = '10ms';
		o.optional = true;
		o.depends('mode', 'lowest_latency');
		o.validate = check(v.latencyMargin);

		o = s.option(form.Value, 'latency_hold', _('Latency hold'),
			_('For how long it must stay faster: 0 to 1h; a plain number is seconds.'));
		o.placeholder = '5s';
		o.optional = true;
		o.depends('mode', 'lowest_latency');
		o.validate = check(v.latencyHold);

		o = s.option(form.ListValue, 'last_resort', _('Last resort'));
		o.value('', _('as in the global settings'));
		o.value('default');
		o.value('unreachable');
		o.value('blackhole');
		o.optional = true;

		/* Rules */
		s = m.section(form.TypedSection, 'rule', _('Rules'),
			_('Send matching traffic through another policy, or past uplinkd (default: the main routing table). The first rule that matches the first packet of a connection wins.'));
		s.addremove = true;
		s.anonymous = false;
		s.sortable = true;

		o = s.option(form.ListValue, 'use_policy', _('Policy'));
		choicesOf(o, 'policy', [ [ 'default', _('default (main routing table)') ] ]);
		o.rmempty = false;

		o = s.option(form.ListValue, 'family', _('Address family'));
		o.value('any', _('IPv4 and IPv6'));
		o.value('ipv4', _('IPv4'));
		o.value('ipv6', _('IPv6'));
		o.default = 'any';

		o = s.option(form.Value, 'proto', _('Protocol'), _('all, tcp, udp, icmp or a protocol number.'));
		[ 'all', 'tcp', 'udp', 'icmp' ].forEach(function(p) { o.value(p); });
		o.default = 'all';
		o.validate = check(v.proto);

		var ruleFamily = function(o, section_id) {
			return other(o, section_id, 'family') || 'any';
		};

		o = s.option(form.DynamicList, 'src_ip', _('Source address'),
			_('Addresses or networks such as 192.168.1.0/24; several per entry may be joined by commas.'));
		o.optional = true;
		listCheck(o, function(section_id, list) { return v.prefixes(list, ruleFamily(this, section_id)); });

		o = s.option(form.DynamicList, 'src_port', _('Source port'),
			_('Ports or ranges such as 443 or 8000-8100; several per entry may be joined by commas. Needs protocol tcp, udp or all.'));
		o.optional = true;
		listCheck(o, function(section_id, list) {
			var r = v.ports(list);
			return r !== true ? r : v.portsNeedProto(other(this, section_id, 'proto'), list, []);
		});

		o = s.option(form.DynamicList, 'dest_ip', _('Destination address'),
			_('Addresses or networks such as 192.168.1.0/24; several per entry may be joined by commas.'));
		o.optional = true;
		listCheck(o, function(section_id, list) { return v.prefixes(list, ruleFamily(this, section_id)); });

		o = s.option(form.DynamicList, 'dest_port', _('Destination port'),
			_('Ports or ranges such as 80,443 or 8000-8100. Needs protocol tcp, udp or all.'));
		o.optional = true;
		listCheck(o, function(section_id, list) {
			var r = v.ports(list);
			return r !== true ? r : v.portsNeedProto(other(this, section_id, 'proto'), [], list);
		});

		o = s.option(form.Value, 'src_iface', _('Incoming device'), _('Match traffic arriving on this device, e.g. br-lan.'));
		o.optional = true;
		o.validate = check(v.device);

		o = s.option(form.Value, 'ipset', _('Destination set'),
			_('Name of an nft set in the table inet uplinkd (created when missing), filled by hand or by dnsmasq (nftset=/example.com/4#inet#uplinkd#NAME).'));
		o.optional = true;
		o.validate = check(v.nftSet);

		o = s.option(form.Flag, 'sticky', _('Sticky'), _('Keep a client on the same uplink for all its connections.'));

		o = s.option(form.Value, 'timeout', _('Sticky for'), _('How long a client stays on its uplink: 1s to 24h; a plain number is seconds.'));
		o.placeholder = '600';
		o.optional = true;
		o.depends('sticky', '1');
		o.validate = check(v.stickyTimeout);

		return Promise.resolve(this.showReload()).then(function() { return m.render(); });
	}
});
