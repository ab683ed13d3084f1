'use strict';
'require baseclass';

/*
 * uplinkd status → what the pages show. Plain functions over the status report (see
 * docs/status.md), no LuCI or DOM dependency: the same file is loaded by the LuCI views
 * (as a LuCI class), by node's test runner (as a CommonJS module) and inlined in the
 * daemon's own status page. Everything that returns markup escapes what it inserts.
 */

var STATES = {
	'up':         { label: 'Up',         color: '#2e7d32', text: '#fff', hint: 'probes answer: carries traffic' },
	'degraded':   { label: 'Degraded',   color: '#f9a825', text: '#000', hint: 'answers, but latency or loss is over the limits: used only when nothing better is up' },
	'down':       { label: 'Down',       color: '#c62828', text: '#fff', hint: 'probes go unanswered: carries no new traffic' },
	'held':       { label: 'Held',       color: '#6a1b9a', text: '#fff', hint: 'flapping: held down until it settles' },
	'no-carrier': { label: 'No carrier', color: '#455a64', text: '#fff', hint: 'the link is down or the device is missing' },
	'disabled':   { label: 'Disabled',   color: '#9e9e9e', text: '#000', hint: 'switched off in the configuration or drained' }
};

/* An unknown state (a newer daemon) is shown as itself, never as another state. */
function stateInfo(state) {
	if (Object.prototype.hasOwnProperty.call(STATES, state))
		return STATES[state];
	return { label: String(state == null ? 'unknown' : state), color: '#000000', text: '#fff', hint: 'state not known to this page' };
}

function isNum(v) {
	return typeof v === 'number' && isFinite(v);
}

