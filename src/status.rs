//! The status report: the engine's state as JSON, for ubus, the control socket and
//! `uplinkd status`. Pure: built from the [`Engine`], the last [`Desired`] plan and
//! `now`. Every field is documented in `docs/status.md`.
//!
//! mwan3's status has shipped `NaN` and broken JSON; here every number is an integer or
//! comes from integer microseconds rounded to 0.1 ms, and a figure that is not known is
//! left out rather than written as null, zero or NaN.

use serde_json::{json, Map, Value};

use crate::config::{self, Config, LastResort};
use crate::engine::Engine;
use crate::health::State;
use crate::kernel::Family;
use crate::plan::{Desired, Members, PolicyPlan};
use crate::time::{Duration, Instant};

/// The whole report: `{"interfaces": {..}, "policies": {..}}`.
/// A metered WAN's `quota` object: bytes allowed and used (and per direction), the
/// level (`normal`, `warned`, `exceeded`), and the period as UTC seconds.
fn quota_report(q: &crate::quota::Quota, m: Option<&crate::quota::Meter>) -> Value {
    use crate::quota::Period;
    let mut o = Map::new();
    o.insert("bytes".into(), q.bytes.into());
    let default = crate::quota::Meter::default();
    let m = m.unwrap_or(&default);
    o.insert("used".into(), m.used(q).into());
    o.insert("rx".into(), m.rx.into());
    o.insert("tx".into(), m.tx.into());
    o.insert("direction".into(), q.direction.as_str().into());
    o.insert("warn_percent".into(), q.warn.into());
    o.insert("state".into(), m.level.as_str().into());
    let period = match q.period {
        Period::Monthly { .. } => "monthly",
        Period::Weekly { .. } => "weekly",
        Period::Daily => "daily",
    };
    o.insert("period".into(), period.into());
    if let Some(s) = m.span {
        o.insert("period_start".into(), s.start.into());
        o.insert("period_end".into(), s.end.into());
    }
    Value::Object(o)
}

pub fn report(engine: &Engine, plan: Option<&Desired>, now: Instant) -> Value {
    let mut interfaces = Map::new();
    for i in 0..engine.wans().len() {
        let (name, value) = interface(engine, plan, i, now);
        interfaces.insert(name, value);
    }
    let mut report = json!({
        "interfaces": interfaces,
        "policies": policies(engine, plan),
    });
    // The HA role keepalived reported; left out on a router alone (or before
    // keepalived's first notify after a start).
    if let (Some(h), Some(o)) = (engine.ha(), report.as_object_mut()) {
        let ha = json!({
            "role": h.role.as_str(),
            "since": now.saturating_since(h.since).as_secs(),
        });
        o.insert("ha".into(), ha);
    }
    report
}

/// The report limited to one WAN: `{"interfaces": {name: {..}}, "policies": {..}}`;
/// `None` for an unknown WAN.
pub fn report_one(
    engine: &Engine,
    plan: Option<&Desired>,
    wan: &str,
    now: Instant,
) -> Option<Value> {
    let i = engine.wan_index(wan)?;
    let (name, value) = interface(engine, plan, i, now);
    let mut interfaces = Map::new();
    interfaces.insert(name, value);
    Some(json!({
        "interfaces": interfaces,
        "policies": policies(engine, plan),
    }))
}

