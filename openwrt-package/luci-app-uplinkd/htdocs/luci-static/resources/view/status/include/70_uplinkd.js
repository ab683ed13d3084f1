'use strict';
'require baseclass';
'require rpc';
'require uplinkd.model as model';

var callStatus = rpc.declare({ object: 'uplinkd', method: 'status', reject: true });

return baseclass.extend({
	title: _('Uplinks'),

	/* An error is shown as what it is; no section at all would hide a stopped daemon. */
	load: function() {
		return callStatus().then(function(status) {
			return { status: status };
		}, function(e) {
			return { error: e };
		});
	},

	render: function(data) {
		if (data.status == null)
			return E('p', { 'class': 'uplinkd-error' }, _(model.ubusError(data.error)));
		var status = data.status;
		var lines = model.summary(status);
		var views = model.wans(status);
		if (!lines.length)
			return E('p', _('No WAN interfaces are configured.'));
		return E('div', { 'class': 'table uplinkd-overview' }, lines.map(function(line, i) {
			return E('div', { 'class': 'tr', 'data-wan': views[i].name, 'data-state': views[i].state }, [
				E('div', { 'class': 'td', 'style': 'border-left:6px solid ' + views[i].color + ';padding-left:.5em' }, line)
			]);
		}));
	}
});
