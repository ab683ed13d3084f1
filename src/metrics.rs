//! The status report as Prometheus metrics (text exposition format 0.0.4).
//!
//! Pure: works on the JSON of [`crate::status::report`], so the HTTP listener and anything
//! else holding a status reply render the same thing. Every value is printed from the
//! report's integers and one-decimal figures with integer arithmetic: never `NaN`, never
//! an infinity; a figure the report leaves out is left out here too.

use std::fmt::Write;

use serde_json::{Map, Value};

use crate::health::State;

/// The `Content-Type` of [`render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

struct Family {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
    samples: Vec<String>,
}

impl Family {
    fn new(name: &'static str, kind: &'static str, help: &'static str) -> Family {
        Family {
            name,
            kind,
            help,
            samples: Vec::new(),
        }
    }

    fn add(&mut self, labels: &[(&str, &str)], value: String) {
        let mut line = String::from(self.name);
        if !labels.is_empty() {
            line.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    line.push(',');
                }
                let _ = write!(line, "{k}=\"{}\"", escape_label(v));
            }
            line.push('}');
        }
        line.push(' ');
        line.push_str(&value);
        self.samples.push(line);
    }
}

/// Render a status report. Unknown or malformed parts of `status` are skipped.
pub fn render(status: &Value) -> String {
    let mut up = Family::new(
        "uplinkd_wan_up",
        "gauge",
        "1 when the WAN may carry new flows (state up or degraded), else 0.",
    );
    let mut state = Family::new(
        "uplinkd_wan_state",
        "gauge",
        "1 for the WAN's current state, 0 for every other state.",
    );
    let mut since = Family::new(
        "uplinkd_wan_state_age_seconds",
        "gauge",
        "Seconds since the WAN entered its current state.",
    );
    let mut weight = Family::new(
        "uplinkd_wan_weight",
        "gauge",
        "Weight in effect for the WAN (run-time override, else configured).",
    );
    let mut share = Family::new(
        "uplinkd_flow_share",
        "gauge",
        "Share of new flows of a policy that the WAN receives, 0 to 1.",
    );
    let mut transitions = Family::new(
        "uplinkd_transitions_total",
        "counter",
        "Times the WAN entered a state since the daemon started.",
    );
    let mut rtt = Family::new(
        "uplinkd_probe_rtt_seconds",
        "gauge",
        "Mean round-trip time of a probe target over its recent rounds.",
    );
    let mut loss = Family::new(
        "uplinkd_probe_loss_ratio",
        "gauge",
        "Share of a probe target's recent rounds without an answer, 0 to 1.",
    );
    let mut sent = Family::new(
        "uplinkd_probes_sent_total",
        "counter",
        "Probe rounds sent to a target since the WAN (re)started.",
    );
    let mut lost = Family::new(
        "uplinkd_probes_lost_total",
        "counter",
        "Probe rounds to a target that got no answer since the WAN (re)started.",
    );
    let mut answered = Family::new(
        "uplinkd_probe_answered",
        "gauge",
        "1 when the target answered its last finished probe round, else 0.",
    );
    let mut probe_bytes = Family::new(
        "uplinkd_probe_bytes_total",
        "counter",
        "Bytes the WAN's probes sent (tx) and received (rx) at the IP layer, by the probe cost model.",
    );
    let mut probe_monthly = Family::new(
        "uplinkd_probe_monthly_bytes",
        "gauge",
        "Bytes a 30-day month of probing the WAN at its present pace costs, both directions.",
    );
    let mut standby = Family::new(
        "uplinkd_wan_standby",
        "gauge",
        "1 while the WAN is probed at its standby pace (standby_interval), else 0.",
    );
    let mut policy_weight = Family::new(
        "uplinkd_policy_weight",
        "gauge",
        "Effective weight of a member in a policy, as its mode decided (0: no new flows).",
    );

    let mut sync_ok = Family::new(
        "uplinkd_sync_ok",
        "gauge",
        "1 when the last write of this part (routes, nft) succeeded, else 0.",
    );
    let mut sync_failures = Family::new(
        "uplinkd_sync_failures",
        "gauge",
        "Failed writes of this part in a row (0 after a success).",
    );
    let mut sync_retry = Family::new(
        "uplinkd_sync_retry_seconds",
        "gauge",
        "Seconds until a failed part is written again.",
    );

    let mut ha = Family::new(
        "uplinkd_ha_role",
        "gauge",
        "1 for the HA role keepalived reported (master, backup, fault), 0 for the others.",
    );
    if let Some(role) = status
        .get("ha")
        .and_then(|h| h.get("role"))
        .and_then(Value::as_str)
    {
        for name in crate::engine::ha::Role::NAMES {
            ha.add(&[("role", name)], flag(name == role));
        }
    }

    let mut quota_used = Family::new(
        "uplinkd_quota_used_bytes",
        "gauge",
        "Bytes a metered WAN has used in its current quota period (the direction it counts).",
    );
    let mut quota_bytes = Family::new(
        "uplinkd_quota_bytes",
        "gauge",
        "Bytes a metered WAN may use per quota period.",
    );

    let empty = Map::new();
    for (part, s) in status
        .get("sync")
        .and_then(Value::as_object)
        .unwrap_or(&empty)
    {
        let labels = [("part", part.as_str())];
        let result = s.get("result").and_then(Value::as_str);
        if matches!(result, Some("ok" | "failed")) {
            sync_ok.add(&labels, flag(result == Some("ok")));
            let n = s.get("failures").and_then(Value::as_u64).unwrap_or(0);
            sync_failures.add(&labels, n.to_string());
        }
        if let Some(ms) = s.get("retry_in_ms").and_then(Value::as_u64) {
            sync_retry.add(&labels, fixed(ms, 3));
        }
    }
    for (policy, p) in status
        .get("policies")
        .and_then(Value::as_object)
        .unwrap_or(&empty)
    {
        for (wan, w) in p
            .get("weights")
            .and_then(Value::as_object)
            .unwrap_or(&empty)
        {
            if let Some(w) = w.as_u64() {
                policy_weight.add(&[("policy", policy), ("wan", wan)], w.to_string());
            }
        }
    }
    let interfaces = status
        .get("interfaces")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    for (wan, w) in interfaces {
        let wan = wan.as_str();
        let current = w.get("state").and_then(Value::as_str);
        if let Some(current) = current {
            let usable = matches!(current, "up" | "degraded");
            up.add(&[("wan", wan)], flag(usable));
            for name in State::NAMES {
                state.add(&[("wan", wan), ("state", name)], flag(name == current));
            }
        }
        if let Some(s) = w.get("since").and_then(Value::as_u64) {
            since.add(&[("wan", wan)], s.to_string());
        }
        if let Some(v) = w.get("weight").and_then(Value::as_u64) {
            weight.add(&[("wan", wan)], v.to_string());
        }
        if let Some(q) = w.get("quota") {
            if let Some(v) = q.get("used").and_then(Value::as_u64) {
                quota_used.add(&[("wan", wan)], v.to_string());
            }
            if let Some(v) = q.get("bytes").and_then(Value::as_u64) {
                quota_bytes.add(&[("wan", wan)], v.to_string());
            }
        }
        for (policy, pct) in w.get("share").and_then(Value::as_object).unwrap_or(&empty) {
            if let Some(t) = tenths(pct) {
                // percent with one decimal → ratio: tenths of a percent / 1000.
                share.add(&[("wan", wan), ("policy", policy)], fixed(t, 3));
            }
        }
        for (to, n) in w
            .get("transitions")
            .and_then(Value::as_object)
            .unwrap_or(&empty)
        {
            if let Some(n) = n.as_u64() {
                transitions.add(&[("wan", wan), ("to", to)], n.to_string());
            }
        }
        if let Some(b) = w.get("probe_bytes") {
            for direction in ["tx", "rx"] {
                if let Some(n) = b.get(direction).and_then(Value::as_u64) {
                    probe_bytes.add(&[("wan", wan), ("direction", direction)], n.to_string());
                }
            }
        }
        if let Some(n) = w.get("probe_monthly_bytes").and_then(Value::as_u64) {
            probe_monthly.add(&[("wan", wan)], n.to_string());
        }
        if let Some(b) = w.get("standby").and_then(Value::as_bool) {
            standby.add(&[("wan", wan)], flag(b));
        }
        let targets = w.get("targets").and_then(Value::as_array);
        for t in targets.map_or(&[][..], |t| &t[..]) {
            let Some(ip) = t.get("ip").and_then(Value::as_str) else {
                continue;
            };
            // The probe kind (ping, tcp, http, dns, gateway): losses by kind are a
            // `sum by (method)` away.
            let method = t.get("method").and_then(Value::as_str);
            let mut labels = vec![("wan", wan), ("target", ip)];
            labels.extend(method.map(|m| ("method", m)));
            let labels = &labels[..];
            if let Some(ms) = t.get("mean_rtt_ms").and_then(tenths) {
                // tenths of a millisecond → seconds: / 10_000.
                rtt.add(labels, fixed(ms, 4));
            }
            if let Some(pct) = t.get("loss_percent").and_then(tenths) {
                loss.add(labels, fixed(pct, 3));
            }
            if let Some(n) = t.get("sent").and_then(Value::as_u64) {
                sent.add(labels, n.to_string());
            }
            if let Some(n) = t.get("lost").and_then(Value::as_u64) {
                lost.add(labels, n.to_string());
            }
            if let Some(a) = t.get("answered").and_then(Value::as_bool) {
                answered.add(labels, flag(a));
            }
        }
    }

    let mut out = String::new();
    for f in [
        up,
        state,
        since,
        weight,
        share,
        transitions,
        rtt,
        loss,
        sent,
        lost,
        answered,
        probe_bytes,
        probe_monthly,
        standby,
        policy_weight,
        sync_ok,
        sync_failures,
        sync_retry,
        ha,
        quota_used,
        quota_bytes,
    ] {
        let _ = writeln!(out, "# HELP {} {}", f.name, escape_help(f.help));
        let _ = writeln!(out, "# TYPE {} {}", f.name, f.kind);
        for s in f.samples {
            out.push_str(&s);
            out.push('\n');
        }
    }
    out
}

