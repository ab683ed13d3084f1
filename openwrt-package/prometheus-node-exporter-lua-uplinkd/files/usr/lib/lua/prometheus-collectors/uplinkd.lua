-- uplinkd collector for prometheus-node-exporter-lua: `ubus call uplinkd status`
-- as the same metrics the daemon's own /metrics serves (see uplinkd's README).

local ubus = require "ubus"

local STATES = { "up", "degraded", "down", "held", "no-carrier", "disabled" }

local function num(v)
  if type(v) == "number" and v == v and v ~= math.huge and v ~= -math.huge then
    return v
  end
  return nil
end

local function sorted_keys(t)
  local keys = {}
  if type(t) == "table" then
    for k in pairs(t) do
      if type(k) == "string" then keys[#keys + 1] = k end
    end
  end
  table.sort(keys)
  return keys
end

local function scrape()
  local conn = ubus.connect()
  if not conn then return end
  local status = conn:call("uplinkd", "status", {})
  conn:close()
  if type(status) ~= "table" or type(status.interfaces) ~= "table" then return end
  local ifaces = status.interfaces

  -- metric() prints the family's TYPE line at once: declare each family right before
  -- its series, one pass per family.
  local wans = sorted_keys(ifaces)
  local function each(fn)
    for _, name in ipairs(wans) do
      local w = ifaces[name]
      if type(w) == "table" then fn(name, w) end
    end
  end
  -- Per-target labels: the probe kind too, so losses by kind are a sum away.
  local function each_target(fn)
    each(function(name, w)
      if type(w.targets) ~= "table" then return end
      for _, t in ipairs(w.targets) do
        if type(t) == "table" and type(t.ip) == "string" then
          local labels = { wan = name, target = t.ip }
          if type(t.method) == "string" then labels.method = t.method end
          fn(labels, t)
        end
      end
    end)
  end

  local wan_up = metric("uplinkd_wan_up", "gauge")
  each(function(name, w)
    if type(w.state) == "string" then
      local usable = (w.state == "up" or w.state == "degraded") and 1 or 0
      wan_up({ wan = name }, usable)
    end
  end)
  local wan_state = metric("uplinkd_wan_state", "gauge")
  each(function(name, w)
    if type(w.state) ~= "string" then return end
    for _, s in ipairs(STATES) do
      wan_state({ wan = name, state = s }, (s == w.state) and 1 or 0)
    end
  end)
  local state_age = metric("uplinkd_wan_state_age_seconds", "gauge")
  each(function(name, w)
    if num(w.since) then state_age({ wan = name }, w.since) end
  end)
  local weight = metric("uplinkd_wan_weight", "gauge")
  each(function(name, w)
    if num(w.weight) then weight({ wan = name }, w.weight) end
  end)
  local share = metric("uplinkd_flow_share", "gauge")
  each(function(name, w)
    for _, p in ipairs(sorted_keys(w.share)) do
      local pct = num(w.share[p])
      if pct then share({ wan = name, policy = p }, pct / 100) end
    end
  end)
  local transitions = metric("uplinkd_transitions_total", "counter")
  each(function(name, w)
    for _, to in ipairs(sorted_keys(w.transitions)) do
      local n = num(w.transitions[to])
      if n then transitions({ wan = name, to = to }, n) end
    end
  end)
  local rtt = metric("uplinkd_probe_rtt_seconds", "gauge")
  each_target(function(labels, t)
    if num(t.mean_rtt_ms) then rtt(labels, t.mean_rtt_ms / 1000) end
  end)
  local loss = metric("uplinkd_probe_loss_ratio", "gauge")
  each_target(function(labels, t)
    if num(t.loss_percent) then loss(labels, t.loss_percent / 100) end
  end)
  local sent = metric("uplinkd_probes_sent_total", "counter")
  each_target(function(labels, t)
    if num(t.sent) then sent(labels, t.sent) end
  end)
  local lost = metric("uplinkd_probes_lost_total", "counter")
  each_target(function(labels, t)
    if num(t.lost) then lost(labels, t.lost) end
  end)
  local answered = metric("uplinkd_probe_answered", "gauge")
  each_target(function(labels, t)
    if type(t.answered) == "boolean" then answered(labels, t.answered and 1 or 0) end
  end)
  local quota_used = metric("uplinkd_quota_used_bytes", "gauge")
  each(function(name, w)
    if type(w.quota) == "table" and num(w.quota.used) then
      quota_used({ wan = name }, w.quota.used)
    end
  end)
  local quota_bytes = metric("uplinkd_quota_bytes", "gauge")
  each(function(name, w)
    if type(w.quota) == "table" and num(w.quota.bytes) then
      quota_bytes({ wan = name }, w.quota.bytes)
    end
  end)
  local probe_bytes = metric("uplinkd_probe_bytes_total", "counter")
  each(function(name, w)
    if type(w.probe_bytes) ~= "table" then return end
    for _, d in ipairs({ "tx", "rx" }) do
      local n = num(w.probe_bytes[d])
      if n then probe_bytes({ wan = name, direction = d }, n) end
    end
  end)
  local monthly = metric("uplinkd_probe_monthly_bytes", "gauge")
  each(function(name, w)
    if num(w.probe_monthly_bytes) then monthly({ wan = name }, w.probe_monthly_bytes) end
  end)
  local standby = metric("uplinkd_wan_standby", "gauge")
  each(function(name, w)
    if type(w.standby) == "boolean" then standby({ wan = name }, w.standby and 1 or 0) end
  end)
  local policy_weight = metric("uplinkd_policy_weight", "gauge")
  local policies = type(status.policies) == "table" and status.policies or {}
  for _, p in ipairs(sorted_keys(policies)) do
    local weights = type(policies[p]) == "table" and policies[p].weights or nil
    for _, wan in ipairs(sorted_keys(weights)) do
      local n = num(weights[wan])
      if n then policy_weight({ policy = p, wan = wan }, n) end
    end
  end
end

return { scrape = scrape }