fn interface(engine: &Engine, plan: Option<&Desired>, i: usize, now: Instant) -> (String, Value) {
    let cfg = engine.config();
    let iface = &cfg.interfaces[i];
    let wan = &engine.wans()[i];
    let health = &wan.health;
    let state = health.state();
    let mut o = Map::new();
    o.insert("state".into(), state.as_str().into());
    o.insert(
        "since".into(),
        now.saturating_since(health.since()).as_secs().into(),
    );
    o.insert("reason".into(), health.reason().to_string().into());
    o.insert(
        "enabled".into(),
        (iface.enabled && !wan.admin_disabled).into(),
    );
    if wan.admin_disabled {
        o.insert("drained".into(), true.into());
    }
    if let Some(device) = engine.device(i) {
        o.insert("device".into(), device.into());
    }
    if iface.follows_netifd() {
        o.insert("netifd".into(), wan.netifd.is_some().into());
    }
    // `gateway` and `address` are of IPv4, or of IPv6 on an IPv6-only WAN; a dual-stack
    // WAN adds `gateway6` and `address6`.
    let families: &[(Family, &str)] = match iface.family {
        config::Family::Ipv4 => &[(Family::V4, "")],
        config::Family::Ipv6 => &[(Family::V6, "")],
        config::Family::Any => &[(Family::V4, ""), (Family::V6, "6")],
    };
    for (f, suffix) in families {
        let path = wan.path(*f);
        match path.gateway {
            Some(Some(gw)) => {
                o.insert(format!("gateway{suffix}"), gw.to_string().into());
            }
            Some(None) => {
                o.insert(format!("gateway{suffix}"), "point-to-point".into());
            }
            None => {}
        }
        if let Some(addr) = path.addresses.first() {
            o.insert(format!("address{suffix}"), addr.to_string().into());
        }
    }
    if iface.family != config::Family::Ipv4 {
        o.insert("family".into(), config::family_name(iface.family).into());
        if !wan.v6.prefixes.is_empty() {
            let p: Vec<Value> = wan
                .v6
                .prefixes
                .iter()
                .map(|p| format!("{}/{}", p.addr, p.len).into())
                .collect();
            o.insert("prefixes6".into(), p.into());
        }
    }
    o.insert(
        "carrier".into(),
        wan.link.is_some_and(|l| l.up && l.carrier).into(),
    );
    if let Some(w) = configured_weight(cfg, &iface.name) {
        o.insert("configured_weight".into(), w.into());
        o.insert("weight".into(), wan.weight.unwrap_or(w).into());
    } else if let Some(w) = wan.weight {
        o.insert("weight".into(), w.into());
    }
    if let Some(w) = wan.weight {
        o.insert("weight_override".into(), w.into());
    }
    let mut share = Map::new();
    for p in plan.map_or(&[][..], |d| &d.policies[..]) {
        if let Some(pct) = percent_of(p, &iface.name) {
            share.insert(p.name.clone(), pct);
        }
    }
    o.insert("share".into(), share.into());
    if let State::Held { until } = state {
        o.insert(
            "held_until".into(),
            ceil_secs(until.saturating_since(now)).into(),
        );
    }
    if let Some(q) = &iface.quota {
        o.insert(
            "quota".into(),
            quota_report(q, engine.meters().get(&iface.name)),
        );
    }
    // The gateway probe's targets are the gateways, one per family.
    let addrs: Vec<String> = match iface.track_method {
        crate::config::TrackMethod::Gateway => (iface.family.families().iter())
            .map(|f| match wan.path(*f).gateway {
                Some(Some(g)) => g.to_string(),
                Some(None) => "point-to-point".to_string(),
                None => "unknown".to_string(),
            })
            .collect(),
        _ => iface.track_ip.iter().map(|ip| ip.to_string()).collect(),
    };
    let targets: Vec<Value> = addrs
        .iter()
        .zip(health.targets())
        .enumerate()
        .map(|(i, (ip, t))| {
            let mut m = Map::new();
            m.insert("ip".into(), ip.as_str().into());
            m.insert("method".into(), iface.track_method.name().into());
            if let Some(a) = t.last_answered() {
                m.insert("answered".into(), a.into());
            }
            if let Some(Some(e)) = wan.last_error.get(i) {
                m.insert("last_error".into(), e.as_str().into());
            }
            if let Some(rtt) = t.last_rtt {
                m.insert("last_rtt_ms".into(), millis(rtt));
            }
            if let Some(rtt) = t.mean_rtt() {
                m.insert("mean_rtt_ms".into(), millis(rtt));
            }
            if t.sent > 0 {
                m.insert("loss_percent".into(), t.loss_percent().into());
            }
            m.insert("sent".into(), t.sent.into());
            m.insert("lost".into(), t.lost.into());
            Value::Object(m)
        })
        .collect();
    o.insert("targets".into(), targets.into());
    if iface.standby_interval.is_some() {
        o.insert("standby".into(), engine.standby(i).into());
    }
    o.insert(
        "probe_bytes".into(),
        json!({"tx": wan.probe_bytes.tx, "rx": wan.probe_bytes.rx}),
    );
    o.insert(
        "probe_monthly_bytes".into(),
        engine.probe_monthly_bytes(i).into(),
    );
    let mut transitions = Map::new();
    for (name, n) in State::NAMES.iter().zip(health.transitions()) {
        transitions.insert((*name).into(), (*n).into());
    }
    o.insert("transitions".into(), transitions.into());
    let history: Vec<Value> = health
        .history()
        .map(|r| {
            let mut m = Map::new();
            if let Some(us) = r.rtt_us {
                m.insert(
                    "rtt_ms".into(),
                    millis(Duration::from_micros(u64::from(us))),
                );
            }
            m.insert("loss_percent".into(), r.loss_percent().into());
            Value::Object(m)
        })
        .collect();
    o.insert("history".into(), history.into());
    (iface.name.clone(), Value::Object(o))
}

