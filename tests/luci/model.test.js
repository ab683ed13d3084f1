'use strict';
// View logic of luci-app-uplinkd (and of the daemon's status page) against status
// fixtures. Run: node --test tests/luci/
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');

const model = require('../../openwrt-package/luci-app-uplinkd/htdocs/luci-static/resources/uplinkd/model.js');

function fixture(name) {
	return JSON.parse(fs.readFileSync(path.join(__dirname, 'fixtures', name + '.json'), 'utf8'));
}

const STATES = ['up', 'degraded', 'down', 'held', 'no-carrier', 'disabled'];

test('every daemon state renders as itself, in its own colour', () => {
	const views = model.wans(fixture('every_state'));
	assert.equal(views.length, STATES.length);
	const colors = new Set();
	for (const st of STATES) {
		const v = views.find((x) => x.name === 'wan-' + st);
		assert.ok(v, st);
		assert.equal(v.state, st);
		assert.equal(v.color, model.STATES[st].color);
		colors.add(v.color);
		const html = model.cardHtml(v);
		assert.match(html, new RegExp('data-state="' + st + '"'));
		assert.ok(html.includes('>' + v.label + '<'), html);
		// No state borrows another's name (mwan3 showed half of its states as "Disabled").
		for (const other of STATES)
			if (other !== st)
				assert.ok(!v.label.startsWith(model.STATES[other].label), st + ' shown as ' + other);
	}
	assert.equal(colors.size, STATES.length, 'one colour per state');
	const held = views.find((x) => x.state === 'held');
	assert.equal(held.label, 'Held (42s left)');
	const disabled = views.find((x) => x.state === 'disabled');
	assert.equal(disabled.label, 'Disabled, drained');
	// The LuCI view offers Enable on this flag, not on the label or the state.
	assert.deepEqual(views.filter((x) => x.drained).map((x) => x.name), ['wan-disabled']);
	assert.equal(views[0].since, '2m05s');
});

test('each target shows its probe kind and last error', () => {
	const v = model.wans({ interfaces: { w: { state: 'down', targets: [
		{ ip: '10.20.1.1', method: 'gateway', last_error: 'timed out', sent: 3, lost: 3 },
		{ ip: '1.1.1.1', sent: 1, lost: 0 }
	] } } })[0];
	assert.deepEqual(v.targets.map((t) => [t.method, t.error]), [['gateway', 'timed out'], ['ping', '']]);
	const html = model.cardHtml(v);
	assert.ok(html.includes('<td>10.20.1.1</td><td>gateway</td>'), html);
	assert.ok(html.includes('<td>timed out</td>'), html);
});

test('an unknown state is shown by its own name', () => {
	const v = model.wans({ interfaces: { w: { state: 'probing-harder' } } })[0];
	assert.equal(v.label, 'probing-harder');
	assert.equal(v.state, 'probing-harder');
});

test('a WAN without targets and an empty history', () => {
	const v = model.wans(fixture('no_targets'))[0];
	assert.deepEqual(v.targets, []);
	assert.equal(v.gateway, '-');
	assert.equal(v.device, '-');
	const html = model.cardHtml(v);
	assert.ok(html.includes('no probe targets'), html);
	assert.ok(html.includes('no probe rounds yet'), html);
	const c = model.chart([]);
	assert.deepEqual([c.points, c.segments.length, c.bars.length, c.maxRtt], [0, 0, 0, 0]);
	assert.deepEqual(model.summary(fixture('no_targets')), ['lte: Up (0s)']);
});

test('the HA role of a pair member', () => {
	const status = Object.assign({}, fixture('no_targets'), { ha: { role: 'backup', since: 300 } });
	assert.equal(model.haLine(status), 'HA: backup (5m00s)');
	assert.deepEqual(model.summary(status), ['lte: Up (0s)', 'HA: backup (5m00s)']);
	for (const alone of [fixture('no_targets'), { ha: null }, { ha: { role: 7 } }, null])
		assert.equal(model.haLine(alone), null);
});

test('no WANs at all', () => {
	assert.deepEqual(model.wans(fixture('empty')), []);
	assert.match(model.cardsHtml(fixture('empty')), /No WAN interfaces/);
	for (const junk of [null, undefined, 5, 'x', [], { interfaces: [] }, { interfaces: null }])
		assert.deepEqual(model.wans(junk), []);
});

