#!/usr/bin/ucode
// A stand-in for OpenWrt's jsonfilter (not among the upstream sources), for the test root.
// Supports what procd.sh, /sbin/service, rc.common and network.sh use:
//   jsonfilter [-i FILE | -s STRING] [-l LIMIT] [-F SEP] [-q] [-t] -e [VAR=]EXPR ...
// EXPR: @ or $, then .key .* ['key'] ["key"] [key] [N] [-N] [*] [@.a.b='v'] [@.a!="v"] [@.a=5]
// [@.a] (exists), and filters joined by &&. Strings print raw, other values as JSON; with
// VAR= the matches print as `export VAR='v1 v2';`. Exit status 1 when nothing matched.
import * as fs from 'fs';

function die(msg) {
	fs.stderr.write(`jsonfilter: ${msg}\n`);
	exit(125);
}

let parse_cond, run;

// Parse "@.a['b'][0][*][@.c='d']" into steps.
function parse(expr) {
	let i = 0, n = length(expr), steps = [];
	let c0 = substr(expr, 0, 1);
	if (c0 != '@' && c0 != '$')
		die(`expression must start with @ or $: ${expr}`);
	i = 1;
	while (i < n) {
		let c = substr(expr, i, 1);
		if (c == '.') {
			i++;
			if (substr(expr, i, 1) == '*') {
				push(steps, { t: 'wild' });
				i++;
				continue;
			}
			let m = match(substr(expr, i), /^[A-Za-z0-9_-]+/);
			if (!m)
				die(`bad key at ${i} in ${expr}`);
			push(steps, { t: 'key', k: m[0] });
			i += length(m[0]);
		}
		else if (c == '[') {
			// Find the matching ']' outside quotes.
			let j = i + 1, q = null;
			for (; j < n; j++) {
				let d = substr(expr, j, 1);
				if (q) { if (d == q) q = null; }
				else if (d == "'" || d == '"') q = d;
				else if (d == ']') break;
			}
			if (j >= n)
				die(`unclosed [ in ${expr}`);
			let inner = trim(substr(expr, i + 1, j - i - 1));
			i = j + 1;
			let f = substr(inner, 0, 1);
			if (inner == '*')
				push(steps, { t: 'wild' });
			else if (f == "'" || f == '"')
				push(steps, { t: 'key', k: substr(inner, 1, length(inner) - 2) });
			else if (match(inner, /^-?[0-9]+$/))
				push(steps, { t: 'index', n: +inner });
			else if (match(inner, /^[A-Za-z_][A-Za-z0-9_-]*$/))
				push(steps, { t: 'key', k: inner });
			else if (f == '@')
				push(steps, { t: 'filter', conds: map(split(inner, '&&'), parse_cond) });
			else
				die(`unsupported selector [${inner}]`);
		}
		else
			die(`unexpected '${c}' in ${expr}`);
	}
	return steps;
}

parse_cond = function(text) {
	text = trim(text);
	let m = match(text, /^(@[^=!<>]*?)\s*(!=|=|==)\s*(.*)$/);
	if (!m)
		return { path: parse(text), op: 'exists' };
	let v = trim(m[3]), f = substr(v, 0, 1);
	if (f == "'" || f == '"')
		v = substr(v, 1, length(v) - 2);
	else if (v == 'true' || v == 'false')
		v = (v == 'true');
	else if (match(v, /^-?[0-9.]+$/))
		v = +v;
	return { path: parse(trim(m[1])), op: (m[2] == '!=') ? 'ne' : 'eq', v: v };
};

function children(v) {
	if (type(v) == 'array')
		return v;
	if (type(v) == 'object')
		return map(keys(v), (k) => v[k]);
	return [];
}

function holds(v, cond) {
	let r = run(cond.path, v);
	if (cond.op == 'exists')
		return length(r) > 0;
	let eq = length(filter(r, (x) => x == cond.v || (type(x) != type(cond.v) && `${x}` == `${cond.v}`))) > 0;
	return (cond.op == 'eq') ? eq : !eq;
}

run = function(steps, root) {
	let cur = [root];
	for (let s in steps) {
		let next = [];
		for (let v in cur) {
			if (s.t == 'key') {
				if (type(v) == 'object' && exists(v, s.k))
					push(next, v[s.k]);
			}
			else if (s.t == 'index') {
				if (type(v) == 'array') {
					let k = (s.n < 0) ? length(v) + s.n : s.n;
					if (k >= 0 && k < length(v))
						push(next, v[k]);
				}
			}
			else if (s.t == 'wild') {
				for (let x in children(v))
					push(next, x);
			}
			else {
				for (let x in children(v))
					if (length(filter(s.conds, (c) => !holds(x, c))) == 0)
						push(next, x);
			}
		}
		cur = next;
	}
	return cur;
};

function show(v) {
	return (type(v) == 'string') ? v : sprintf('%J', v);
}

let input = null, limit = 0, sep = ' ', quiet = false, types = false, exprs = [];
for (let i = 0; i < length(ARGV); i++) {
	let a = ARGV[i];
	if (a == '-i') input = fs.readfile(ARGV[++i]);
	else if (a == '-s') input = ARGV[++i];
	else if (a == '-l') limit = +ARGV[++i];
	else if (a == '-F') sep = ARGV[++i];
	else if (a == '-q') quiet = true;
	else if (a == '-t') types = true;
	else if (a == '-e') push(exprs, ARGV[++i]);
	else die(`unsupported option ${a}`);
}
if (input == null)
	input = fs.stdin.read('all');
let doc;
try {
	doc = json(input);
}
catch (e) {
	if (!quiet)
		fs.stderr.write('jsonfilter: failed to parse input\n');
	exit(125);
}
let found = false;
for (let e in exprs) {
	let m = match(e, /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/);
	let r = run(parse(m ? m[2] : e), doc);
	if (limit > 0)
		r = slice(r, 0, limit);
	if (length(r))
		found = true;
	let out = map(r, (v) => types ? type(v) : show(v));
	if (m)
		print(`export ${m[1]}='${join(sep, map(out, (s) => replace(s, "'", "'\\''")))}'; `);
	else
		for (let s in out)
			print(s, '\n');
}
exit(found ? 0 : 1);
