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

/* Bytes as MB (10^6), one decimal below 10. */
function formatMegabytes(b) {
	if (!isNum(b)) return '-';
	var mb = b / 1e6;
	return (mb < 10 ? Math.round(mb * 10) / 10 : Math.round(mb)) + ' MB';
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

/* Bytes for people, in powers of 1000 as the daemon reads `20G`: `4.80 MB`. */
function formatBytes(b) {
	if (!isNum(b) || b < 0) return '-';
	var units = [ 'B', 'kB', 'MB', 'GB', 'TB' ], i = 0;
	while (b >= 1000 && i < units.length - 1) { b /= 1000; i++; }
	return i === 0 ? String(b) + ' B' : b.toFixed(2) + ' ' + units[i];
}

var QUOTA_COLORS = { normal: '#4caf50', warned: '#f0ad4e', exceeded: '#d9534f' };

/* A metered WAN's usage (status `quota`), or null for a WAN without a quota. */
function quotaView(q) {
	if (q == null || typeof q !== 'object' || !isNum(q.bytes) || q.bytes <= 0)
		return null;
	var used = isNum(q.used) ? q.used : 0;
	var state = (typeof q.state === 'string' && QUOTA_COLORS[q.state]) ? q.state : 'normal';
	var percent = Math.floor(used * 100 / q.bytes);
	var end = isNum(q.period_end) ? new Date(q.period_end * 1000) : null;
	return {
		state: state,
		percent: percent,
		bar: Math.min(100, percent),
		color: QUOTA_COLORS[state],
		text: formatBytes(used) + ' of ' + formatBytes(q.bytes) + ' (' + percent + '%)' +
			(state === 'exceeded' ? ', spent: last resort only' : state === 'warned' ? ', warned' : ''),
		resets: end && !isNaN(end.getTime()) ? end.toISOString().slice(0, 16).replace('T', ' ') + ' UTC' : ''
	};
}

/* One view per WAN, sorted by name: everything a card shows, as plain text. */
function wans(status) {
	var ifaces = obj(obj(status).interfaces);
	var policies = obj(obj(status).policies);
	return Object.keys(ifaces).sort().map(function(name) {
		var w = obj(ifaces[name]);
		/* What each policy's mode gives this WAN now (status `policies.<p>.weights`). */
		var modes = Object.keys(policies).sort().filter(function(p) {
			return isNum(obj(obj(policies[p]).weights)[name]);
		}).map(function(p) {
			var pol = obj(policies[p]);
			return {
				policy: p,
				mode: typeof pol.mode === 'string' ? pol.mode : 'weighted',
				weight: String(obj(pol.weights)[name])
			};
		});
		var info = stateInfo(w.state);
		var share = obj(w.share);
		var held = (w.state === 'held' && isNum(w.held_until)) ? ' (' + formatAge(w.held_until) + ' left)' : '';
		return {
			name: name,
			state: String(w.state == null ? 'unknown' : w.state),
			label: info.label + held + (w.drained === true ? ', drained' : '') +
				(w.standby === true ? ', standby' : ''),
			standby: w.standby === true,
			modes: modes,
			probeMonthly: isNum(w.probe_monthly_bytes) && w.probe_monthly_bytes > 0
				? formatMegabytes(w.probe_monthly_bytes) + ' a month' : '',
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
					method: typeof t.method === 'string' ? t.method : 'ping',
					error: typeof t.last_error === 'string' ? t.last_error : '',
					rtt: formatRtt(t.mean_rtt_ms),
					loss: formatPercent(t.loss_percent),
					sent: isNum(t.sent) ? String(t.sent) : '0',
					lost: isNum(t.lost) ? String(t.lost) : '0'
				};
			}),
			history: arr(w.history),
			quota: quotaView(w.quota)
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

/* A metered WAN's usage bar (nothing for others). */
function quotaHtml(q) {
	if (!q) return '';
	return '<div class="uplinkd-quota" data-state="' + escapeHtml(q.state) + '">quota: ' + escapeHtml(q.text) +
		(q.resets ? ', resets ' + escapeHtml(q.resets) : '') +
		'<div style="background:#8884;height:.5em;border-radius:2px;margin:.2em 0">' +
		'<div style="width:' + q.bar + '%;height:100%;border-radius:2px;background:' + q.color + '"></div></div></div>';
}

/* One card as HTML. */
function cardHtml(v) {
	var rows = v.targets.length ? v.targets.map(function(t) {
		return '<tr><td>' + escapeHtml(t.ip) + '</td><td>' + escapeHtml(t.method) + '</td><td>' +
			escapeHtml(t.rtt) + '</td><td>' + escapeHtml(t.loss) + '</td><td>' + escapeHtml(t.lost) + '/' +
			escapeHtml(t.sent) + '</td><td>' + escapeHtml(t.error) + '</td></tr>';
	}).join('') : '<tr><td colspan="6">no probe targets: follows the carrier</td></tr>';
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
		(v.modes.length ? '<div class="uplinkd-modes">effective weight: ' + v.modes.map(function(m) {
			return escapeHtml(m.policy) + ' (' + escapeHtml(m.mode) + ') ' + escapeHtml(m.weight);
		}).join(', ') + '</div>' : '') +
		(v.probeMonthly ? '<div>probes cost ' + escapeHtml(v.probeMonthly) + '</div>' : '') +
		quotaHtml(v.quota) +
		'<table class="uplinkd-targets"><tr><th>target</th><th>probe</th><th>RTT</th><th>loss</th><th>lost/sent</th><th>last error</th></tr>' + rows + '</table>' +
		chartSvg(v.history) + '</div>';
}

/* All cards; a report without WANs says so. */
function cardsHtml(status) {
	var list = wans(status);
	if (!list.length)
		return '<p class="uplinkd-empty">No WAN interfaces are configured.</p>';
	return list.map(cardHtml).join('');
}

/* The HA role keepalived reported ("HA: master (5m)"), or null on a router alone. */
function haLine(status) {
	var ha = obj(obj(status).ha);
	if (typeof ha.role !== 'string')
		return null;
	return 'HA: ' + ha.role + (isNum(ha.since) ? ' (' + formatAge(ha.since) + ')' : '');
}

/* One line per WAN, for an overview widget, and the HA role of a pair member. */
function summary(status) {
	var lines = wans(status).map(function(v) {
		var rtt = v.targets.filter(function(t) { return t.rtt !== '-'; }).map(function(t) { return t.rtt; })[0];
		/* A mode's decision where it is not plain weights: `balanced lowest_latency 0`. */
		var decided = v.modes.filter(function(m) { return m.mode !== 'weighted'; }).map(function(m) {
			return m.policy + ' ' + m.mode + ' ' + m.weight;
		});
		return v.name + ': ' + v.label + (rtt ? ', ' + rtt : '') + ' (' + v.since + ')' +
			(decided.length ? ', weight ' + decided.join(', ') : '');
	});
	var ha = haLine(status);
	if (ha)
		lines.push(ha);
	return lines;
}

/*
 * Option checks with the daemon's rules (src/config/check.rs): each returns true or the
 * message to show, as LuCI's `option.validate` expects. Empty means "use the default".
 * The list checks take every value of an option (a uci list, or one value that may join
 * several with commas or spaces, as the daemon and the mwan3 importer write them).
 */
var MAX_TARGETS = 8;

function empty(v) {
	return v == null || v === '';
}

function wholeNumber(lo, hi) {
	return function(v) {
		if (empty(v)) return true;
		if (!/^[0-9]+$/.test(String(v)) || +v < lo || +v > hi)
			return 'must be a whole number from ' + lo + ' to ' + hi;
		return true;
	};
}

/* Milliseconds of `500ms`, `2s`, `1.5m`, or of a plain number in `plainMs` units; null
 * when it is none of these (as the daemon reads durations). */
function durationMs(v, plainMs) {
	var m = /^([0-9]*)(?:\.([0-9]*))?(ms|s|m)?$/.exec(String(v));
	if (!m || (m[1] === '' && !m[2]) || m[1].length > 12 || (m[2] || '').length > 6)
		return null;
	var unit = { ms: 1, s: 1000, m: 60000 }[m[3]] || plainMs;
	return Math.floor(parseFloat((m[1] || '0') + '.' + (m[2] || '0')) * unit + 1e-9);
}

function fmtMs(ms) {
	if (ms >= 60000 && ms % 60000 === 0) return (ms / 60000) + 'm';
	if (ms >= 1000 && ms % 1000 === 0) return (ms / 1000) + 's';
	if (ms < 1000) return ms + 'ms';
	return (ms / 1000) + 's';
}

function duration(plainMs, loMs, hiMs) {
	return function(v) {
		if (empty(v)) return true;
		var ms = durationMs(v, plainMs);
		if (ms == null || ms < loMs || ms > hiMs)
			return 'must be a duration from ' + fmtMs(loMs) + ' to ' + fmtMs(hiMs) + ' such as 500ms, 2s or 1m';
		return true;
	};
}

function isIpv4(v) {
	var m = /^([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})$/.exec(String(v));
	if (!m) return false;
	for (var i = 1; i <= 4; i++)
		if (+m[i] > 255 || (m[i].length > 1 && m[i][0] === '0')) return false;
	return true;
}

function isIpv6(v) {
	v = String(v);
	if (!/^[0-9a-fA-F:.]+$/.test(v) || v.indexOf(':') < 0) return false;
	var halves = v.split('::');
	if (halves.length > 2) return false;
	var groups = 0;
	for (var h = 0; h < halves.length; h++) {
		if (halves[h] === '') continue;
		var parts = halves[h].split(':');
		for (var i = 0; i < parts.length; i++) {
			var last = h === halves.length - 1 && i === parts.length - 1;
			if (last && parts[i].indexOf('.') >= 0) {
				if (!isIpv4(parts[i])) return false;
				groups += 2;
			} else if (/^[0-9a-fA-F]{1,4}$/.test(parts[i])) {
				groups += 1;
			} else {
				return false;
			}
		}
	}
	return halves.length === 2 ? groups < 8 : groups === 8;
}

/* 4, 6 or 0 (not an address). */
function ipFamily(v) {
	return isIpv4(v) ? 4 : isIpv6(v) ? 6 : 0;
}

function ipv4or6(v) {
	if (empty(v)) return true;
	return ipFamily(v) ? true : 'not an IP address';
}

function familyName(family) {
	return family == null || family === '' ? 'ipv4' : String(family);
}

/* Whether an address of `fam` (4 or 6) may be used on a section of `family`. */
function familyMatches(family, fam) {
	family = familyName(family);
	return family === 'any' || (family === 'ipv4' && fam === 4) || (family === 'ipv6' && fam === 6);
}

function values(list) {
	if (list == null) return [];
	return (Array.isArray(list) ? list : [ list ]).map(String);
}

/* Words of a list whose values may join several with commas or spaces. */
function words(list) {
	var out = [];
	values(list).forEach(function(v) {
		v.split(/[, ]/).forEach(function(w) { if (w !== '') out.push(w); });
	});
	return out;
}

/* `192.0.2.1`, `192.0.2.0/24`, `2001:db8::/32`: its family (4 or 6), or 0. */
function prefixFamily(v) {
	var m = /^([^/]*)(?:\/([0-9]{1,3}))?$/.exec(String(v));
	if (!m) return 0;
	var fam = ipFamily(m[1]);
	if (!fam || (m[2] != null && +m[2] > (fam === 4 ? 32 : 128))) return 0;
	return fam;
}

/* A rule's address: a prefix, or an IPv4 address with a dotted netmask, contiguous
   (`192.0.2.0/255.255.255.0`) or not (`0.0.0.1/0.0.0.1`): its family, or 0. */
function ruleAddrFamily(v) {
	var m = /^([^/]*)\/([^/]*)$/.exec(String(v));
	if (m && isIpv4(m[1]) && isIpv4(m[2])) return 4;
	return prefixFamily(v);
}

/* `src_ip`, `dest_ip` of a rule of `family` (default any). */
function prefixes(list, family) {
	family = family == null || family === '' ? 'any' : family;
	var w = words(list);
	for (var i = 0; i < w.length; i++) {
		var fam = ruleAddrFamily(w[i]);
		if (!fam)
			return 'must be an address, a network such as 192.0.2.0/24 or an IPv4 address ' +
				"with a netmask such as 0.0.0.1/0.0.0.1, not '" + w[i] + "'";
		if (!familyMatches(family, fam))
			return "'" + w[i] + "' does not match family " + family;
	}
	return true;
}

/* `443`, `8000-8100` or mwan3's `8000:8100`. */
function portRange(v) {
	var m = /^([0-9]{1,5})(?:[-:]([0-9]{1,5}))?$/.exec(String(v));
	if (!m) return false;
	var a = +m[1], b = m[2] == null ? a : +m[2];
	return a >= 1 && b >= 1 && a <= 65535 && b <= 65535 && a <= b;
}

/* `src_port`, `dest_port`: `80,443`, `list dest_port 8000-8100`. */
function ports(list) {
	var w = words(list);
	for (var i = 0; i < w.length; i++)
		if (!portRange(w[i]))
			return "must be a port or range such as 443 or 8000-8100, not '" + w[i] + "'";
	return true;
}

/* Ports need a protocol that has them. */
function portsNeedProto(proto, src, dest) {
	if (!words(src).length && !words(dest).length) return true;
	var p = proto == null || proto === '' ? 'all' : String(proto);
	if ([ 'all', 'tcp', 'udp', '6', '17' ].indexOf(p) >= 0) return true;
	return 'needs proto tcp, udp or all (tcp and udp)';
}

function proto(v) {
	if (empty(v)) return true;
	if ([ 'all', 'tcp', 'udp', 'icmp' ].indexOf(String(v)) >= 0) return true;
	if (/^[0-9]{1,3}$/.test(String(v)) && +v <= 255) return true;
	return "must be all, tcp, udp, icmp or a protocol number, not '" + v + "'";
}

/* `gateway`: at most one per family, each of the interface's family. */
function gateways(list, family) {
	var seen = {};
	var v = values(list).filter(function(g) { return g !== ''; });
	for (var i = 0; i < v.length; i++) {
		var fam = ipFamily(v[i]);
		if (!fam) return "must be an IP address, not '" + v[i] + "'";
		if (!familyMatches(family, fam)) return v[i] + ' does not match family ' + familyName(family);
		if (seen[fam]) return 'lists two gateways of one family';
		seen[fam] = true;
	}
	return true;
}

/* `track_ip`: at most 8 distinct addresses of the interface's family. */
function targets(list, family) {
	var seen = {};
	var v = values(list).filter(function(t) { return t !== ''; });
	for (var i = 0; i < v.length; i++) {
		var fam = ipFamily(v[i]);
		if (!fam) return "must be an IP address, not '" + v[i] + "'";
		if (seen[v[i]]) return 'lists ' + v[i] + ' twice';
		if (!familyMatches(family, fam)) return v[i] + ' does not match family ' + familyName(family);
		seen[v[i]] = true;
	}
	if (v.length > MAX_TARGETS)
		return 'has ' + v.length + ' targets; at most ' + MAX_TARGETS + ' are supported';
	return true;
}

/* `ip6prefix`: IPv6 networks, on an interface of family ipv6 or any. */
function ip6prefixes(list, family) {
	var v = values(list).filter(function(p) { return p !== ''; });
	for (var i = 0; i < v.length; i++) {
		var fam = prefixFamily(v[i]);
		if (!fam) return "must be an address or network such as 2001:db8::/48, not '" + v[i] + "'";
		if (fam !== 6 || familyName(family) === 'ipv4')
			return "'" + v[i] + "' needs an IPv6 interface (family ipv6 or any)";
	}
	return true;
}

/* `reliability` against the number of targets: `track_ip`, or for the gateway probe one
 * gateway per family of the section. */
function reliabilityFor(v, targetList, method, family) {
	var r = wholeNumber(1, MAX_TARGETS)(v);
	if (r !== true || empty(v)) return r;
	if (method === 'gateway') {
		var g = familyName(family) === 'any' ? 2 : 1;
		if (+v > g)
			return 'is ' + (+v) + ' but the gateway probe has only ' + g + ' target(s), one per family';
		return true;
	}
	var n = values(targetList).filter(function(t) { return t !== ''; }).length;
	if (+v > Math.max(n, 1))
		return 'is ' + (+v) + ' but only ' + n + ' track_ip targets are configured';
	return true;
}

/* `flush_conntrack` words. */
function flush(list) {
	var ok = [ 'ifdown', 'disconnected', 'ifup', 'connected', 'never', 'none' ];
	var v = words(list);
	for (var i = 0; i < v.length; i++)
		if (ok.indexOf(v[i]) < 0)
			return "must be ifdown, disconnected, ifup, connected or never, not '" + v[i] + "'";
	return true;
}

/* A Linux device name (the kernel's dev_valid_name()). */
function device(v) {
	if (empty(v)) return true;
	v = String(v);
	if (v.length > 15 || v === '.' || v === '..' || /[\/:\s]/.test(v))
		return 'must be a Linux device name (1-15 bytes, no /, : or spaces)';
	return true;
}

/* An nft set name in uplinkd's table. */
function nftSet(v) {
	if (empty(v)) return true;
	if (!/^[A-Za-z_][A-Za-z0-9_\-.\/]*$/.test(String(v)) || String(v).length > 64)
		return 'must be an nft set name (a letter, then letters, digits, _ - . /)';
	return true;
}

function mask(v) {
	if (empty(v)) return true;
	v = String(v);
	var n = /^0[xX][0-9a-fA-F]{1,8}$/.test(v) ? parseInt(v.slice(2), 16)
		: /^[0-9]{1,10}$/.test(v) ? +v : NaN;
	if (!(n > 0 && n <= 0xFFFFFFFF))
		return 'must be a non-zero 32-bit mask such as 0x3F00';
	return true;
}

/* `recovery` must not exceed `failure` (latency as durations in plain ms, loss as numbers). */
function notAbove(kind) {
	return function(recovery, failure) {
		if (empty(recovery) || empty(failure)) return true;
		var r = kind === 'latency' ? durationMs(recovery, 1) : +recovery;
		var f = kind === 'latency' ? durationMs(failure, 1) : +failure;
		if (r == null || f == null || isNaN(r) || isNaN(f)) return true;
		return r <= f ? true : 'must not exceed failure_' + kind + ' (' + failure + ')';
	};
}

function below(what) {
	return function(v, other) {
		if (empty(v) || empty(other) || isNaN(+v) || isNaN(+other)) return true;
		return +v < +other ? true : 'must be below ' + what + ' (' + other + ')';
	};
}

/* `table_first`..`table_last` as the daemon accepts them. */
function tableRange(first, last) {
	var f = empty(first) ? 1100 : +first, l = empty(last) ? 1199 : +last;
	if (isNaN(f) || isNaN(l)) return true;
	if (f > l) return 'must not be below table_first (' + f + ')';
	if (l * 2 - f + 1 > 0xFFFFFFFF) return 'leaves no room for IPv6 nexthop ids: the range must end below 2^31';
	if (f <= 255 && l >= 253) return 'the range must not include tables 253, 254 and 255 (default, main, local)';
	return true;
}

function listen(v) {
	if (empty(v)) return true;
	v = String(v);
	var port = /^[0-9]+$/.test(v) ? v : null;
	var m = /^(?:\[([0-9a-fA-F:.]+)\]|([0-9.]+)):([0-9]+)$/.exec(v);
	if (m) {
		if (m[1] != null ? !isIpv6(m[1]) : !isIpv4(m[2])) return 'not an address:port';
		port = m[3];
	}
	if (port == null || +port < 1 || +port > 65535)
		return 'must be a port or an address:port, e.g. 9110 or 0.0.0.0:9110';
	return true;
}

/* Sections that name others must name existing ones: `names` is a list of section names. */
function reference(names, what) {
	return function(v) {
		if (empty(v)) return true;
		return names.indexOf(String(v)) >= 0 ? true : 'names no ' + what + " section: '" + v + "'";
	};
}

/* `use_member`: existing members, each once. */
function members(list, names) {
	var v = words(list), seen = {};
	for (var i = 0; i < v.length; i++) {
		if (names.indexOf(v[i]) < 0) return "names no member section: '" + v[i] + "'";
		if (seen[v[i]]) return "lists '" + v[i] + "' twice";
		seen[v[i]] = true;
	}
	return true;
}

var SEC = 1000, MIN = 60000, HOUR = 3600000;

/* `quota`: `20G`, `500M`, `1.5G`, `20Gi`, bytes (K/M/G/T = 1000^n, Ki..Ti = 1024^n). */
function quotaSize(v) {
	if (empty(v)) return true;
	var m = /^([0-9]{1,15})(\.[0-9]{1,6})?(Ki|Mi|Gi|Ti|ki|mi|gi|ti|K|M|G|T|k|m|g|t)?[Bb]?$/.exec(String(v));
	if (!m || parseFloat(m[1] + (m[2] || '')) === 0)
		return 'must be a size such as 20G, 500M, 1.5G or 20Gi (bytes; K/M/G/T = 1000^n, Ki/Mi/Gi/Ti = 1024^n)';
	return true;
}

/* `quota_reset_day` for the period: 1-31 monthly; mon..sun or 1-7 weekly; none daily. */
function quotaDay(v, period) {
	if (empty(v)) return true;
	period = period || 'monthly';
	if (period === 'daily')
		return 'has no meaning with quota_period daily (use quota_reset_time)';
	if (period === 'weekly') {
		if (/^(mon|tue|wed|thu|fri|sat|sun)$|^(monday|tuesday|wednesday|thursday|friday|saturday|sunday)$/i.test(v) || /^[1-7]$/.test(v))
			return true;
		return 'must be a weekday for quota_period weekly: mon..sun or 1..7 (1 = Monday)';
	}
	if (/^[0-9]+$/.test(v) && +v >= 1 && +v <= 31)
		return true;
	return 'must be a day of the month from 1 to 31 (a shorter month resets on its last day)';
}

/* `quota_reset_time`: HH:MM, 00:00 to 23:59. */
function quotaTime(v) {
	if (empty(v)) return true;
	var m = /^([0-9]{1,2}):([0-9]{2})$/.exec(String(v));
	if (!m || +m[1] > 23 || +m[2] > 59)
		return 'must be a local time of day HH:MM from 00:00 to 23:59';
	return true;
}

/* `quota_save_interval`: 1m to 24h (`30m`, `1h`, or a duration as elsewhere). */
function quotaSave(v) {
	if (empty(v)) return true;
	var h = /^([0-9]+)h$/.exec(String(v));
	var ms = h ? +h[1] * HOUR : durationMs(v, SEC);
	if (ms == null || ms < MIN || ms > 24 * HOUR)
		return 'must be a duration from 1m to 24h such as 30m or 1h';
	return true;
}

/* `standby_interval` must not be shorter than `interval` (both durations in seconds when
 * plain; an empty interval is the default 1s). */
function standbyInterval(standby, interval) {
	if (empty(standby)) return true;
	var s = durationMs(standby, SEC);
	var i = empty(interval) ? SEC : durationMs(interval, SEC);
	if (s != null && i != null && s < i)
		return 'must not be shorter than the probe interval (' + fmtMs(i) + ')';
	return true;
}

var validate = {
	weight: wholeNumber(1, 1000),
	metric: wholeNumber(1, 256),
	bandwidth: wholeNumber(1, 100000000),
	overflowThreshold: wholeNumber(1, 100),
	latencyMargin: duration(1, 0, 10 * SEC),
	latencyHold: duration(SEC, 0, HOUR),
	reliability: wholeNumber(1, MAX_TARGETS),
	reliabilityFor: reliabilityFor,
	count: wholeNumber(1, 10),
	upDown: wholeNumber(1, 100),
	lossPercent: wholeNumber(0, 100),
	flapNumber: wholeNumber(1, 1000000),
	port: wholeNumber(1, 65535),
	tableId: wholeNumber(1, 0xFFFFFFFE),
	rulePriority: wholeNumber(1, 31000),
	routeProto: wholeNumber(5, 254),
	timeout: duration(SEC, 100, MIN),
	interval: duration(SEC, 100, HOUR),
	standbyInterval: standbyInterval,
	latency: duration(1, 1, MIN),
	flapDuration: duration(SEC, SEC, HOUR),
	reconcile: duration(SEC, SEC, HOUR),
	stickyTimeout: duration(SEC, SEC, 24 * HOUR),
	ip: ipv4or6,
	gateways: gateways,
	targets: targets,
	ip6prefixes: ip6prefixes,
	prefixes: prefixes,
	ports: ports,
	portsNeedProto: portsNeedProto,
	proto: proto,
	flush: flush,
	device: device,
	nftSet: nftSet,
	mask: mask,
	latencyPair: notAbove('latency'),
	lossPair: notAbove('loss'),
	reuseBelowSuppress: below('flap_suppress'),
	tableRange: tableRange,
	listen: listen,
	reference: reference,
	members: members,
	quota: quotaSize,
	quotaWarn: wholeNumber(1, 100),
	quotaDay: quotaDay,
	quotaTime: quotaTime,
	quotaSave: quotaSave
};

/* How a ubus status code (as rpc.js reports it) reads on the pages. */
var UBUS_ERRORS = {
	2: 'uplinkd refused the request as an invalid argument (a daemon older or newer than this page?).',
	3: 'uplinkd does not know this method (a daemon older than this page?).',
	4: 'uplinkd is not running or not registered on ubus.',
	6: 'Access denied: your login may not call uplinkd (see the luci-app-uplinkd ACL).',
	7: 'uplinkd did not answer in time.',
	9: 'uplinkd reported an error.',
	10: 'The connection to ubus failed.'
};

/* A message for an error from rpc.js (`RPCError: ... ubus code 6: ...`, an access
 * refused by uhttpd, a lost session) or a bare ubus status code. */
function ubusError(e) {
	var code = typeof e === 'number' ? e : null;
	var text = e && typeof e === 'object' ? String(e.message || '') : String(e == null ? '' : e);
	var m = /ubus code ([0-9]+)/.exec(text);
	if (m) code = +m[1];
	if (code == null && /access denied|permission denied/i.test(text)) code = 6;
	if (code != null && Object.prototype.hasOwnProperty.call(UBUS_ERRORS, code))
		return UBUS_ERRORS[code];
	if (/not found/i.test(text)) return UBUS_ERRORS[4];
	return 'uplinkd could not be asked: ' + (text || ('ubus code ' + code));
}

/* The result of `ubus call uplinkd reload` as rpc.js returns it without `reject`: 0 (or
 * an empty object) on success, `{ error: "..." }` or a status code when refused. */
function reloadOutcome(r) {
	if (r === 0 || r == null || (typeof r === 'object' && !Array.isArray(r) && typeof r.error !== 'string' && !Object.keys(r).length))
		return { ok: true, message: 'uplinkd reloaded its configuration.' };
	if (typeof r === 'object' && typeof r.error === 'string')
		return { ok: false, message: 'uplinkd refused the new configuration: ' + r.error };
	if (typeof r === 'number')
		return { ok: false, message: 'uplinkd refused the new configuration (' + ubusError(r) + ' See the system log.)' };
	return { ok: true, message: 'uplinkd reloaded its configuration.' };
}

var Model = {
	STATES: STATES,
	stateInfo: stateInfo,
	escapeHtml: escapeHtml,
	formatAge: formatAge,
	formatRtt: formatRtt,
	formatPercent: formatPercent,
	formatBytes: formatBytes,
	quotaView: quotaView,
	formatMegabytes: formatMegabytes,
	wans: wans,
	chart: chart,
	chartSvg: chartSvg,
	cardHtml: cardHtml,
	cardsHtml: cardsHtml,
	summary: summary,
	haLine: haLine,
	validate: validate,
	words: words,
	durationMs: durationMs,
	ubusError: ubusError,
	reloadOutcome: reloadOutcome
};

if (typeof module === 'object' && module && module.exports)
	module.exports = Model;
else if (typeof baseclass === 'function')
	return baseclass.extend(Model);
return Model;
