//! Run-time control: the methods of the `uplinkd` ubus object and of the control socket,
//! parsed and dispatched in one place so that both front ends behave the same.
//!
//! | method | arguments | effect |
//! |---|---|---|
//! | `status` | `interface` (string, optional) | the status report (`docs/status.md`) |
//! | `reload` | | re-read the configuration (as SIGHUP) |
//! | `probe` | `interface` (string, optional) | start a probe round now, on one WAN or all |
//! | `set_weight` | `interface` (string), `weight` (1-1000) | run-time weight override |
//! | `disable` | `interface` (string) | drain: the WAN takes no new flows |
//! | `enable` | `interface` (string) | undo `disable` |
//! | `ha` | `role` (`master`, `backup` or `fault`) | keepalived's VRRP transition (HA pair) |
//! | `quota_reset` | `interface` (string) | a metered WAN's count back to zero now |
//!
//! Run-time changes show in `status` and are lost on reload. Unknown methods are
//! `MethodNotFound`, wrong or missing arguments `InvalidArgument`, an unknown WAN
//! `NotFound`, as ubus clients expect.

use serde_json::{json, Map, Value};

use crate::engine::{Engine, Output};
use crate::plan::Desired;
use crate::status;
use crate::time::Instant;
use crate::ubus::{ArgType, Method, Status};

/// Largest weight `set_weight` accepts (as `option weight`).
pub const MAX_WEIGHT: u64 = 1000;

/// A parsed request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    Status { interface: Option<String> },
    Reload,
    Probe { interface: Option<String> },
    SetWeight { interface: String, weight: u16 },
    Disable { interface: String },
    Enable { interface: String },
    Ha { role: crate::engine::ha::Role },
    QuotaReset { interface: String },
}

/// A refused request: the ubus status code and a message for people.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    pub status: Status,
    pub message: String,
}

impl Error {
    pub fn new(status: Status, message: impl Into<String>) -> Error {
        Error {
            status,
            message: message.into(),
        }
    }

