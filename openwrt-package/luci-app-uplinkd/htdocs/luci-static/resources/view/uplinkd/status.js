'use strict';
'require view';
'require rpc';
'require poll';
'require dom';
'require ui';
'require fs';
'require uplinkd.model as model';

/* Written at first boot when /etc/config/mwan3 was converted; deleting it dismisses it. */
var IMPORT_REPORT = '/etc/uplinkd/import-report.txt';

var callFull = rpc.declare({
	object: 'uplinkd',
	method: 'status',
	reject: true
});

var callProbe = rpc.declare({ object: 'uplinkd', method: 'probe', params: [ 'interface' ], reject: true });
var callDisable = rpc.declare({ object: 'uplinkd', method: 'disable', params: [ 'interface' ], reject: true });
var callEnable = rpc.declare({ object: 'uplinkd', method: 'enable', params: [ 'interface' ], reject: true });
var callQuotaReset = rpc.declare({ object: 'uplinkd', method: 'quota_reset', params: [ 'interface' ], reject: true });

/* The card markup is shared with the daemon's own page; here it takes the theme's colours
 * where the theme defines them (bootstrap does, also in dark mode). */
var STYLE = [
	'.uplinkd-cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(320px, 1fr)); gap: 1em; }',
	'.uplinkd-wan { border: 1px solid var(--border-color-medium, #ddd); border-radius: 4px; padding: .6em .8em; margin: 0; }',
	'.uplinkd-head { font-size: 1.1em; margin-bottom: .3em; }',
	'.uplinkd-state { border-radius: 3px; padding: .1em .5em; margin-left: .3em; font-size: .85em; font-weight: bold; white-space: nowrap; }',
	'.uplinkd-why { opacity: .8; margin-bottom: .3em; }',
	'.uplinkd-targets { border-collapse: collapse; margin: .4em 0; }',
	'.uplinkd-targets th, .uplinkd-targets td { padding: .1em 1.2em .1em 0; text-align: left; white-space: nowrap; }',
	'.uplinkd-chart { max-width: 100%; }',
	'.uplinkd-chart > rect:first-of-type { fill: var(--background-color-medium, #f5f5f5); stroke: var(--border-color-medium, #ddd); }',
	'.uplinkd-chart text { fill: var(--text-color-medium, #555); }',
	'.uplinkd-actions { margin-top: .5em; }'
].join('\n');