test('huge numbers stay finite and readable', () => {
	const s = fixture('huge');
	const v = model.wans(s)[0];
	assert.equal(v.targets[0].rtt, '99999999.9 ms');
	assert.equal(v.targets[0].loss, '100%');
	assert.equal(v.targets[0].sent, String(2 ** 53));
	assert.match(v.since, /^\d+d\d\dh$/);
	const svg = model.chartSvg(v.history);
	assert.ok(!/NaN|Infinity|undefined/.test(svg), svg);
	assert.ok(!/NaN|Infinity|undefined/.test(model.cardsHtml(s)));
});

test('chart: gaps where nothing answered, loss bars, scaled to the largest RTT', () => {
	const c = model.chart([{ rtt_ms: 10, loss_percent: 0 }, { loss_percent: 100 }, { rtt_ms: 20, loss_percent: 50 }, { rtt_ms: 5, loss_percent: 0 }], 300, 60);
	assert.equal(c.maxRtt, 20);
	assert.equal(c.segments.length, 2);
	assert.deepEqual(c.segments[0], ['0,32']);
	assert.deepEqual(c.segments[1], ['200,4', '300,46']);
	assert.deepEqual(c.bars, [{ x: 100, y: 0, h: 60 }, { x: 200, y: 30, h: 30 }]);
	for (const junk of [null, 'x', [null, 5, { rtt_ms: NaN }, { rtt_ms: -1, loss_percent: 1e9 }]]) {
		const svg = model.chartSvg(junk);
		assert.ok(!/NaN|Infinity|undefined/.test(svg), svg);
	}
});

test('chart caption: a WAN nothing answered on shows no made-up RTT', () => {
	const svg = model.chartSvg([{ loss_percent: 100 }, { loss_percent: 100 }]);
	assert.ok(svg.includes('no answer in the last 2 rounds'), svg);
	assert.ok(!svg.includes('max'), svg);
	assert.ok(model.chartSvg([{ rtt_ms: 3, loss_percent: 0 }]).includes('RTT (max 3.0 ms) and loss, last 1 rounds'));
});

test('markup from the daemon is escaped', () => {
	const evil = '<img src=x onerror=alert(1)>"\'&';
	const s = { interfaces: {} };
	s.interfaces[evil] = { state: evil, reason: evil, device: evil, gateway: evil, share: { [evil]: 5 }, targets: [{ ip: evil }] };
	const html = model.cardsHtml(s);
	assert.ok(!html.includes('<img'), html);
	assert.ok(html.includes('&lt;img src=x onerror=alert(1)&gt;&quot;&#39;&amp;'));
});

test('formatting', () => {
	assert.equal(model.formatAge(59), '59s');
	assert.equal(model.formatAge(3600 * 3 + 240), '3h04m');
	assert.equal(model.formatAge(86400 * 2 + 3600 * 5), '2d05h');
	assert.equal(model.formatAge(undefined), '-');
	assert.equal(model.formatAge(-1), '-');
	assert.equal(model.formatRtt(2), '2.0 ms');
	assert.equal(model.formatRtt(null), '-');
	assert.equal(model.formatPercent(33.3), '33.3%');
	assert.equal(model.formatPercent(NaN), '-');
});