fn flag(b: bool) -> String {
    if b { "1" } else { "0" }.to_string()
}

/// A non-negative report number with at most one decimal, in tenths; `None` for anything
/// else (negative, not finite, not a number).
fn tenths(v: &Value) -> Option<u64> {
    if let Some(n) = v.as_u64() {
        return n.checked_mul(10);
    }
    let f = v.as_f64()?;
    if !f.is_finite() || !(0.0..=1e15).contains(&f) {
        return None;
    }
    Some((f * 10.0).round() as u64)
}

/// `n / 10^digits` as an exact decimal, without trailing zeros.
fn fixed(n: u64, digits: u32) -> String {
    let scale = 10u64.pow(digits);
    let (int, frac) = (n / scale, n % scale);
    if frac == 0 {
        return int.to_string();
    }
    let frac = format!("{frac:0width$}", width = digits as usize);
    format!("{int}.{}", frac.trim_end_matches('0'))
}

/// A label value: backslash, double quote and line feed escaped.
fn escape_label(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// A HELP text: backslash and line feed escaped.
fn escape_help(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> Value {
        json!({
            "interfaces": {
                "wan": {
                    "state": "up", "since": 312, "weight": 3,
                    "share": {"balanced": 75, "thirds": 33.3},
                    "transitions": {"up": 2, "down": 1},
                    "targets": [
                        {"ip": "1.1.1.1", "last_rtt_ms": 12.3, "mean_rtt_ms": 11.8,
                         "loss_percent": 6, "sent": 312, "lost": 1},
                        {"ip": "9.9.9.9", "sent": 0, "lost": 0}
                    ],
                    "probe_bytes": {"tx": 7200, "rx": 7128},
                    "probe_monthly_bytes": 559872000,
                    "standby": false,
                    "history": []
                },
                "we\"ird\\wan\n": {"state": "no-carrier", "targets": []}
            },
            "policies": {"backup": {"mode": "lowest_latency", "weights": {"wan": 0}}}
        })
    }

    #[test]
    fn probe_kind_and_last_answer_per_target() {
        let status = json!({
            "interfaces": {
                "wan": {"state": "down", "targets": [
                    {"ip": "10.0.0.1", "method": "gateway", "answered": false,
                     "last_error": "timed out", "sent": 9, "lost": 4},
                    {"ip": "192.0.2.53", "method": "dns", "answered": true,
                     "mean_rtt_ms": 2.5, "sent": 9, "lost": 0}
                ]}
            }
        });
        let text = render(&status);
        let l = lines(&text);
        for want in [
            "uplinkd_probe_answered{wan=\"wan\",target=\"10.0.0.1\",method=\"gateway\"} 0",
            "uplinkd_probe_answered{wan=\"wan\",target=\"192.0.2.53\",method=\"dns\"} 1",
            "uplinkd_probes_lost_total{wan=\"wan\",target=\"10.0.0.1\",method=\"gateway\"} 4",
            "uplinkd_probe_rtt_seconds{wan=\"wan\",target=\"192.0.2.53\",method=\"dns\"} 0.0025",
            "# TYPE uplinkd_probe_answered gauge",
        ] {
            assert!(l.contains(&want), "{want} in\n{text}");
        }
    }

    #[test]
    fn quota_gauges() {
        let status = json!({"interfaces": {"lte": {"state": "up", "targets": [],
            "quota": {"bytes": 5000000, "used": 5100042, "state": "exceeded"}}}});
        let text = render(&status);
        let l = lines(&text);
        assert!(
            l.contains(&"uplinkd_quota_used_bytes{wan=\"lte\"} 5100042"),
            "{text}"
        );
        assert!(
            l.contains(&"uplinkd_quota_bytes{wan=\"lte\"} 5000000"),
            "{text}"
        );
    }

    fn lines(text: &str) -> Vec<&str> {
        text.lines().collect()
    }

    #[test]
    fn renders_every_family_with_help_and_type() {
        let text = render(&sample());
        let l = lines(&text);
        for name in [
            "uplinkd_wan_up",
            "uplinkd_wan_state",
            "uplinkd_probe_rtt_seconds",
            "uplinkd_probe_loss_ratio",
            "uplinkd_probes_sent_total",
            "uplinkd_probes_lost_total",
            "uplinkd_transitions_total",
            "uplinkd_flow_share",
            "uplinkd_wan_weight",
        ] {
            assert!(l.iter().any(|x| x.starts_with(&format!("# HELP {name} "))));
            assert!(l.iter().any(|x| x.starts_with(&format!("# TYPE {name} "))));
        }
        assert!(l.contains(&"uplinkd_wan_up{wan=\"wan\"} 1"));
        assert!(l.contains(&"uplinkd_wan_state{wan=\"wan\",state=\"up\"} 1"));
        assert!(l.contains(&"uplinkd_wan_state{wan=\"wan\",state=\"held\"} 0"));
        assert!(l.contains(&"uplinkd_wan_state_age_seconds{wan=\"wan\"} 312"));
        assert!(l.contains(&"uplinkd_wan_weight{wan=\"wan\"} 3"));
        assert!(l.contains(&"uplinkd_flow_share{wan=\"wan\",policy=\"balanced\"} 0.75"));
        assert!(l.contains(&"uplinkd_flow_share{wan=\"wan\",policy=\"thirds\"} 0.333"));
        assert!(l.contains(&"uplinkd_transitions_total{wan=\"wan\",to=\"down\"} 1"));
        assert!(
            l.contains(&"uplinkd_probe_rtt_seconds{wan=\"wan\",target=\"1.1.1.1\"} 0.0118"),
            "{text}"
        );
        assert!(l.contains(&"uplinkd_probe_loss_ratio{wan=\"wan\",target=\"1.1.1.1\"} 0.06"));
        assert!(l.contains(&"uplinkd_probes_sent_total{wan=\"wan\",target=\"1.1.1.1\"} 312"));
        assert!(l.contains(&"uplinkd_probes_lost_total{wan=\"wan\",target=\"9.9.9.9\"} 0"));
        assert!(l.contains(&"uplinkd_probe_bytes_total{wan=\"wan\",direction=\"tx\"} 7200"));
        assert!(l.contains(&"uplinkd_probe_bytes_total{wan=\"wan\",direction=\"rx\"} 7128"));
        assert!(l.contains(&"uplinkd_probe_monthly_bytes{wan=\"wan\"} 559872000"));
        assert!(l.contains(&"uplinkd_wan_standby{wan=\"wan\"} 0"));
        assert!(l.contains(&"uplinkd_policy_weight{policy=\"backup\",wan=\"wan\"} 0"));
        // Unknown figures are left out, not invented.
        assert!(
            !text.contains("target=\"9.9.9.9\"} 0.")
                && !text.contains("rtt_seconds{wan=\"wan\",target=\"9.9.9.9\"")
        );
        assert!(!text.contains("NaN") && !text.contains("Inf"));
    }

    #[test]
    fn label_values_are_escaped() {
        let text = render(&sample());
        assert!(
            text.contains("uplinkd_wan_up{wan=\"we\\\"ird\\\\wan\\n\"} 0"),
            "{text}"
        );
        assert!(
            text.contains("uplinkd_wan_state{wan=\"we\\\"ird\\\\wan\\n\",state=\"no-carrier\"} 1")
        );
        // One sample per line: the raw newline never reaches the output.
        for l in text.lines() {
            assert!(l.starts_with('#') || l.starts_with("uplinkd_"), "{l:?}");
        }
    }

    #[test]
    fn garbage_in_renders_headers_only() {
        for v in [
            json!(null),
            json!([]),
            json!({"interfaces": 5}),
            json!({"interfaces": {"w": {"state": 1, "share": {"p": -1}, "weight": "x",
                "targets": [{"ip": 3}, {"ip": "a", "mean_rtt_ms": -2.0, "sent": -1}]}}}),
        ] {
            let text = render(&v);
            assert!(text.lines().all(|l| l.starts_with('#')), "{text}");
        }
    }

    #[test]
    fn huge_and_fractional_numbers_stay_exact() {
        assert_eq!(fixed(0, 4), "0");
        assert_eq!(fixed(5, 4), "0.0005");
        assert_eq!(fixed(123_456, 4), "12.3456");
        assert_eq!(fixed(u64::MAX, 3), "18446744073709551.615");
        assert_eq!(tenths(&json!(u64::MAX)), None);
        assert_eq!(tenths(&json!(12.3)), Some(123));
        assert_eq!(tenths(&json!(1e300)), None);
        let v = json!({"interfaces": {"w": {"state": "up", "transitions": {"up": u64::MAX},
            "targets": [{"ip": "a", "sent": u64::MAX, "lost": u64::MAX}]}}});
        let text = render(&v);
        assert!(
            text.contains("uplinkd_probes_sent_total{wan=\"w\",target=\"a\"} 18446744073709551615")
        );
    }

    #[test]
    fn renders_the_real_report() {
        use crate::engine::Engine;
        use crate::testutil::{config, snapshot};
        use crate::time::Instant;
        let mut e = Engine::new(config(&[3, 1], 2), None, 1, Instant::from_millis(0));
        e.on_snapshot(&snapshot(&[true, false]), Instant::from_millis(0));
        let plan = e.desired(true);
        let text = render(&crate::status::report(
            &e,
            Some(&plan),
            Instant::from_millis(0),
        ));
        assert!(
            text.contains("uplinkd_wan_state{wan=\"wan2\",state=\"no-carrier\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("uplinkd_flow_share{wan=\"wan1\",policy=\"balanced\"} 1"),
            "{text}"
        );
        assert!(text.contains(
            "uplinkd_probes_sent_total{wan=\"wan1\",target=\"203.0.113.1\",method=\"ping\"} 0"
        ));
        // tests/metrics.sh feeds these to a real exposition-format parser.
        if let Some(dir) = std::env::var_os("UPLINKD_METRICS_SAMPLES") {
            let dir = std::path::PathBuf::from(dir);
            std::fs::write(dir.join("report.prom"), &text).unwrap();
            std::fs::write(dir.join("tricky.prom"), render(&sample())).unwrap();
        }
    }

    #[test]
    fn sync_state_is_exported() {
        let status = serde_json::json!({
            "interfaces": {},
            "sync": {
                "routes": {"result": "ok", "age_s": 1},
                "nft": {"result": "failed", "error": "e", "failures": 2, "retry_in_ms": 1500},
            }
        });
        let text = render(&status);
        let l = lines(&text);
        assert!(l.contains(&"uplinkd_sync_ok{part=\"routes\"} 1"), "{text}");
        assert!(l.contains(&"uplinkd_sync_ok{part=\"nft\"} 0"), "{text}");
        assert!(
            l.contains(&"uplinkd_sync_failures{part=\"nft\"} 2"),
            "{text}"
        );
        assert!(
            l.contains(&"uplinkd_sync_retry_seconds{part=\"nft\"} 1.5"),
            "{text}"
        );
    }
}