    fn bad(message: impl Into<String>) -> Error {
        Error::new(Status::InvalidArgument, message)
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// The methods with their argument types, as published on ubus (`ubus -v list uplinkd`).
pub fn methods() -> Vec<Method> {
    use ArgType::{Int32, String as Str};
    vec![
        Method::new("status", &[("interface", Str)]),
        Method::new("reload", &[]),
        Method::new("probe", &[("interface", Str)]),
        Method::new("set_weight", &[("interface", Str), ("weight", Int32)]),
        Method::new("disable", &[("interface", Str)]),
        Method::new("enable", &[("interface", Str)]),
        Method::new("ha", &[("role", Str)]),
        Method::new("quota_reset", &[("interface", Str)]),
    ]
}

/// The argument uhttpd (`/ubus`) and rpcd add to every call made for a LuCI session.
pub const RPC_SESSION_KEY: &str = "ubus_rpc_session";

impl Request {
    /// Parse `method` with `args` (a JSON object; null counts as no arguments). Unknown
    /// argument names are refused, so that a typo does not silently act on every WAN;
    /// `ubus_rpc_session`, which uhttpd's `/ubus` handler and rpcd add to every call made
    /// on behalf of a web session, is the one foreign key accepted (and ignored).
    pub fn parse(method: &str, args: &Value) -> Result<Request, Error> {
        let empty = Map::new();
        let args = match args {
            Value::Null => &empty,
            Value::Object(m) => m,
            _ => return Err(Error::bad("arguments must be a JSON object")),
        };
        let allowed: &[&str] = match method {
            "status" | "probe" | "disable" | "enable" | "quota_reset" => &["interface"],
            "set_weight" => &["interface", "weight"],
            "reload" => &[],
            "ha" => &["role"],
            other => {
                return Err(Error::new(
                    Status::MethodNotFound,
                    format!("unknown method '{other}'"),
                ))
            }
        };
        if let Some(k) = args
            .keys()
            .find(|k| k.as_str() != RPC_SESSION_KEY && !allowed.contains(&k.as_str()))
        {
            return Err(Error::bad(format!("{method}: unknown argument '{k}'")));
        }
        let interface = || -> Result<Option<String>, Error> {
            match args.get("interface") {
                None => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(Error::bad(format!(
                    "{method}: 'interface' must be a string"
                ))),
            }
        };
        let required = || -> Result<String, Error> {
            interface()?.ok_or_else(|| Error::bad(format!("{method}: 'interface' is required")))
        };
        Ok(match method {
            "status" => Request::Status {
                interface: interface()?,
            },
            "reload" => Request::Reload,
            "probe" => Request::Probe {
                interface: interface()?,
            },
            "disable" => Request::Disable {
                interface: required()?,
            },
            "enable" => Request::Enable {
                interface: required()?,
            },
            "quota_reset" => Request::QuotaReset {
                interface: required()?,
            },
            "ha" => {
                let role = args.get("role").and_then(Value::as_str);
                let role = role
                    .and_then(crate::engine::ha::Role::parse)
                    .ok_or_else(|| {
                        Error::bad("ha: 'role' must be \"master\", \"backup\" or \"fault\"")
                    })?;
                Request::Ha { role }
            }
            _ => {
                let interface = required()?;
                let weight = match args.get("weight") {
                    None => return Err(Error::bad("set_weight: 'weight' is required")),
                    Some(v) => v
                        .as_u64()
                        .filter(|w| (1..=MAX_WEIGHT).contains(w))
                        .ok_or_else(|| {
                            Error::bad(format!(
                                "set_weight: 'weight' must be an integer from 1 to {MAX_WEIGHT}"
                            ))
                        })?,
                };
                Request::SetWeight {
                    interface,
                    weight: weight as u16,
                }
            }
        })
    }
}

/// Carry out every request but `Reload` (which needs the configuration file: the daemon
/// does it) on the engine. Returns the reply data and the engine's outputs (transitions
/// to report), for the caller to act on.
pub fn apply(
    engine: &mut Engine,
    plan: Option<&Desired>,
    req: &Request,
    now: Instant,
) -> Result<(Value, Vec<Output>), Error> {
    let wan = |engine: &Engine, name: &str| {
        engine
            .wan_index(name)
            .ok_or_else(|| Error::new(Status::NotFound, format!("no interface named '{name}'")))
    };
    match req {
        Request::Status { interface: None } => Ok((status::report(engine, plan, now), Vec::new())),
        Request::Status {
            interface: Some(name),
        } => {
            wan(engine, name)?;
            let report = status::report_one(engine, plan, name, now).ok_or_else(|| {
                Error::new(Status::NotFound, format!("no interface named '{name}'"))
            })?;
            Ok((report, Vec::new()))
        }
        Request::Probe { interface } => {
            let index = match interface {
                Some(name) => Some(wan(engine, name)?),
                None => None,
            };
            engine.probe_now(index);
            Ok((json!({}), Vec::new()))
        }
        Request::SetWeight { interface, weight } => {
            let i = wan(engine, interface)?;
            engine.set_weight(i, Some(*weight));
            Ok((json!({}), Vec::new()))
        }
        Request::Disable { interface } | Request::Enable { interface } => {
            let i = wan(engine, interface)?;
            let enable = matches!(req, Request::Enable { .. });
            let outs = engine.set_admin_enabled(i, enable, now).ok_or_else(|| {
                Error::new(
                    Status::NotFound,
                    format!("no interface named '{interface}'"),
                )
            })?;
            Ok((json!({}), outs))
        }
        Request::Ha { role } => Ok((json!({}), engine.set_role(*role, now))),
        Request::QuotaReset { interface } => {
            let i = wan(engine, interface)?;
            let event = engine.reset_quota(i).ok_or_else(|| {
                Error::new(
                    Status::NotFound,
                    format!("interface '{interface}' has no quota"),
                )
            })?;
            Ok((json!({}), vec![Output::Quota(event)]))
        }
        Request::Reload => Err(Error::new(
            Status::NotSupported,
            "reload is carried out by the daemon",
        )),
    }
}

/// The JSON of a `uplinkd.wan` event (and of the object notification of the same name).
pub fn wan_event(name: &str, event: &crate::health::Event) -> Value {
    json!({
        "interface": name,
        "state": event.to.as_str(),
        "previous": event.from.as_str(),
        "reason": event.reason.to_string(),
    })
}

/// The JSON of a `uplinkd.ha` event: the HA role keepalived reported.
pub fn ha_event(from: Option<crate::engine::ha::Role>, to: crate::engine::ha::Role) -> Value {
    json!({
        "role": to.as_str(),
        "previous": from.map_or("none", |r| r.as_str()),
    })
}

/// The JSON of a `uplinkd.quota` event: a metered WAN crossed its warning threshold or
/// its quota, or its count was reset.
pub fn quota_event(event: &crate::quota::Event, quota: u64) -> Value {
    use crate::quota::{Event, ResetReason};
    let (used, reason) = match event {
        Event::Warning { used, .. } | Event::Exceeded { used, .. } => (*used, None),
        Event::Reset { used, reason, .. } => (
            *used,
            Some(match reason {
                ResetReason::Period => "period",
                ResetReason::Manual => "manual",
            }),
        ),
    };
    let mut v = json!({
        "interface": event.wan(),
        "action": event.action(),
        "used": used,
        "quota": quota,
    });
    if let (Some(r), Some(o)) = (reason, v.as_object_mut()) {
        o.insert("reason".into(), json!(r));
    }
    v
}

/// A request from a front end (ubus, control socket) to the event loop, with the
/// channel to answer on.
pub struct Call {
    pub method: String,
    pub args: Value,
    pub reply: crate::channel::Sender<Result<Value, Error>>,
}

impl Call {
    /// Sends a request to the event loop behind `calls` and waits for its answer.
    pub async fn send(
        calls: &crate::channel::Sender<Call>,
        method: String,
        args: Value,
    ) -> Result<Value, Error> {
        let (reply, answer) = crate::channel::bounded(1);
        let call = Call {
            method,
            args,
            reply,
        };
        if calls.send(call).await.is_err() {
            return Err(Error::new(Status::UnknownError, "uplinkd is stopping"));
        }
        answer
            .recv()
            .await
            .unwrap_or_else(|_| Err(Error::new(Status::UnknownError, "no answer")))
    }
}

/// One line of the control socket protocol: `{"method": "...", "args": {...}}`.
pub fn parse_line(line: &str) -> Result<(String, Value), Error> {
    let v: Value = serde_json::from_str(line)
        .map_err(|e| Error::new(Status::ParseError, format!("request is not JSON: {e}")))?;
    let method = v
        .get("method")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::bad("request needs a string 'method'"))?;
    let args = v.get("args").cloned().unwrap_or(Value::Null);
    Ok((method.to_string(), args))
}

/// The control socket's answer line (without the newline):
/// `{"status": 0, "data": {...}}` or `{"status": N, "error": "..."}`.
pub fn reply_line(result: &Result<Value, Error>) -> String {
    let v = match result {
        Ok(data) => json!({"status": 0, "data": data}),
        Err(e) => json!({"status": e.status.as_u32(), "error": e.message}),
    };
    v.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::State;
    use crate::testutil::{config, snapshot};

    fn at(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    fn engine() -> Engine {
        let mut e = Engine::new(config(&[3, 1], 2), None, 0x100, at(0));
        e.on_snapshot(&snapshot(&[true, true]), at(0));
        e
    }

    fn call(e: &mut Engine, method: &str, args: Value, now: Instant) -> Result<Value, Error> {
        let req = Request::parse(method, &args)?;
        let plan = e.desired(true);
        apply(e, Some(&plan), &req, now).map(|(v, _)| v)
    }

    fn status_of(e: &Engine, wan: &str, now: Instant) -> Value {
        let plan = e.desired(true);
        status::report(e, Some(&plan), now)["interfaces"][wan].clone()
    }

    #[test]
    fn arguments_are_checked() {
        let bad = |m: &str, a: Value| Request::parse(m, &a).unwrap_err().status;
        assert_eq!(
            bad("status", json!({"interface": 7})),
            Status::InvalidArgument
        );
        assert_eq!(bad("status", json!([1])), Status::InvalidArgument);
        assert_eq!(
            bad("status", json!({"iface": "wan1"})),
            Status::InvalidArgument
        );
        assert_eq!(bad("disable", json!({})), Status::InvalidArgument);
        assert_eq!(
            bad("set_weight", json!({"interface": "wan1"})),
            Status::InvalidArgument
        );
        for w in [json!(0), json!(1001), json!(-1), json!(2.5), json!("3")] {
            assert_eq!(
                bad("set_weight", json!({"interface": "wan1", "weight": w})),
                Status::InvalidArgument
            );
        }
        assert_eq!(bad("frobnicate", json!({})), Status::MethodNotFound);
        assert_eq!(
            Request::parse("set_weight", &json!({"interface": "wan1", "weight": 1000})),
            Ok(Request::SetWeight {
                interface: "wan1".into(),
                weight: 1000
            })
        );
        assert_eq!(Request::parse("reload", &Value::Null), Ok(Request::Reload));
        // What uhttpd's /ubus and rpcd send for a LuCI session.
        let session = json!("00000000000000000000000000000000");
        assert_eq!(
            Request::parse("reload", &json!({ "ubus_rpc_session": session })),
            Ok(Request::Reload)
        );
        assert_eq!(
            Request::parse(
                "disable",
                &json!({"interface": "wan1", "ubus_rpc_session": session})
            ),
            Ok(Request::Disable {
                interface: "wan1".into()
            })
        );
        assert_eq!(
            Request::parse("status", &json!({})),
            Ok(Request::Status { interface: None })
        );
    }

    #[test]
    fn unknown_wan_is_not_found() {
        let mut e = engine();
        for (m, a) in [
            ("status", json!({"interface": "nope"})),
            ("probe", json!({"interface": "nope"})),
            ("disable", json!({"interface": "nope"})),
            ("enable", json!({"interface": "nope"})),
            ("set_weight", json!({"interface": "nope", "weight": 2})),
        ] {
            assert_eq!(
                call(&mut e, m, a, at(1)).unwrap_err().status,
                Status::NotFound
            );
        }
    }

    #[test]
    fn disable_drains_and_enable_restores() {
        let mut e = engine();
        let r = call(&mut e, "disable", json!({"interface": "wan2"}), at(1000));
        assert_eq!(r, Ok(json!({})));
        assert_eq!(e.wans()[1].health.state(), State::Disabled);
        let plan = e.desired(true);
        assert_eq!(plan.policies[0].v4.active, vec![("wan1".to_string(), 3)]);
        let s = status_of(&e, "wan2", at(3000));
        assert_eq!(s["state"], "disabled");
        assert_eq!(s["enabled"], false);
        assert_eq!(s["drained"], true);
        assert_eq!(s["since"], 2);
        assert_eq!(s["share"], json!({}));
        // No probes while drained.
        assert!(e
            .poll(at(5000))
            .iter()
            .all(|o| !matches!(o, Output::Probe { wan: 1, .. })));
        // Disabling twice is no new transition.
        let req = Request::parse("disable", &json!({"interface": "wan2"})).unwrap();
        assert!(apply(&mut e, None, &req, at(5000)).unwrap().1.is_empty());

        let req = Request::parse("enable", &json!({"interface": "wan2"})).unwrap();
        let (_, outs) = apply(&mut e, None, &req, at(6000)).unwrap();
        assert!(
            matches!(&outs[..], [Output::Transition { wan: 1, event }] if event.to == State::Up)
        );
        assert_eq!(e.desired(true).policies[0].v4.active.len(), 2);
    }

    #[test]
    fn set_weight_shows_in_status_and_is_lost_on_reload() {
        let mut e = engine();
        call(
            &mut e,
            "set_weight",
            json!({"interface": "wan2", "weight": 3}),
            at(0),
        )
        .unwrap();
        call(&mut e, "disable", json!({"interface": "wan1"}), at(0)).unwrap();
        call(&mut e, "enable", json!({"interface": "wan1"}), at(0)).unwrap();
        let s = status_of(&e, "wan2", at(0));
        assert_eq!(s["weight"], 3);
        assert_eq!(s["configured_weight"], 1);
        assert_eq!(s["weight_override"], 3);
        assert_eq!(s["share"], json!({"balanced": 50}));
        call(&mut e, "disable", json!({"interface": "wan1"}), at(0)).unwrap();
        let cfg = e.config().clone();
        e.reload(cfg, at(10));
        let s = status_of(&e, "wan2", at(10));
        assert_eq!(s["weight"], 1);
        assert!(s.get("weight_override").is_none());
        assert_eq!(s["share"], json!({"balanced": 25}));
        assert_eq!(
            e.wans()[0].health.state(),
            State::Up,
            "drain lost on reload"
        );
    }

    #[test]
    fn status_of_one_interface_and_probe() {
        let mut e = engine();
        let v = call(&mut e, "status", json!({"interface": "wan1"}), at(0)).unwrap();
        let names: Vec<&String> = v["interfaces"].as_object().unwrap().keys().collect();
        assert_eq!(names, ["wan1"]);
        assert!(v["policies"]["balanced"].is_object());
        // An immediate round: probes at once even though the last round just started.
        e.poll(at(100));
        assert!(e.poll(at(200)).is_empty());
        call(&mut e, "probe", json!({"interface": "wan2"}), at(200)).unwrap();
        let out = e.poll(at(200));
        assert!(!out.is_empty());
        assert!(out
            .iter()
            .all(|o| matches!(o, Output::Probe { wan: 1, .. })));
    }

    #[test]
    fn socket_lines() {
        assert_eq!(
            parse_line(r#"{"method":"status","args":{"interface":"wan1"}}"#),
            Ok(("status".into(), json!({"interface": "wan1"})))
        );
        assert_eq!(
            parse_line(r#"{"method":"reload"}"#),
            Ok(("reload".into(), Value::Null))
        );
        assert_eq!(parse_line("{").unwrap_err().status, Status::ParseError);
        assert_eq!(
            parse_line("{}").unwrap_err().status,
            Status::InvalidArgument
        );
        assert_eq!(reply_line(&Ok(json!({}))), r#"{"data":{},"status":0}"#);
        let err = reply_line(&Err(Error::new(Status::NotFound, "no interface named 'x'")));
        assert_eq!(
            serde_json::from_str::<Value>(&err).unwrap(),
            json!({"status": 4, "error": "no interface named 'x'"})
        );
    }

    #[test]
    fn quota_reset_and_quota_events() {
        use crate::quota::{Event, Period, Quota, ResetReason};
        let mut cfg = config(&[3, 1], 2);
        cfg.interfaces[1].quota = Some(Quota::for_tests(5_000_000, Period::Daily));
        let mut e = Engine::new(cfg, None, 0x100, at(0));
        let req = Request::parse("quota_reset", &json!({"interface": "wan2"})).unwrap();
        let (_, outs) = apply(&mut e, None, &req, at(0)).unwrap();
        assert!(matches!(
            &outs[..],
            [Output::Quota(Event::Reset {
                reason: ResetReason::Manual,
                ..
            })]
        ));
        let err = call(&mut e, "quota_reset", json!({"interface": "wan1"}), at(0)).unwrap_err();
        assert_eq!(err.status, Status::NotFound);
        assert_eq!(err.message, "interface 'wan1' has no quota");
        let bad = Request::parse("quota_reset", &json!({})).unwrap_err();
        assert_eq!(bad.status, Status::InvalidArgument);
        let ev = Event::Exceeded {
            wan: "wan2".into(),
            used: 5_000_100,
            quota: 5_000_000,
        };
        assert_eq!(
            quota_event(&ev, 5_000_000),
            json!({"interface": "wan2", "action": "quota_exceeded", "used": 5_000_100, "quota": 5_000_000})
        );
        let ev = Event::Reset {
            wan: "wan2".into(),
            reason: ResetReason::Period,
            used: 42,
        };
        assert_eq!(quota_event(&ev, 9)["reason"], "period");
    }

    #[test]
    fn published_methods_have_typed_arguments() {
        let m = methods();
        let names: Vec<&str> = m.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "status",
                "reload",
                "probe",
                "set_weight",
                "disable",
                "enable",
                "ha",
                "quota_reset"
            ]
        );
        assert_eq!(
            m[3].args,
            vec![
                ("interface".to_string(), ArgType::String),
                ("weight".to_string(), ArgType::Int32)
            ]
        );
    }
}