test('validation matches the daemon', () => {
	const v = model.validate;
	for (const ok of ['', '1', '1000']) assert.equal(v.weight(ok), true, ok);
	for (const bad of ['0', '1001', '1.5', '-1', 'x']) assert.notEqual(v.weight(bad), true, bad);
	assert.equal(v.metric('256'), true);
	assert.notEqual(v.metric('257'), true);
	assert.notEqual(v.reliability('9'), true);
	for (const ok of ['1', '0.5', '.5', '500ms', '2s', '1m', '60']) assert.equal(v.timeout(ok), true, ok);
	for (const bad of ['.', 's', '0', '50ms', '2m', '1h', '1 s', '-1']) assert.notEqual(v.timeout(bad), true, bad);
	assert.equal(v.interval('1m'), true);
	assert.notEqual(v.interval('61m'), true);
	for (const ok of ['1.1.1.1', '2001:db8::1', '::1']) assert.equal(v.ip(ok), true, ok);
	for (const bad of ['1.1.1', '256.1.1.1', 'host', '1::2::3']) assert.notEqual(v.ip(bad), true, bad);
	for (const ok of ['9110', '127.0.0.1:9110', '0.0.0.0:80', '[::1]:9110']) assert.equal(v.listen(ok), true, ok);
	for (const bad of ['0', '70000', 'localhost:80', '1.2.3.4', '1.2.3.4:0']) assert.notEqual(v.listen(bad), true, bad);
	for (const ok of ['1', '8000', '100000000']) assert.equal(v.bandwidth(ok), true, ok);
	for (const bad of ['0', '100000001', '8M', '1.5']) assert.notEqual(v.bandwidth(bad), true, bad);
	assert.equal(v.overflowThreshold('100'), true);
	for (const bad of ['0', '101']) assert.notEqual(v.overflowThreshold(bad), true, bad);
	for (const ok of ['0', '10', '10ms', '10s']) assert.equal(v.latencyMargin(ok), true, ok);
	assert.notEqual(v.latencyMargin('11s'), true);
	for (const ok of ['0', '5', '1m', '60m']) assert.equal(v.latencyHold(ok), true, ok);
	assert.notEqual(v.latencyHold('61m'), true);
	const ref = v.reference(['wan', 'lte'], 'interface');
	assert.equal(ref('wan'), true);
	assert.equal(ref('wan2'), "names no interface section: 'wan2'");
});

test('a dual-stack WAN shows both gateways and its delegated prefixes', () => {
	const v = model.wans({ interfaces: { wan: { state: 'up', family: 'any', gateway: '192.0.2.1',
		gateway6: 'fe80::1', prefixes6: ['2001:db8:d1::/48', 7] } } })[0];
	assert.equal(v.gateway, '192.0.2.1, fe80::1');
	assert.equal(v.prefixes6, '2001:db8:d1::/48');
	assert.ok(model.cardHtml(v).includes('IPv6 prefixes 2001:db8:d1::/48'));
	const six = model.wans({ interfaces: { wan6: { state: 'up', gateway: 'fe80::1' } } })[0];
	assert.equal(six.gateway, 'fe80::1');
	assert.equal(six.prefixes6, '');
});

test('rule addresses and ports in the forms the daemon and the importer write', () => {
	const v = model.validate;
	for (const ok of [[], '', '192.168.1.0/24', '192.168.1.0/24,192.168.2.0/24', ['10.0.0.1', '2001:db8::/32'],
		'10.0.0.0/8 172.16.0.0/12', ['192.168.1.0/24,192.168.2.0/24', '10.1.1.1'],
		'0.0.0.0/0.0.0.1', '0.0.0.1/0.0.0.1 192.168.1.0/255.255.255.0', ['10.0.0.0/255.0.0.255', 'fd00::/8']])
		assert.equal(v.prefixes(ok), true, JSON.stringify(ok));
	for (const bad of ['192.168.1.0/33', '10.0.0.0/8,host', '2001:db8::/129', '1.2.3', '10.0.0.0/',
		'10.0.0.0/255.0.0.256', '2001:db8::/ffff::', '0.0.0.1/0.0.0.1/1', 'fd00::/0.0.0.1'])
		assert.notEqual(v.prefixes(bad), true, bad);
	assert.equal(v.prefixes('0.0.0.1/0.0.0.1', 'ipv6'), "'0.0.0.1/0.0.0.1' does not match family ipv6");
	assert.equal(v.prefixes('192.168.1.0/24', 'ipv4'), true);
	assert.equal(v.prefixes(['2001:db8::/32'], 'ipv4'), "'2001:db8::/32' does not match family ipv4");
	assert.notEqual(v.prefixes('10.0.0.0/8', 'ipv6'), true);
	for (const ok of ['80', '80,443', '8000-8100', '8000:8100', ['80', '443,8443'], '1-65535'])
		assert.equal(v.ports(ok), true, JSON.stringify(ok));
	for (const bad of ['0', '65536', '100-90', '80,', 'http', '1-2-3'].filter((x) => x !== '80,'))
		assert.notEqual(v.ports(bad), true, bad);
	assert.equal(v.ports('80,'), true, 'an empty word is skipped, as the daemon does');
	assert.equal(v.portsNeedProto('icmp', [], '80'), 'needs proto tcp, udp or all (tcp and udp)');
	for (const p of ['tcp', 'udp', 'all', '', undefined, '6', '17']) assert.equal(v.portsNeedProto(p, '53', []), true, p);
	assert.equal(v.portsNeedProto('icmp', [], []), true);
	for (const ok of ['all', 'tcp', 'udp', 'icmp', '47', '0', '255']) assert.equal(v.proto(ok), true, ok);
	for (const bad of ['gre', '256', '-1']) assert.notEqual(v.proto(bad), true, bad);
	// A `list dest_ip` stays a list: its words are each value's, never one joined string.
	assert.deepEqual(model.words(['192.168.1.0/24,192.168.2.0/24', '10.0.0.0/8']),
		['192.168.1.0/24', '192.168.2.0/24', '10.0.0.0/8']);
});

