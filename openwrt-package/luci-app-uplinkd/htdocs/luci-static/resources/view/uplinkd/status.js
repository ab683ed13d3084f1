'use strict';
'require view';
'require rpc';
'require poll';
'require dom';
'require ui';
'require uplinkd.model as model';

var callFull = rpc.declare({
	object: 'uplinkd',
	method: 'status',
	reject: true
});

var callProbe = rpc.declare({ object: 'uplinkd', method: 'probe', params: [ 'interface' ] });
var callDisable = rpc.declare({ object: 'uplinkd', method: 'disable', params: [ 'interface' ] });
var callEnable = rpc.declare({ object: 'uplinkd', method: 'enable', params: [ 'interface' ] });

return view.extend({
	load: function() {
		return Promise.all([ L.resolveDefault(callFull(), null) ]);
	},

	/* Buttons only where the ACL grants the write group (the view is not read-only). */
	canWrite: function() {
		return typeof L.hasViewPermission === 'function' && L.hasViewPermission() === true;
	},

	buttons: function(v) {
		if (!this.canWrite())
			return E('div');
		var self = this;
		var act = function(fn, name) {
			return ui.createHandlerFn(self, function() {
				return fn(name).then(function() { return poll.start(); })
					.catch(function(e) { ui.addNotification(null, E('p', e.message)); });
			});
		};
		var drained = v.label.indexOf('drained') >= 0 || v.state === 'disabled';
		return E('div', { 'class': 'uplinkd-actions' }, [
			E('button', { 'class': 'btn cbi-button', 'click': act(callProbe, v.name) }, _('Probe now')),
			' ',
			drained
				? E('button', { 'class': 'btn cbi-button cbi-button-apply', 'click': act(callEnable, v.name) }, _('Enable'))
				: E('button', { 'class': 'btn cbi-button cbi-button-reset', 'click': act(callDisable, v.name) }, _('Drain'))
		]);
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
		var seen = {};
		views.forEach(function(v) {
			seen[v.name] = true;
			var card = container.querySelector('[data-wan="' + CSS.escape(v.name) + '"]');
			if (!card) {
				card = E('div', { 'class': 'cbi-section', 'data-wan': v.name, 'style': 'flex:1 1 300px' }, [
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

	render: function(data) {
		var container = E('div', { 'style': 'display:flex;flex-wrap:wrap;gap:1em' });
		if (data[0] == null)
			dom.content(container, E('p', _('uplinkd does not answer on ubus.')));
		else
			this.update(container, data[0]);

		poll.add(L.bind(function() {
			return callFull().then(L.bind(function(status) {
				this.update(container, status);
			}, this)).catch(function() {
				dom.content(container, E('p', _('uplinkd does not answer on ubus.')));
			});
		}, this), 5);

		return E('div', {}, [
			E('h2', _('uplinkd')),
			E('div', { 'class': 'cbi-map-descr' },
				_('What each uplink is doing, since when and why. The chart shows the mean round-trip time of the last probe rounds (line) and their loss (bars).')),
			container
		]);
	},

	handleSaveApply: null,
	handleSave: null,
	handleReset: null
});
