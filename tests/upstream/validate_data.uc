#!/usr/bin/ucode
// A stand-in for /sbin/validate_data (OpenWrt's ubox, not among the upstream sources), for
// the test root: what uci_validate_section in procd.sh calls.
//   validate_data PACKAGE TYPE SECTION OPTION:DATATYPE[:DEFAULT] ...
// Prints `OPTION='value'; ` for each option (the default when unset; lists space-joined)
// and exits 1 if a value fails its datatype, naming it on stderr. With an empty SECTION
// (procd_add_validation) it prints nothing. Datatypes: or() and() list() range() min()
// max() maxlength() minlength() integer uinteger bool string uciname hostname port
// portrange ipaddr ip4addr ip6addr cidr cidr4 cidr6 and quoted literals; any other
// datatype passes.
import * as fs from 'fs';
import { cursor } from 'uci';

// Split at `sep` outside parentheses and quotes.
function split_top(s, sep) {
	let out = [], depth = 0, q = null, cur = '';
	for (let i = 0; i < length(s); i++) {
		let c = substr(s, i, 1);
		if (q) { if (c == q) q = null; }
		else if (c == '"' || c == "'") q = c;
		else if (c == '(') depth++;
		else if (c == ')') depth--;
		else if (c == sep && depth == 0) { push(out, cur); cur = ''; continue; }
		cur += c;
	}
	push(out, cur);
	return out;
}

function is_ip4(v) { let a = iptoarr(v); return a != null && length(a) == 4 && match(v, /^[0-9.]+$/) != null; }
function is_ip6(v) { let a = iptoarr(v); return a != null && length(a) == 16; }
function cidr(v, ok, max) {
	let p = split(v, '/');
	if (length(p) > 2 || !ok(p[0])) return false;
	return length(p) == 1 || (match(p[1], /^[0-9]+$/) != null && +p[1] <= max);
}
function num(v) { return match(v, /^-?[0-9]+(\.[0-9]+)?$/) != null; }

let check;
check = function(dt, v) {
	dt = trim(dt);
	let f = substr(dt, 0, 1);
	if (f == '"' || f == "'")
		return v == substr(dt, 1, length(dt) - 2);
	let m = match(dt, /^([a-z0-9_]+)(\((.*)\))?$/);
	if (!m) return true;
	let name = m[1], args = m[2] ? split_top(m[3], ',') : [];
	switch (name) {
	case 'or': return length(filter(args, (a) => check(a, v))) > 0;
	case 'and': return length(filter(args, (a) => !check(a, v))) == 0;
	case 'not': return !check(args[0], v);
	case 'list': return length(filter(split(v, /[ \t]+/), (x) => x != '' && !check(args[0], x))) == 0;
	case 'range': return num(v) && +v >= +args[0] && +v <= +args[1];
	case 'min': return num(v) && +v >= +args[0];
	case 'max': return num(v) && +v <= +args[0];
	case 'maxlength': return length(v) <= +args[0];
	case 'minlength': return length(v) >= +args[0];
	case 'integer': return match(v, /^-?[0-9]+$/) != null;
	case 'uinteger': return match(v, /^[0-9]+$/) != null;
	case 'float': case 'ufloat': return num(v);
	case 'bool': return v in ['0', '1', 'true', 'false', 'yes', 'no', 'on', 'off'];
	case 'string': return true;
	case 'uciname': return match(v, /^[A-Za-z0-9_]+$/) != null;
	case 'hostname': return match(v, /^[A-Za-z0-9_.-]+$/) != null && length(v) <= 253;
	case 'port': return match(v, /^[0-9]+$/) != null && +v <= 65535;
	case 'portrange': return length(filter(split(v, '-'), (p) => !check('port', p))) == 0 && length(split(v, '-')) <= 2;
	case 'ipaddr': return is_ip4(v) || is_ip6(v);
	case 'ip4addr': return is_ip4(v);
	case 'ip6addr': return is_ip6(v);
	case 'cidr': return cidr(v, is_ip4, 32) || cidr(v, is_ip6, 128);
	case 'cidr4': return cidr(v, is_ip4, 32);
	case 'cidr6': return cidr(v, is_ip6, 128);
	default: return true;
	}
};

let pkg = ARGV[0], typ = ARGV[1], sec = ARGV[2];
if (!sec)
	exit(0);
let c = cursor();
let s = c.get_all(pkg, sec) || {};
let bad = 0, out = '';
for (let spec in slice(ARGV, 3)) {
	let parts = split_top(spec, ':');
	let opt = parts[0], dt = parts[1] || 'string', def = (length(parts) > 2) ? join(':', slice(parts, 2)) : null;
	let v = s[opt];
	let vals = (type(v) == 'array') ? v : ((v == null) ? null : [v]);
	if (vals == null) {
		if (def != null)
			out += `${opt}='${replace(def, "'", "'\\''")}'; `;
		else
			out += `${opt}=; `;
		continue;
	}
	let okay = true;
	for (let x in vals)
		if (!check(dt, x))
			okay = false;
	let joined = join(' ', vals);
	if (!okay) {
		bad++;
		fs.stderr.write(`${pkg}.${sec}.${opt}=${joined} validates as ${dt} with false\n`);
		out += (def != null) ? `${opt}='${replace(def, "'", "'\\''")}'; ` : `${opt}=; `;
		continue;
	}
	out += `${opt}='${replace(joined, "'", "'\\''")}'; `;
}
print(out, '\n');
exit(bad ? 1 : 0);