test('gateways, targets and prefixes are refused where the daemon refuses them', () => {
	const v = model.validate;
	assert.equal(v.gateways(['192.0.2.1'], 'ipv4'), true);
	assert.equal(v.gateways(['192.0.2.1', 'fe80::1'], 'any'), true);
	assert.equal(v.gateways(['192.0.2.1', '192.0.2.2'], 'ipv4'), 'lists two gateways of one family');
	assert.equal(v.gateways(['192.0.2.1', '192.0.2.2'], 'any'), 'lists two gateways of one family');
	assert.equal(v.gateways(['fe80::1'], 'ipv4'), 'fe80::1 does not match family ipv4');
	assert.equal(v.gateways(['fe80::1'], undefined), 'fe80::1 does not match family ipv4', 'ipv4 is the default');
	assert.equal(v.gateways(['192.0.2.1'], 'ipv6'), '192.0.2.1 does not match family ipv6');
	assert.notEqual(v.gateways(['gw'], 'ipv4'), true);
	const nine = Array.from({ length: 9 }, (_, i) => '192.0.2.' + (i + 1));
	assert.equal(v.targets(nine.slice(0, 8), 'ipv4'), true);
	assert.equal(v.targets(nine, 'ipv4'), 'has 9 targets; at most 8 are supported');
	assert.equal(v.targets(['1.1.1.1', '1.1.1.1'], 'ipv4'), 'lists 1.1.1.1 twice');
	assert.equal(v.targets(['2606:4700::1111'], 'ipv4'), '2606:4700::1111 does not match family ipv4');
	assert.equal(v.targets(['2606:4700::1111', '1.1.1.1'], 'any'), true);
	assert.equal(v.ip6prefixes(['2001:db8:1::/48'], 'ipv6'), true);
	assert.notEqual(v.ip6prefixes(['2001:db8:1::/48'], 'ipv4'), true);
	assert.notEqual(v.ip6prefixes(['10.0.0.0/8'], 'any'), true);
	assert.equal(v.reliabilityFor('2', ['1.1.1.1', '8.8.8.8']), true);
	assert.equal(v.reliabilityFor('3', ['1.1.1.1', '8.8.8.8']), 'is 3 but only 2 track_ip targets are configured');
	assert.equal(v.reliabilityFor('1', []), true, 'without targets the default 1 stands');
	assert.equal(v.reliabilityFor('1', [], 'gateway', 'ipv4'), true);
	assert.equal(v.reliabilityFor('2', [], 'gateway', 'any'), true, 'one gateway per family');
	assert.equal(v.reliabilityFor('2', [], 'gateway', ''),
		'is 2 but the gateway probe has only 1 target(s), one per family');
	assert.notEqual(v.reliabilityFor('9', nine), true);
	for (const ok of ['::ffff:192.0.2.1', 'fe80::1', '2001:db8:0:0:0:0:0:1', '::']) assert.equal(v.ip(ok), true, ok);
	for (const bad of ['1:2:3:4:5:6:7:8:9', '2001:db8::1::', '01.2.3.4', 'fe80::1%eth0', ':::']) assert.notEqual(v.ip(bad), true, bad);
});

