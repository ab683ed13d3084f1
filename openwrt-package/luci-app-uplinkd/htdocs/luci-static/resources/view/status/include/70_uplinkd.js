'use strict';
'require baseclass';
'require rpc';
'require uplinkd.model as model';

var callStatus = rpc.declare({ object: 'uplinkd', method: 'status' });

return baseclass.extend({
	title: _('Uplinks'),

	load: function() {
		return L.resolveDefault(callStatus(), null);
	},

	render: function(status) {
		if (status == null)
			return null;
		var lines = model.summary(status);
		var views = model.wans(status);
		return E('div', { 'class': 'table' }, lines.map(function(line, i) {
			return E('div', { 'class': 'tr' }, [
				E('div', { 'class': 'td', 'style': 'border-left:6px solid ' + views[i].color + ';padding-left:.5em' }, line)
			]);
		}));
	}
});
