'use strict';
// Drives headless Chromium through the real LuCI (uhttpd + rpcd + ucode) serving
// luci-app-uplinkd, as a user would: logs in through the login form as root and as a
// read-only user, reads the status page, the overview widget and the config page, saves
// and applies changes. Prints one JSON object with what it saw; exits 1 on the first
// thing that is not as expected. Run by tests/lab_luci.rs inside the router namespace.
//
// Environment: LUCI_URL (http://127.0.0.1/), LUCI_SHOTS (directory for screenshots),
// LUCI_ROOT_PASSWORD, LUCI_VIEWER / LUCI_VIEWER_PASSWORD, LUCI_PLAYWRIGHT (the
// playwright-core module directory), LUCI_CHROMIUM (/usr/bin/chromium), LUCI_STEP
// (`status`, `config`, `apply-bad`, `no-daemon`: which part to run; the test checks the
// daemon between).

const path = require('node:path');
const fs = require('node:fs');

const env = (k, d) => process.env[k] || d;
const base = env('LUCI_URL', 'http://127.0.0.1/').replace(/\/?$/, '/');
const shots = env('LUCI_SHOTS', '.');
const { chromium } = require(env('LUCI_PLAYWRIGHT', 'playwright-core'));

const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
	'--disable-background-networking', '--disable-component-update', '--disable-sync'];

const seen = {};
function fail(msg) {
	throw new Error(msg);
}

async function login(browser, user, password) {
	const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
	const page = await ctx.newPage();
	page.on('pageerror', (e) => { (seen.pageErrors = seen.pageErrors || []).push(user + ': ' + e.message); });
	await page.goto(base + 'cgi-bin/luci/', { waitUntil: 'domcontentloaded', timeout: 60000 });
	await page.fill('input[name=luci_username]', user);
	await page.fill('input[name=luci_password]', password);
	await Promise.all([page.waitForNavigation(), page.click('button.cbi-button-positive')]);
	if (await page.$('input[name=luci_password]'))
		fail(user + ': the login form is still shown after logging in');
	return page;
}

async function open(page, where) {
	// A navigation that stalls (seen on a loaded machine) is retried once.
	const url = base + 'cgi-bin/luci/' + where;
	try {
		await page.goto(url, { waitUntil: 'domcontentloaded', timeout: 30000 });
	} catch (e) {
		(seen.retried = seen.retried || []).push(where + ': ' + String(e.message).split('\n')[0]);
		await page.goto(url, { waitUntil: 'domcontentloaded', timeout: 60000 });
	}
	await page.waitForSelector('#view > :not(.spinning)', { timeout: 20000 });
}

async function cards(page) {
	await page.waitForSelector('.uplinkd-card[data-state]', { timeout: 20000 });
	return page.$$eval('.uplinkd-wan', (els) => els.map((el) => ({
		wan: el.getAttribute('data-wan'),
		state: el.querySelector('.uplinkd-card').getAttribute('data-state'),
		label: el.querySelector('.uplinkd-state').textContent,
		text: el.querySelector('.uplinkd-card').textContent,
		buttons: Array.from(el.querySelectorAll('.uplinkd-buttons button')).map((b) => b.textContent)
	})));
}

/* Wait until the card of `wan` satisfies `pred` (the page polls every 5 s; buttons redraw at once). */
async function waitCard(page, wan, pred, what) {
	for (let i = 0; i < 60; i++) {
		const c = (await cards(page)).find((x) => x.wan === wan);
		if (c && pred(c)) return c;
		await page.waitForTimeout(500);
	}
	fail(wan + ': ' + what + ' never shown on the status page');
}

/* An rpc call from the page, as the page's own code would make it. */
async function rpcFromPage(page, method, params) {
	return page.evaluate(async ([method, params]) => {
		const rpc = await L.require('rpc');
		const call = rpc.declare({ object: 'uplinkd', method, params: Object.keys(params), reject: true });
		try {
			await call(...Object.values(params));
			return 'accepted';
		} catch (e) {
			return String(e && e.message || e);
		}
	}, [method, params]);
}