test('every other option the daemon checks', () => {
	const v = model.validate;
	for (const ok of ['1', '500', '1ms', '60s', '1m', '0.5s']) assert.equal(v.latency(ok), true, ok);
	for (const bad of ['0', '61s', '2m', 'x']) assert.notEqual(v.latency(bad), true, bad);
	assert.equal(v.latencyPair('500', '1000'), true);
	assert.equal(v.latencyPair('2s', '1000'), 'must not exceed failure_latency (1000)');
	assert.equal(v.lossPair('10', '40'), true);
	assert.notEqual(v.lossPair('50', '40'), true);
	assert.equal(v.reuseBelowSuppress('750', '2000'), true);
	assert.equal(v.reuseBelowSuppress('2000', '2000'), 'must be below flap_suppress (2000)');
	for (const ok of ['60', '60s', '1h'.replace('h', 'm'), '3600']) assert.equal(v.flapDuration(ok), true, ok);
	for (const bad of ['0.5', '3601', '61m']) assert.notEqual(v.flapDuration(bad), true, bad);
	assert.equal(v.stickyTimeout('86400'), true);
	assert.notEqual(v.stickyTimeout('86401'), true);
	assert.equal(v.reconcile('30s'), true);
	assert.notEqual(v.reconcile('500ms'), true);
	for (const ok of ['ifdown', 'ifup ifdown', ['disconnected', 'connected'], 'never', []]) assert.equal(v.flush(ok), true, String(ok));
	assert.notEqual(v.flush('always'), true);
	for (const ok of ['eth1', 'pppoe-wan', 'br-lan.10']) assert.equal(v.device(ok), true, ok);
	for (const bad of ['a/b', 'eth:1', 'a b', '0123456789abcdef', '..']) assert.notEqual(v.device(bad), true, bad);
	for (const ok of ['streaming', '_x', 'a-b.c/d']) assert.equal(v.nftSet(ok), true, ok);
	for (const bad of ['1abc', 'a b', 'x'.repeat(65)]) assert.notEqual(v.nftSet(bad), true, bad);
	for (const ok of ['0x3F00', '16128', '0xffffffff']) assert.equal(v.mask(ok), true, ok);
	for (const bad of ['0', '0x0', '0x100000000', 'mask']) assert.notEqual(v.mask(bad), true, bad);
	assert.equal(v.tableRange('1100', '1199'), true);
	assert.equal(v.tableRange('', ''), true);
	assert.equal(v.tableRange('1200', '1100'), 'must not be below table_first (1200)');
	assert.notEqual(v.tableRange('200', '300'), true);
	assert.notEqual(v.tableRange('1', '4294967294'), true);
	assert.equal(v.rulePriority('31000'), true);
	assert.notEqual(v.rulePriority('31001'), true);
	assert.notEqual(v.routeProto('4'), true);
	assert.equal(v.members(['m1', 'm2'], ['m1', 'm2']), true);
	assert.equal(v.members('m1 m1', ['m1']), "lists 'm1' twice");
	assert.equal(v.members(['m3'], ['m1']), "names no member section: 'm3'");
	assert.equal(model.durationMs('1.5m', 1000), 90000);
	assert.equal(model.durationMs('250', 1), 250);
	assert.equal(model.durationMs('.', 1000), null);
});

test('ubus errors read as what they are', () => {
	const denied = model.ubusError(new Error('RPC call to uplinkd/status failed with error -32002: Access denied'));
	const invalid = model.ubusError(new Error('RPC call to uplinkd/status failed with ubus code 2: Invalid argument'));
	const absent = model.ubusError(new Error('RPC call to uplinkd/status failed with ubus code 4: Resource not found'));
	assert.match(denied, /Access denied/);
	assert.match(invalid, /invalid argument/);
	assert.match(absent, /not running/);
	// What uhttpd answers when no uplinkd object is on the bus (checked before the ACL).
	assert.match(model.ubusError(new Error('RPC call to uplinkd/status failed with error -32000: Object not found')), /not running/);
	assert.equal(new Set([denied, invalid, absent]).size, 3);
	assert.match(model.ubusError(6), /Access denied/);
	assert.match(model.ubusError(new Error('timeout')), /could not be asked: timeout/);
	assert.deepEqual(model.reloadOutcome(0).ok, true);
	assert.deepEqual(model.reloadOutcome({}).ok, true);
	const refused = model.reloadOutcome({ error: "/etc/config/uplinkd:7: section 'wan' option 'gateway' lists two gateways of one family" });
	assert.equal(refused.ok, false);
	assert.match(refused.message, /refused the new configuration: .*lists two gateways/);
	assert.equal(model.reloadOutcome(9).ok, false);
	assert.match(model.reloadOutcome(6).message, /Access denied/);
});