fn policies(engine: &Engine, plan: Option<&Desired>) -> Value {
    let cfg = engine.config();
    let mut out = Map::new();
    for p in plan.map_or(&[][..], |d| &d.policies[..]) {
        let list = |m: &Members| -> Vec<Value> {
            let total = total_weight(m);
            m.active
                .iter()
                .map(|(name, w)| {
                    json!({
                        "interface": name,
                        "weight": w,
                        "percent": tenths(u64::from(*w) * 1000, total),
                    })
                })
                .collect()
        };
        let configured = cfg
            .policy(&p.name)
            .map_or(cfg.globals.last_resort, |c| c.last_resort);
        let mut o = Map::new();
        o.insert("members".into(), list(&p.v4).into());
        if !p.v6.active.is_empty() {
            o.insert("members6".into(), list(&p.v6).into());
        }
        if let Some(j) = cfg.policies.iter().position(|c| c.name == p.name) {
            o.insert("mode".into(), cfg.policies[j].mode.name().into());
            o.insert("weights".into(), effective_weights(engine, j).into());
        }
        o.insert("last_resort".into(), last_resort_name(configured).into());
        o.insert("using_last_resort".into(), p.last_resort.is_some().into());
        let degraded = if p.v4.active.is_empty() {
            p.v6.degraded_only
        } else {
            p.v4.degraded_only
        };
        o.insert("degraded_only".into(), degraded.into());
        o.insert(
            "default".into(),
            (p.name == cfg.globals.default_policy).into(),
        );
        out.insert(p.name.clone(), Value::Object(o));
    }
    Value::Object(out)
}

/// What the policy's mode decided for each member, by interface: its effective weight
/// (0: the mode sends it no new flows now), or the configured weight where the mode has
/// not decided (`weighted`, or nothing measured yet). The plan applies these to the
/// members of the best tier that are usable (`members`).
fn effective_weights(engine: &Engine, j: usize) -> Map<String, Value> {
    let cfg = engine.config();
    let decided = engine.balancer().weights().get(j).filter(|w| !w.is_empty());
    let mut out = Map::new();
    for m in cfg.policies[j]
        .use_member
        .iter()
        .filter_map(|m| cfg.member(m))
    {
        let Some(i) = engine.wan_index(&m.interface) else {
            continue;
        };
        let slot = engine.wans()[i].slot;
        let w = match decided {
            Some(d) => d.get(&slot).copied().unwrap_or(0),
            None => engine.wans()[i].weight.unwrap_or(m.weight),
        };
        out.entry(m.interface.clone()).or_insert(w.into());
    }
    out
}

fn total_weight(m: &Members) -> u64 {
    m.active.iter().map(|(_, w)| u64::from(*w)).sum()
}

/// `name`'s share of new flows in `p` (IPv4 first, else IPv6), in percent, if it is an
/// active member.
fn percent_of(p: &PolicyPlan, name: &str) -> Option<Value> {
    [&p.v4, &p.v6].into_iter().find_map(|m| {
        let (_, w) = m.active.iter().find(|(n, _)| n == name)?;
        Some(tenths(u64::from(*w) * 1000, total_weight(m)))
    })
}

/// `num / den / 10` rounded to one decimal, as a JSON number (0 when `den` is 0).
fn tenths(num: u64, den: u64) -> Value {
    if den == 0 {
        return 0.into();
    }
    let t = (num + den / 2) / den;
    number_tenths(t)
}

