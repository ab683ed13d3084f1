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