async function statusStep(browser) {
	const viewer = await login(browser, env('LUCI_VIEWER', 'viewer'), env('LUCI_VIEWER_PASSWORD', ''));
	await open(viewer, 'admin/status/uplinkd');
	const ro = await cards(viewer);
	seen.readOnlyCards = ro.map((c) => c.wan + ' ' + c.state);
	if (ro.some((c) => c.buttons.length))
		fail('the read-only user is offered buttons: ' + JSON.stringify(ro.map((c) => c.buttons)));
	await viewer.screenshot({ path: path.join(shots, 'status-read-only.png'), fullPage: true });
	seen.readOnlyDisable = await rpcFromPage(viewer, 'disable', { interface: 'wan1' });
	if (!/access denied/i.test(seen.readOnlyDisable))
		fail('disable as the read-only user: ' + seen.readOnlyDisable);
	await open(viewer, 'admin/status/overview');
	await viewer.waitForSelector('.uplinkd-overview .tr[data-wan]', { timeout: 20000 });
	seen.readOnlyOverview = await viewer.$$eval('.uplinkd-overview .tr', (els) => els.map((e) => e.textContent));
	await viewer.context().close();

	const root = await login(browser, 'root', env('LUCI_ROOT_PASSWORD', ''));
	await open(root, 'admin/status/uplinkd');
	const list = await cards(root);
	seen.cards = list.map((c) => ({ wan: c.wan, state: c.state, label: c.label, buttons: c.buttons, text: c.text }));
	await root.screenshot({ path: path.join(shots, 'status-root.png'), fullPage: true });

	await open(root, 'admin/status/overview');
	await root.waitForSelector('.uplinkd-overview .tr[data-wan]', { timeout: 20000 });
	seen.overview = await root.$$eval('.uplinkd-overview .tr', (els) => els.map((e) => ({
		wan: e.getAttribute('data-wan'), state: e.getAttribute('data-state'), text: e.textContent
	})));

	// Buttons: drain wan1 and take it back; probe it.
	await open(root, 'admin/status/uplinkd');
	await cards(root);
	await root.click('.uplinkd-wan[data-wan="wan1"] button:has-text("Drain")');
	await waitCard(root, 'wan1', (c) => /drained/.test(c.label), 'the drain');
	await root.click('.uplinkd-wan[data-wan="wan1"] button:has-text("Enable")');
	await waitCard(root, 'wan1', (c) => !/drained/.test(c.label) && c.buttons.includes('Probe now'), 'the enable');
	await root.click('.uplinkd-wan[data-wan="wan1"] button:has-text("Probe now")');
	await root.waitForTimeout(500);
	seen.errorsAfterButtons = await root.$$eval('.alert-message.danger, .alert-message.error', (els) => els.map((e) => e.textContent));
	if (seen.errorsAfterButtons.length)
		fail('buttons: ' + seen.errorsAfterButtons.join('; '));
	seen.buttons = 'drain, enable and probe worked';
	await root.context().close();
}

/* The row of a uci section's option in the form. */
function field(sid, option) {
	return '[data-field="cbid.uplinkd.' + sid + '.' + option + '"]';
}

async function saveApply(page) {
	await page.click('.cbi-page-actions .cbi-button-apply');
}

async function reloadVerdict(page) {
	const el = await page.waitForSelector('.uplinkd-reload', { timeout: 60000 });
	return { ok: await el.getAttribute('data-ok') === '1', text: await el.textContent() };
}