fn number_tenths(t: u64) -> Value {
    if t % 10 == 0 {
        (t / 10).into()
    } else {
        // Finite by construction: from_f64 cannot fail; 0 is a safe fallback anyway.
        serde_json::Number::from_f64(t as f64 / 10.0).map_or(0.into(), Value::Number)
    }
}

/// A duration in milliseconds rounded to 0.1 ms.
fn millis(d: Duration) -> Value {
    let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
    number_tenths(us.saturating_add(50) / 100)
}

fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// The weight of the first member that names `wan`.
fn configured_weight(cfg: &Config, wan: &str) -> Option<u16> {
    cfg.members
        .iter()
        .find(|m| m.interface == wan)
        .map(|m| m.weight)
}

pub fn last_resort_name(lr: LastResort) -> &'static str {
    match lr {
        LastResort::Unreachable => "unreachable",
        LastResort::Blackhole => "blackhole",
        LastResort::Default => "default",
    }
}

/// A readable table of a status report (`uplinkd status`): WAN, state, since, RTT, loss,
/// share. Works on the JSON so that the CLI needs nothing but the reply.
/// One line per kernel sync that is not fine (`sync` of the report), e.g.
/// `nft: failed 3 times, next try in 2.0 s: Error: ...`.
fn sync_lines(report: &Value) -> String {
    let mut out = String::new();
    let Some(sync) = report.get("sync").and_then(Value::as_object) else {
        return out;
    };
    for (part, s) in sync {
        let result = s.get("result").and_then(Value::as_str).unwrap_or("?");
        match result {
            "ok" | "pending" => {}
            "failed" => {
                let n = s.get("failures").and_then(Value::as_u64).unwrap_or(1);
                let ms = s.get("retry_in_ms").and_then(Value::as_u64).unwrap_or(0);
                let error = s.get("error").and_then(Value::as_str).unwrap_or("");
                let times = if n == 1 { "once" } else { "times" };
                let count = if n == 1 {
                    String::new()
                } else {
                    format!("{n} ")
                };
                out.push_str(&format!(
                    "{part}: failed {count}{times}, next try in {}.{} s: {error}\n",
                    ms / 1000,
                    ms % 1000 / 100
                ));
            }
            other => out.push_str(&format!("{part}: {other}\n")),
        }
    }
    out
}