return view.extend({
	/* The status, or the error that kept it away (shown as such, not as "no daemon"). */
	load: function() {
		return Promise.all([
			callFull().then(function(status) {
				return { status: status };
			}, function(e) {
				return { error: e };
			}),
			L.resolveDefault(fs.read(IMPORT_REPORT), null)
		]);
	},

	/* Buttons only where the ACL grants the write group (the view is not read-only). */
	canWrite: function() {
		return typeof L.hasViewPermission === 'function' && L.hasViewPermission() === true;
	},

	/* A drained WAN is not probed: it gets Enable only. A WAN switched off in the
	 * configuration gets nothing (enable does not override the configuration). */
	buttons: function(v) {
		if (!this.canWrite())
			return E('div');
		var self = this;
		var act = function(fn, name) {
			return ui.createHandlerFn(self, function() {
				/* Show the outcome now rather than at the next poll. */
				return fn(name).then(function() { return callFull(); })
					.then(function(status) { self.update(self.container, status); })
					.catch(function(e) { ui.addNotification(null, E('p', _(model.ubusError(e))), 'danger'); });
			});
		};
		if (v.drained)
			return E('div', { 'class': 'uplinkd-actions' }, [
				E('button', { 'class': 'btn cbi-button cbi-button-apply', 'click': act(callEnable, v.name) }, _('Enable'))
			]);
		if (v.state === 'disabled')
			return E('div', { 'class': 'uplinkd-actions' }, E('em', _('Disabled in the configuration.')));
		return E('div', { 'class': 'uplinkd-actions' }, [
			E('button', { 'class': 'btn cbi-button', 'click': act(callProbe, v.name) }, _('Probe now')),
			' ',
			E('button', { 'class': 'btn cbi-button cbi-button-reset', 'click': act(callDisable, v.name) }, _('Drain'))
		].concat(v.quota ? [
			' ',
			E('button', { 'class': 'btn cbi-button', 'click': act(callQuotaReset, v.name) }, _('Reset quota'))
		] : []));
	},

	/* Redraw in place: cards keep their node, so polling does not flicker. */
	update: function(container, status) {
		var views = model.wans(status);
		if (!views.length) {
			dom.content(container, E('p', _('No WAN interfaces are configured, or uplinkd is not running.')));
			return;
		}
		/* Drop a previous message; keep the cards. */
		Array.prototype.slice.call(container.childNodes).forEach(function(c) {
			if (!(c.getAttribute && c.getAttribute('data-wan') != null))
				container.removeChild(c);
		});
		/* A member of an HA pair says which role keepalived gave it. */
		var ha = model.haLine(status);
		if (ha)
			container.insertBefore(E('p', { 'class': 'uplinkd-ha' }, ha), container.firstChild);
		var seen = {};
		views.forEach(function(v) {
			seen[v.name] = true;
			var card = container.querySelector('[data-wan="' + CSS.escape(v.name) + '"]');
			if (!card) {
				card = E('div', { 'class': 'cbi-section uplinkd-wan', 'data-wan': v.name }, [
					E('div', { 'class': 'uplinkd-body' }), E('div', { 'class': 'uplinkd-buttons' })
				]);
				container.appendChild(card);
			}
			var html = model.cardHtml(v);
			var body = card.querySelector('.uplinkd-body');
			if (body.getAttribute('data-html') !== html) {
				body.innerHTML = html;
				body.setAttribute('data-html', html);
			}
			dom.content(card.querySelector('.uplinkd-buttons'), this.buttons(v));
		}, this);
		Array.prototype.slice.call(container.querySelectorAll('[data-wan]')).forEach(function(c) {
			if (c.parentNode === container && !seen[c.getAttribute('data-wan')])
				container.removeChild(c);
		});
	},

	/* The mwan3 import report, until dismissed. */
	importBanner: function(report) {
		if (!report || !report.trim())
			return E('div');
		var banner = E('div', { 'class': 'alert-message warning' }, [
			E('h4', _('Converted from mwan3')),
			E('p', _('uplinkd converted the mwan3 configuration at first boot. What it could not carry over exactly, and what it does instead:')),
			E('pre', { 'style': 'white-space: pre-wrap' }, report.trim())
		]);
		if (this.canWrite())
			banner.appendChild(E('button', {
				'class': 'btn cbi-button',
				'click': ui.createHandlerFn(this, function() {
					return fs.remove(IMPORT_REPORT).then(function() { banner.remove(); })
						.catch(function(e) { ui.addNotification(null, E('p', e.message), 'danger'); });
				})
			}, _('Dismiss')));
		return banner;
	},

	render: function(data) {
		var container = E('div', { 'class': 'uplinkd-cards' });
		this.container = container;
		var failed = function(e) {
			dom.content(container, E('p', { 'class': 'uplinkd-error' }, _(model.ubusError(e))));
		};
		if (data[0].status == null)
			failed(data[0].error);
		else
			this.update(container, data[0].status);

		poll.add(L.bind(function() {
			return callFull().then(L.bind(function(status) {
				this.update(container, status);
			}, this)).catch(failed);
		}, this), 5);

		return E('div', {}, [
			E('style', {}, STYLE),
			E('h2', _('uplinkd')),
			E('div', { 'class': 'cbi-map-descr' },
				_('What each uplink is doing, since when and why. The chart shows the mean round-trip time of the last probe rounds (line) and their loss (bars).')),
			this.importBanner(data[1]),
			container
		]);
	},

	handleSaveApply: null,
	handleSave: null,
	handleReset: null
});