async function configStep(browser) {
	const root = await login(browser, 'root', env('LUCI_ROOT_PASSWORD', ''));
	await open(root, 'admin/network/uplinkd');
	await root.waitForSelector('.cbi-section[id="cbi-uplinkd-rule"]', { timeout: 20000 });
	// The imported rules: comma-joined values stay one entry each, a list stays a list.
	seen.ruleLists = await root.$$eval('[data-field*=".dest_ip"], [data-field*=".src_ip"], [data-field*=".dest_port"]', (els) =>
		els.map((e) => ({ field: e.getAttribute('data-field'),
			items: Array.from(e.querySelectorAll('.item input[type=hidden]')).map((i) => i.value) })));
	await root.screenshot({ path: path.join(shots, 'config-after-import.png') });
	await (await root.$('#cbi-uplinkd-rule')).screenshot({ path: path.join(shots, 'config-rules-after-import.png') });

	// LuCI refuses an IPv6 gateway on an IPv4 interface as the daemon would.
	await root.click('#cbi-uplinkd-wan1 [data-tab="general"]').catch(() => {});
	const gw = root.locator(field('wan1', 'gateway') + ' input[type=text]').first();
	await gw.fill('fe80::1');
	await gw.press('Tab');
	seen.ipv6GatewayRefused = await gw.evaluate((e) => e.classList.contains('cbi-input-invalid'));
	if (!seen.ipv6GatewayRefused) fail('an IPv6 gateway on an IPv4 interface is accepted');
	await gw.fill('');
	await gw.press('Tab');

	// A change the daemon takes: the weight of the member of wan2.
	const weight = root.locator(field('wan2_m1', 'weight') + ' input').first();
	await weight.fill('7');
	await saveApply(root);
	seen.applyGood = await reloadVerdict(root);
	if (!seen.applyGood.ok) fail('Save & Apply of a good change: ' + seen.applyGood.text);

	// Sections added in this session are offered at once (nothing is saved: the session ends).
	const add = async (type, name) => {
		await root.fill('#cbi-uplinkd-' + type + ' .cbi-section-create-name', name);
		await root.press('#cbi-uplinkd-' + type + ' .cbi-section-create-name', 'End');
		await root.click('#cbi-uplinkd-' + type + ' .cbi-section-create .cbi-button-add');
	};
	const choices = (sel) => root.$$eval(sel, (els) => els.map((e) => e.getAttribute('data-value') || e.value));
	await add('interface', 'wan5');
	await root.waitForSelector(field('wan5', 'device'), { timeout: 20000 });
	await add('member', 'wan5_m1');
	await root.waitForSelector(field('wan5_m1', 'interface'), { timeout: 20000 });
	await add('policy', 'p5');
	await root.waitForSelector(field('p5', 'use_member'), { timeout: 20000 });
	seen.sameSession = {
		memberInterface: await choices(field('wan5_m1', 'interface') + ' option'),
		policyMembers: await choices(field('p5', 'use_member') + ' li[data-value]'),
		defaultPolicy: await choices('[data-field$=".default_policy"] option'),
		rulePolicy: await choices(field('web', 'use_policy') + ' option')
	};
	const s = seen.sameSession;
	if (!s.memberInterface.includes('wan5') || !s.policyMembers.includes('wan5_m1') ||
	    !s.defaultPolicy.includes('p5') || !s.rulePolicy.includes('p5'))
		fail('sections added in this session are not offered: ' + JSON.stringify(s));
	await root.context().close();
}

async function applyBadStep(browser) {
	const root = await login(browser, 'root', env('LUCI_ROOT_PASSWORD', ''));
	await open(root, 'admin/network/uplinkd');
	// One routing table for four interfaces and two policies: the daemon refuses it.
	await root.click('#cbi-uplinkd-globals [data-tab="advanced"]').catch(() => {});
	const first = root.locator('[data-field$=".table_first"] input').first();
	const last = root.locator('[data-field$=".table_last"] input').first();
	await first.fill('1100');
	await last.fill('1101');
	await saveApply(root);
	seen.applyBad = await reloadVerdict(root);
	if (seen.applyBad.ok) fail('Save & Apply of a change the daemon refuses reports success');
	await root.screenshot({ path: path.join(shots, 'config-refused.png') });
	await root.context().close();
}

/* uplinkd stopped: the status page and the overview widget say so, in so many words. */
async function noDaemonStep(browser) {
	const root = await login(browser, 'root', env('LUCI_ROOT_PASSWORD', ''));
	await open(root, 'admin/status/uplinkd');
	seen.statusPage = await (await root.waitForSelector('.uplinkd-error', { timeout: 20000 })).textContent();
	await open(root, 'admin/status/overview');
	seen.overview = await (await root.waitForSelector('.uplinkd-error', { timeout: 20000 })).textContent();
	for (const t of [seen.statusPage, seen.overview])
		if (!/not running/.test(t)) fail('no daemon shown as: ' + t);
	await root.context().close();
}

(async () => {
	fs.mkdirSync(shots, { recursive: true });
	const browser = await chromium.launch({
		executablePath: env('LUCI_CHROMIUM', '/usr/bin/chromium'),
		headless: true,
		args: FLAGS
	});
	let status = 0;
	try {
		const step = env('LUCI_STEP', 'status');
		if (step === 'status') await statusStep(browser);
		else if (step === 'config') await configStep(browser);
		else if (step === 'apply-bad') await applyBadStep(browser);
		else if (step === 'no-daemon') await noDaemonStep(browser);
		else fail('unknown LUCI_STEP ' + step);
	} catch (e) {
		seen.error = String(e && e.stack || e);
		status = 1;
	} finally {
		await browser.close();
	}
	console.log(JSON.stringify(seen));
	process.exit(status);
})();