pub fn table(report: &Value) -> String {
    let mut rows = vec![[
        "WAN".to_string(),
        "STATE".into(),
        "SINCE".into(),
        "RTT".into(),
        "LOSS".into(),
        "SHARE".into(),
        "DEVICE".into(),
        "REASON".into(),
    ]];
    let empty = Map::new();
    let interfaces = report
        .get("interfaces")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    for (name, w) in interfaces {
        let s = |k: &str| w.get(k).and_then(Value::as_str).unwrap_or("-").to_string();
        let mut state = s("state");
        if let Some(left) = w.get("held_until").and_then(Value::as_u64) {
            state = format!("held {left}s");
        }
        if w.get("drained").and_then(Value::as_bool) == Some(true) {
            state.push_str(" (drained)");
        }
        if w.get("standby").and_then(Value::as_bool) == Some(true) {
            state.push_str(" (standby)");
        }
        let since = w
            .get("since")
            .and_then(Value::as_u64)
            .map_or("-".into(), age);
        let targets = w.get("targets").and_then(Value::as_array);
        let targets = targets.map_or(&[][..], |t| &t[..]);
        let rtts: Vec<f64> = targets
            .iter()
            .filter_map(|t| t.get("mean_rtt_ms").and_then(Value::as_f64))
            .collect();
        let rtt = if rtts.is_empty() {
            "-".to_string()
        } else {
            let min = rtts.iter().copied().fold(f64::INFINITY, f64::min);
            // Tenths by hand: `{:.1}` would link the float formatting code.
            let tenths = (min.max(0.0) * 10.0).round() as u64;
            format!("{}.{} ms", tenths / 10, tenths % 10)
        };
        let losses: Vec<u64> = targets
            .iter()
            .filter_map(|t| t.get("loss_percent").and_then(Value::as_u64))
            .collect();
        let loss = if losses.is_empty() {
            "-".to_string()
        } else {
            format!("{}%", losses.iter().sum::<u64>() / losses.len() as u64)
        };
        let share = match w.get("share").and_then(Value::as_object) {
            Some(m) if m.len() == 1 => m.values().next().map_or("-".into(), |v| format!("{v}%")),
            Some(m) if !m.is_empty() => m
                .iter()
                .map(|(p, v)| format!("{p}:{v}%"))
                .collect::<Vec<_>>()
                .join(" "),
            _ => "-".to_string(),
        };
        rows.push([
            name.clone(),
            state,
            since,
            rtt,
            loss,
            share,
            s("device"),
            s("reason"),
        ]);
    }
    let mut widths = [0usize; 8];
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in &rows {
        let mut line = String::new();
        for (i, (c, w)) in r.iter().zip(widths).enumerate() {
            if i + 1 == r.len() {
                line.push_str(c);
            } else {
                line.push_str(&format!("{c:<w$}  "));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out.push_str(&sync_lines(report));
    if let Some(ha) = report.get("ha") {
        let role = ha.get("role").and_then(Value::as_str).unwrap_or("-");
        let since = ha
            .get("since")
            .and_then(Value::as_u64)
            .map_or("-".into(), age);
        out.push_str(&format!("ha: {role} for {since}\n"));
    }
    for (name, w) in interfaces {
        let Some(q) = w.get("quota") else {
            continue;
        };
        let n = |k: &str| q.get(k).and_then(Value::as_u64).unwrap_or(0);
        let (used, bytes) = (n("used"), n("bytes"));
        let percent = (u128::from(used) * 100)
            .checked_div(u128::from(bytes))
            .unwrap_or(0);
        let state = q.get("state").and_then(Value::as_str).unwrap_or("-");
        out.push_str(&format!(
            "quota {name}: {} of {} ({percent}%), {state}\n",
            crate::quota::fmt_bytes(used),
            crate::quota::fmt_bytes(bytes)
        ));
    }
    let policies = report.get("policies").and_then(Value::as_object);
    for (name, p) in policies.unwrap_or(&empty) {
        let members: Vec<String> = p
            .get("members")
            .and_then(Value::as_array)
            .map_or(&[][..], |m| &m[..])
            .iter()
            .map(|m| {
                format!(
                    "{} {}%",
                    m.get("interface").and_then(Value::as_str).unwrap_or("?"),
                    m.get("percent").unwrap_or(&Value::from(0))
                )
            })
            .collect();
        let using_lr = p.get("using_last_resort").and_then(Value::as_bool) == Some(true);
        let text = if using_lr {
            format!(
                "no usable member, last resort {}",
                p.get("last_resort").and_then(Value::as_str).unwrap_or("?")
            )
        } else {
            let degraded = p.get("degraded_only").and_then(Value::as_bool) == Some(true);
            format!(
                "{}{}",
                members.join(", "),
                if degraded {
                    " (degraded members only)"
                } else {
                    ""
                }
            )
        };
        // What a mode decided, when it is not plain weights: `[lowest_latency: wan 1, wwan 0]`.
        let mode = p.get("mode").and_then(Value::as_str).unwrap_or("weighted");
        let decided = match p.get("weights").and_then(Value::as_object) {
            Some(w) if mode != "weighted" => {
                let list: Vec<String> = w.iter().map(|(k, v)| format!("{k} {v}")).collect();
                format!(" [{mode}: {}]", list.join(", "))
            }
            _ => String::new(),
        };
        out.push_str(&format!("policy {name}: {text}{decided}\n"));
    }
    out
}

/// Seconds as `42s`, `5m12s`, `3h04m`, `2d05h`.
fn age(s: u64) -> String {
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        3600..=86_399 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86_400, s % 86_400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Output;
    use crate::testutil::{config, snapshot};

    fn at(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    /// Run the engine from `from` to `to` ms in 50 ms steps, answering every probe
    /// `rtt_us` later except those of WAN `dead`.
    fn run(e: &mut Engine, from: u64, to: u64, dead: Option<usize>, rtt_us: u64) {
        let mut t = from;
        while t < to {
            let now = at(t);
            for o in e.poll(now) {
                if let Output::Probe {
                    wan, target, seq, ..
                } = o
                {
                    if Some(wan) != dead {
                        let ident = e.wans()[wan].ident;
                        let when = Instant::from_micros(now.micros() + rtt_us);
                        e.on_reply(wan, target, ident, seq, when);
                    }
                }
            }
            t += 50;
        }
    }

    fn report_at(e: &Engine, now: Instant) -> Value {
        let plan = e.desired(true);
        let v = report(e, Some(&plan), now);
        // Always valid JSON that parses back to the same value.
        let text = v.to_string();
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), v);
        v
    }

    #[test]
    fn timeline_up_then_down() {
        let mut e = Engine::new(config(&[3, 1, 1], 2), None, 0x200, at(0));
        // Before any dump: nothing is known, nothing is invented.
        let v = report_at(&e, at(0));
        let w = &v["interfaces"]["wan1"];
        assert_eq!(w["carrier"], false);
        assert!(w.get("gateway").is_none() && w.get("address").is_none());
        assert_eq!(
            w["targets"][0],
            json!({"ip": "203.0.113.1", "method": "ping", "sent": 0, "lost": 0})
        );

        e.on_snapshot(&snapshot(&[true, true, true]), at(0));
        run(&mut e, 0, 3000, None, 12_345);
        let v = report_at(&e, at(3000));
        let w = &v["interfaces"]["wan1"];
        assert_eq!(w["state"], "up");
        assert_eq!(w["since"], 3);
        assert_eq!(w["reason"], "initial state");
        assert_eq!(w["enabled"], true);
        assert_eq!(w["device"], "wan1");
        assert_eq!(w["gateway"], "10.20.1.1");
        assert_eq!(w["address"], "10.20.1.2");
        assert_eq!(w["carrier"], true);
        assert_eq!(w["weight"], 3);
        assert_eq!(w["share"], json!({"balanced": 60}));
        assert!(w.get("held_until").is_none());
        let t = &w["targets"][1];
        assert_eq!(t["ip"], "203.0.113.2");
        assert_eq!(t["last_rtt_ms"], 12.3);
        assert_eq!(t["mean_rtt_ms"], 12.3);
        assert_eq!(t["loss_percent"], 0);
        assert_eq!(t["sent"], 3);
        assert_eq!(t["lost"], 0);
        assert_eq!(v["interfaces"]["wan2"]["share"], json!({"balanced": 20}));
        let p = &v["policies"]["balanced"];
        assert_eq!(
            p["members"],
            json!([
                {"interface": "wan1", "weight": 3, "percent": 60},
                {"interface": "wan2", "weight": 1, "percent": 20},
                {"interface": "wan3", "weight": 1, "percent": 20},
            ])
        );
        assert_eq!(p["last_resort"], "default");
        assert_eq!(p["using_last_resort"], false);
        assert_eq!(p["degraded_only"], false);

        // wan2 goes dark at 3 s: down after three lost rounds.
        run(&mut e, 3000, 9000, Some(1), 12_345);
        let v = report_at(&e, at(9000));
        let w = &v["interfaces"]["wan2"];
        assert_eq!(w["state"], "down");
        assert_eq!(w["reason"], "3 consecutive rounds, 0/2 targets answering");
        assert_eq!(w["transitions"]["down"], 1);
        assert_eq!(w["transitions"]["up"], 0);
        let h = w["history"].as_array().unwrap();
        let last = h.last().unwrap();
        assert_eq!(last, &json!({"loss_percent": 100}), "no RTT when all lost");
        assert_eq!(h[0], json!({"rtt_ms": 12.3, "loss_percent": 0}));
        assert!(h.len() <= crate::health::HISTORY_LEN);
        assert_eq!(w["share"], json!({}));
        let t = &w["targets"][0];
        assert_eq!(t["last_rtt_ms"], 12.3, "last answered probe");
        assert!(t["loss_percent"].as_u64().unwrap() > 0);
        assert!(t["lost"].as_u64().unwrap() >= 3);
        assert_eq!(v["interfaces"]["wan1"]["share"], json!({"balanced": 75}));
        assert_eq!(v["interfaces"]["wan3"]["share"], json!({"balanced": 25}));
    }

    #[test]
    fn thirds_are_rounded_to_a_tenth() {
        let mut e = Engine::new(config(&[1, 1, 1], 1), None, 1, at(0));
        e.on_snapshot(&snapshot(&[true, true, true]), at(0));
        let v = report_at(&e, at(0));
        assert_eq!(v["interfaces"]["wan1"]["share"]["balanced"], 33.3);
        assert_eq!(v["policies"]["balanced"]["members"][2]["percent"], 33.3);
    }

    #[test]
    fn held_wan_reports_seconds_left_and_last_resort_shows() {
        let mut cfg = config(&[1], 1);
        cfg.interfaces[0].damping = Some(crate::config::Damping {
            penalty: 1000,
            suppress: 1500,
            reuse: 750,
            half_life: Duration::from_secs(60),
            max_hold: Duration::from_secs(300),
        });
        cfg.policies[0].last_resort = LastResort::Unreachable;
        let mut e = Engine::new(cfg, None, 1, at(0));
        let mut snap = snapshot(&[true]);
        e.on_snapshot(&snap, at(0));
        // Two carrier losses within a second: penalty 2000 > 1500, held.
        for (t, c) in [(100, false), (200, true), (300, false), (400, true)] {
            snap.links[0].carrier = c;
            e.on_snapshot(&snap, at(t));
        }
        let v = report_at(&e, at(1400));
        let w = &v["interfaces"]["wan1"];
        assert_eq!(w["state"], "held");
        let left = w["held_until"].as_u64().unwrap();
        assert!(left > 0 && left <= 300, "{left}");
        let p = &v["policies"]["balanced"];
        assert_eq!(p["members"], json!([]));
        assert_eq!(p["using_last_resort"], true);
        assert_eq!(p["last_resort"], "unreachable");
        assert!(table(&v).contains("no usable member, last resort unreachable"));
    }

    #[test]
    fn no_plan_yet_means_no_shares() {
        let e = Engine::new(config(&[1], 1), None, 1, at(0));
        let v = report(&e, None, at(0));
        assert_eq!(v["policies"], json!({}));
        assert_eq!(v["interfaces"]["wan1"]["share"], json!({}));
    }

    #[test]
    fn millis_round_to_a_tenth_and_never_overflow() {
        assert_eq!(millis(Duration::from_micros(12_349)), json!(12.3));
        assert_eq!(millis(Duration::from_micros(12_350)), json!(12.4));
        assert_eq!(millis(Duration::from_micros(2_000)), json!(2));
        assert_eq!(millis(Duration::ZERO), json!(0));
        assert!(millis(Duration::MAX).is_number());
        assert_eq!(tenths(1, 0), json!(0));
    }

    #[test]
    fn table_is_readable() {
        let mut e = Engine::new(config(&[3, 1], 1), None, 1, at(0));
        e.on_snapshot(&snapshot(&[true, false]), at(0));
        run(&mut e, 0, 2000, None, 5_000);
        let text = table(&report_at(&e, at(125_000)));
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("WAN "), "{text}");
        assert!(lines[1].starts_with("wan1  up"), "{text}");
        assert!(
            lines[1].contains("2m05s") && lines[1].contains("5.0 ms"),
            "{text}"
        );
        assert!(lines[1].contains("100%"), "{text}");
        assert!(lines[2].contains("no-carrier"), "{text}");
        assert_eq!(lines[3], "policy balanced: wan1 100%");
        assert_eq!(age(59), "59s");
        assert_eq!(age(3600 * 3 + 240), "3h04m");
        assert_eq!(age(86_400 * 2 + 3600 * 5), "2d05h");
    }

    #[test]
    fn the_table_names_a_failed_sync_and_its_next_try() {
        let report = json!({
            "interfaces": {},
            "policies": {},
            "sync": {
                "routes": {"result": "ok", "age_s": 1},
                "nft": {"result": "failed", "error": "Error: boom", "failures": 3,
                        "age_s": 0, "retry_in_ms": 2050, "running": false},
            }
        });
        let text = table(&report);
        assert!(
            text.contains("nft: failed 3 times, next try in 2.0 s: Error: boom\n"),
            "{text}"
        );
        assert!(!text.contains("routes"), "{text}");
        let one = json!({"sync": {"routes": {"result": "failed", "error": "x", "failures": 1, "retry_in_ms": 500}}});
        assert!(table(&one).contains("routes: failed once, next try in 0.5 s: x"));
    }
}