test('a metered WAN shows a usage bar; others none', () => {
	const views = model.wans(fixture('every_state'));
	const metered = views.find((x) => x.name === 'wan-degraded');
	assert.equal(metered.quota.percent, 87);
	assert.equal(metered.quota.state, 'warned');
	assert.match(metered.quota.text, /^17\.40 GB of 20\.00 GB \(87%\), warned$/);
	const html = model.cardHtml(metered);
	assert.match(html, /class="uplinkd-quota" data-state="warned"/);
	assert.match(html, /width:87%/);
	assert.match(html, /resets 2026-12-01 00:00 UTC/);
	assert.ok(!model.cardHtml(views.find((x) => x.name === 'wan-up')).includes('uplinkd-quota'));
	// Over the quota: the bar stops at 100 %, the text says so.
	const over = model.quotaView({ bytes: 5000000, used: 6274251, state: 'exceeded' });
	assert.equal(over.bar, 100);
	assert.match(over.text, /125%\), spent: last resort only/);
	for (const bad of [null, 7, {}, { bytes: 0 }, { bytes: 'x' }])
		assert.equal(model.quotaView(bad), null);
	assert.equal(model.formatBytes(999), '999 B');
});

test('quota options are checked as the daemon checks them', () => {
	const v = model.validate;
	for (const ok of ['20G', '500M', '1.5G', '20Gi', '20GiB', '5MB', '123456', ''])
		assert.equal(v.quota(ok), true, ok);
	for (const bad of ['0', 'G', 'lots', '-5M', '5X', '1.2.3G'])
		assert.notEqual(v.quota(bad), true, bad);
	assert.equal(v.quotaDay('31'), true);
	assert.notEqual(v.quotaDay('32'), true);
	assert.equal(v.quotaDay('sun', 'weekly'), true);
	assert.equal(v.quotaDay('7', 'weekly'), true);
	assert.notEqual(v.quotaDay('fun', 'weekly'), true);
	assert.notEqual(v.quotaDay('3', 'daily'), true);
	assert.equal(v.quotaTime('04:30'), true);
	assert.notEqual(v.quotaTime('24:00'), true);
	assert.notEqual(v.quotaTime('4:5'), true);
	assert.equal(v.quotaSave('1h'), true);
	assert.equal(v.quotaSave('30m'), true);
	assert.notEqual(v.quotaSave('10s'), true);
	assert.notEqual(v.quotaSave('25h'), true);
	assert.equal(v.quotaWarn('80'), true);
	assert.notEqual(v.quotaWarn('0'), true);
});

test('standby, probe cost and the effective weights of the modes show', () => {
	const status = {
		interfaces: {
			wan: { state: 'up', since: 5, targets: [], share: { fast: 100 },
				probe_monthly_bytes: 559872000 },
			wwan: { state: 'up', since: 5, targets: [], share: {}, standby: true,
				probe_monthly_bytes: 18662400 }
		},
		policies: {
			fast: { mode: 'lowest_latency', weights: { wan: 1, wwan: 0 }, members: [] },
			plain: { mode: 'weighted', weights: { wan: 3 }, members: [] }
		}
	};
	const [wan, wwan] = model.wans(status);
	assert.equal(wwan.label, 'Up, standby');
	assert.equal(wan.standby, false);
	assert.deepEqual(wwan.modes, [{ policy: 'fast', mode: 'lowest_latency', weight: '0' }]);
	assert.equal(wan.modes.length, 2);
	assert.equal(wan.probeMonthly, '560 MB a month');
	assert.equal(wwan.probeMonthly, '19 MB a month');
	const html = model.cardHtml(wwan);
	assert.ok(html.includes('effective weight: fast (lowest_latency) 0'), html);
	assert.ok(html.includes('probes cost 19 MB a month'), html);
	const lines = model.summary(status);
	assert.equal(lines[0], 'wan: Up (5s), weight fast lowest_latency 1');
	assert.equal(lines[1], 'wwan: Up, standby (5s), weight fast lowest_latency 0');
});