function escapeHtml(s) {
	return String(s == null ? '' : s)
		.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
		.replace(/"/g, '&quot;').replace(/'/g, '&#39;');
}

/* Seconds as 42s, 5m12s, 3h04m, 2d05h (like `uplinkd status`). */
function formatAge(s) {
	if (!isNum(s) || s < 0)
		return '-';
	s = Math.floor(s);
	var pad = function(n) { return (n < 10 ? '0' : '') + n; };
	if (s < 60) return s + 's';
	if (s < 3600) return Math.floor(s / 60) + 'm' + pad(s % 60) + 's';
	if (s < 86400) return Math.floor(s / 3600) + 'h' + pad(Math.floor(s % 3600 / 60)) + 'm';
	return Math.floor(s / 86400) + 'd' + pad(Math.floor(s % 86400 / 3600)) + 'h';
}

function formatRtt(ms) {
	return isNum(ms) && ms >= 0 ? ms.toFixed(1) + ' ms' : '-';
}

function formatPercent(p) {
	return isNum(p) && p >= 0 ? (Math.round(p * 10) / 10) + '%' : '-';
}

function obj(v) {
	return v && typeof v === 'object' && !Array.isArray(v) ? v : {};
}

function arr(v) {
	return Array.isArray(v) ? v : [];
}

/* One view per WAN, sorted by name: everything a card shows, as plain text. */
function wans(status) {
	var ifaces = obj(obj(status).interfaces);
	return Object.keys(ifaces).sort().map(function(name) {
		var w = obj(ifaces[name]);
		var info = stateInfo(w.state);
		var share = obj(w.share);
		var held = (w.state === 'held' && isNum(w.held_until)) ? ' (' + formatAge(w.held_until) + ' left)' : '';
		return {
			name: name,
			state: String(w.state == null ? 'unknown' : w.state),
			label: info.label + held + (w.drained === true ? ', drained' : ''),
			drained: w.drained === true,
			color: info.color,
			textColor: info.text,
			hint: info.hint,
			since: formatAge(w.since),
			reason: typeof w.reason === 'string' ? w.reason : '',
			device: typeof w.device === 'string' ? w.device : '-',
			gateway: [ w.gateway, w.gateway6 ].filter(function(g) {
				return typeof g === 'string';
			}).join(', ') || '-',
			prefixes6: arr(w.prefixes6).filter(function(p) { return typeof p === 'string'; }).join(', '),
			weight: isNum(w.weight) ? String(w.weight) : '-',
			share: Object.keys(share).sort().map(function(p) {
				return { policy: p, text: formatPercent(share[p]) };
			}),
			targets: arr(w.targets).map(function(t) {
				t = obj(t);
				return {
					ip: String(t.ip == null ? '?' : t.ip),
					rtt: formatRtt(t.mean_rtt_ms),
					loss: formatPercent(t.loss_percent),
					sent: isNum(t.sent) ? String(t.sent) : '0',
					lost: isNum(t.lost) ? String(t.lost) : '0'
				};
			}),
			history: arr(w.history)
		};
	});
}

/* Chart geometry for a history (oldest first): a polyline of RTT (gaps where no target
 * answered) scaled to the largest RTT, and loss bars from the bottom. */
function chart(history, width, height) {
	history = arr(history);
	width = width || 240;
	height = height || 60;
	var n = history.length;
	var max = 0;
	history.forEach(function(h) {
		var r = obj(h).rtt_ms;
		if (isNum(r) && r > max) max = r;
	});
	var step = n > 1 ? width / (n - 1) : 0;
	var segments = [], current = [], bars = [];
	history.forEach(function(h, i) {
		h = obj(h);
		var x = Math.round(i * step * 10) / 10;
		if (isNum(h.rtt_ms) && max > 0) {
			var y = Math.round((height - (h.rtt_ms / max) * (height - 4)) * 10) / 10;
			current.push(x + ',' + y);
		} else if (current.length) {
			segments.push(current);
			current = [];
		}
		if (isNum(h.loss_percent) && h.loss_percent > 0) {
			var bh = Math.round(Math.min(h.loss_percent, 100) / 100 * height * 10) / 10;
			bars.push({ x: x, y: Math.round((height - bh) * 10) / 10, h: bh });
		}
	});
	if (current.length) segments.push(current);
	return { width: width, height: height, maxRtt: max, segments: segments, bars: bars, points: n };
}

/* The chart as an SVG string (only numbers are inserted). */
function chartSvg(history, width, height) {
	var c = chart(history, width, height);
	var out = '<svg xmlns="http://www.w3.org/2000/svg" class="uplinkd-chart" width="' + c.width +
		'" height="' + (c.height + 14) + '" viewBox="0 0 ' + c.width + ' ' + (c.height + 14) + '">';
	out += '<rect x="0" y="0" width="' + c.width + '" height="' + c.height + '" fill="#f5f5f5" stroke="#ddd"/>';
	var bw = c.points > 1 ? Math.max(1, Math.round(c.width / c.points * 10) / 10) : 2;
	c.bars.forEach(function(b) {
		out += '<rect x="' + b.x + '" y="' + b.y + '" width="' + bw + '" height="' + b.h + '" fill="#e57373" opacity="0.7"/>';
	});
	c.segments.forEach(function(s) {
		if (s.length === 1)
			out += '<circle cx="' + s[0].split(',')[0] + '" cy="' + s[0].split(',')[1] + '" r="1.5" fill="#1565c0"/>';
		else
			out += '<polyline fill="none" stroke="#1565c0" stroke-width="1.5" points="' + s.join(' ') + '"/>';
	});
	var caption = c.points === 0 ? 'no probe rounds yet'
		: c.maxRtt > 0 ? 'RTT (max ' + formatRtt(c.maxRtt) + ') and loss, last ' + c.points + ' rounds'
		: 'no answer in the last ' + c.points + ' rounds';
	out += '<text x="0" y="' + (c.height + 11) + '" font-size="10" fill="#555">' + escapeHtml(caption) + '</text>';
	return out + '</svg>';
}

/* One card as HTML. */
function cardHtml(v) {
	var rows = v.targets.length ? v.targets.map(function(t) {
		return '<tr><td>' + escapeHtml(t.ip) + '</td><td>' + escapeHtml(t.rtt) + '</td><td>' +
			escapeHtml(t.loss) + '</td><td>' + escapeHtml(t.lost) + '/' + escapeHtml(t.sent) + '</td></tr>';
	}).join('') : '<tr><td colspan="4">no probe targets: follows the carrier</td></tr>';
	var share = v.share.length ? v.share.map(function(s) {
		return escapeHtml(s.policy) + ' ' + escapeHtml(s.text);
	}).join(', ') : 'none';
	return '<div class="uplinkd-card" data-wan="' + escapeHtml(v.name) + '" data-state="' + escapeHtml(v.state) + '">' +
		'<div class="uplinkd-head"><strong>' + escapeHtml(v.name) + '</strong> ' +
		'<span class="uplinkd-state" title="' + escapeHtml(v.hint) + '" style="background:' + v.color +
		';color:' + v.textColor + '">' + escapeHtml(v.label) + '</span></div>' +
		'<div class="uplinkd-why">for ' + escapeHtml(v.since) + ': ' + escapeHtml(v.reason) + '</div>' +
		'<div>device ' + escapeHtml(v.device) + ', gateway ' + escapeHtml(v.gateway) + ', weight ' + escapeHtml(v.weight) + '</div>' +
		(v.prefixes6 ? '<div>IPv6 prefixes ' + escapeHtml(v.prefixes6) + '</div>' : '') +
		'<div>share of new flows: ' + share + '</div>' +
		'<table class="uplinkd-targets"><tr><th>target</th><th>RTT</th><th>loss</th><th>lost/sent</th></tr>' + rows + '</table>' +
		chartSvg(v.history) + '</div>';
}

/* All cards; a report without WANs says so. */
function cardsHtml(status) {
	var list = wans(status);
	if (!list.length)
		return '<p class="uplinkd-empty">No WAN interfaces are configured.</p>';
	return list.map(cardHtml).join('');
}

/* One line per WAN, for an overview widget. */
function summary(status) {
	return wans(status).map(function(v) {
		var rtt = v.targets.filter(function(t) { return t.rtt !== '-'; }).map(function(t) { return t.rtt; })[0];
		return v.name + ': ' + v.label + (rtt ? ', ' + rtt : '') + ' (' + v.since + ')';
	});
}

/*
 * Option checks with the daemon's ranges (src/config/check.rs): each returns true or the
 * message to show, as LuCI's `option.validate` expects. Empty means "use the default".
 */
function wholeNumber(lo, hi) {
	return function(v) {
		if (v == null || v === '') return true;
		if (!/^[0-9]+$/.test(String(v)) || +v < lo || +v > hi)
			return 'must be a whole number from ' + lo + ' to ' + hi;
		return true;
	};
}

function seconds(lo, hi) {
	return function(v) {
		if (v == null || v === '') return true;
		var m = /^([0-9]*)(\.[0-9]+)?(ms|s|m)?$/.exec(String(v));
		if (!m || (m[1] === '' && !m[2])) return 'must be a duration such as 500ms, 2s or 1m';
		var unit = { ms: 0.001, s: 1, m: 60 }[m[3] || 's'];
		var x = parseFloat((m[1] || '0') + (m[2] || '')) * unit;
		if (x < lo || x > hi)
			return 'must be from ' + lo + ' s to ' + hi + ' s';
		return true;
	};
}

function ipv4or6(v) {
	if (v == null || v === '') return true;
	v = String(v);
	var m = /^([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})$/.exec(v);
	if (m) {
		for (var i = 1; i <= 4; i++)
			if (+m[i] > 255) return 'not an IP address';
		return true;
	}
	if (/^[0-9a-fA-F:]+$/.test(v) && v.indexOf(':') >= 0 && (v.match(/::/g) || []).length <= 1)
		return true;
	return 'not an IP address';
}

function listen(v) {
	if (v == null || v === '') return true;
	v = String(v);
	var port = /^[0-9]+$/.test(v) ? v : null;
	var m = /^(?:\[([0-9a-fA-F:]+)\]|([0-9.]+)):([0-9]+)$/.exec(v);
	if (m) {
		if (ipv4or6(m[1] || m[2]) !== true) return 'not an address:port';
		port = m[3];
	}
	if (port == null || +port < 1 || +port > 65535)
		return 'must be a port or an address:port, e.g. 9110 or 0.0.0.0:9110';
	return true;
}

/* Sections that name others must name existing ones: `names` is a list of section names. */
function reference(names, what) {
	return function(v) {
		if (v == null || v === '') return true;
		return names.indexOf(String(v)) >= 0 ? true : 'names no ' + what + " section: '" + v + "'";
	};
}

var validate = {
	weight: wholeNumber(1, 1000),
	metric: wholeNumber(1, 256),
	reliability: wholeNumber(1, 8),
	count: wholeNumber(1, 10),
	upDown: wholeNumber(1, 100),
	lossPercent: wholeNumber(0, 100),
	port: wholeNumber(1, 65535),
	timeout: seconds(0.1, 60),
	interval: seconds(0.1, 3600),
	ip: ipv4or6,
	listen: listen,
	reference: reference
};

var Model = {
	STATES: STATES,
	stateInfo: stateInfo,
	escapeHtml: escapeHtml,
	formatAge: formatAge,
	formatRtt: formatRtt,
	formatPercent: formatPercent,
	wans: wans,
	chart: chart,
	chartSvg: chartSvg,
	cardHtml: cardHtml,
	cardsHtml: cardsHtml,
	summary: summary,
	validate: validate
};

if (typeof module === 'object' && module && module.exports)
	module.exports = Model;
else if (typeof baseclass === 'function')
	return baseclass.extend(Model);
return Model;
