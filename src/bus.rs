//! uplinkd on ubus: the `uplinkd` object, `uplinkd.wan` events, and netifd.
//!
//! One task owns the ubus connection. It connects with backoff (the daemon runs on
//! without ubusd and never waits for it), publishes the `uplinkd` object with the
//! methods of [`crate::control`], listens to `network.interface` events, and after every
//! (re)connect re-creates all of that. Method calls are handed to the event loop as
//! [`Call`]s and answered with what the loop replies, so ubus and the control socket
//! share one dispatch. Transitions come back the other way as [`Out::Wan`] and go out as
//! an `uplinkd.wan` event and as a notification of the same name to the object's
//! subscribers.
//!
//! netifd: for every WAN that follows netifd (no `option device`), the task asks
//! `network.interface.<name>` for its `status` at connect, whenever a
//! `network.interface` event or `ubus.object.add` names it, and when the event loop asks
//! (a reload, the periodic re-check, a kernel route that disagrees), and passes the
//! result ([`parse_netifd`]) to the event loop. It also subscribes to netifd's
//! `network.interface` object, whose `interface.update` / `interface.down`
//! notifications carry the full status: a DHCP renew that only changes the gateway sends
//! nothing else. An object that is missing (netifd registers its objects again only a
//! while after a ubusd restart) is asked for again with backoff, and the event loop keeps
//! the last answer meanwhile; only `ubus.object.remove` makes an interface unknown.

use crate::SpawnBoxed;
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use crate::channel::{self, Receiver, Sender};
use serde_json::{json, Value};
use smol::{LocalExecutor, Timer};

use crate::config::Prefix;
use crate::control::{self, Call};
use crate::engine::Netifd;
use crate::ubus::{Client, Incoming, Session, Status};

/// The default ubusd socket.
pub const DEFAULT_SOCKET: &str = "/var/run/ubus/ubus.sock";
/// Our object's name.
pub const OBJECT: &str = "uplinkd";
/// The event (and notification type) sent on every transition.
pub const WAN_EVENT: &str = "uplinkd.wan";
/// The event and notification of an HA role change.
pub const HA_EVENT: &str = "uplinkd.ha";
/// The event a metered WAN's quota transition is announced as (see
/// [`control::quota_event`]).
pub const QUOTA_EVENT: &str = "uplinkd.quota";
/// How long a netifd status query may take.
const NETIFD_TIMEOUT: Duration = Duration::from_secs(3);
/// netifd's objects.
const NETIFD_OBJECT: &str = "network.interface";
/// Retries of a netifd interface that is missing or does not answer: the first after
/// `NETIFD_RETRY_FIRST`, doubling, `NETIFD_RETRIES` in all (about 30 s); after that
/// only `ubus.object.add` brings it back.
const NETIFD_RETRY_FIRST: Duration = Duration::from_millis(250);
const NETIFD_RETRIES: u32 = 7;

/// What the event loop sends to the bus task.
#[derive(Debug)]
pub enum Out {
    /// A transition, as [`control::wan_event`] shapes it.
    Wan(Value),
    /// An HA role change, as [`control::ha_event`] shapes it.
    Ha(Value),
    /// A quota transition, as [`control::quota_event`] shapes it.
    Quota(Value),
    /// Ask netifd again about every WAN that follows it (after a reload, periodically).
    RefreshNetifd,
    /// Ask netifd again about one WAN.
    Refresh(String),
}

/// An update from netifd for the WAN named `interface` (`None`: netifd does not know it).
#[derive(Debug)]
pub struct NetifdUpdate {
    pub interface: String,
    pub info: Option<Netifd>,
}

/// The event loop's handle on the bus task.
pub struct Bus {
    out: Sender<Out>,
    /// Names of the WANs that follow netifd; the loop updates them on reload.
    pub netifd_interfaces: Rc<RefCell<Vec<String>>>,
}

impl Bus {
    /// Starts the bus task on `ex`. Calls go to `calls`, netifd facts to `netifd`.
    pub fn spawn(
        ex: &Rc<LocalExecutor<'static>>,
        socket: PathBuf,
        calls: Sender<Call>,
        netifd: Sender<NetifdUpdate>,
        netifd_interfaces: Vec<String>,
    ) -> Bus {
        let (out, out_rx) = channel::bounded(256);
        let names = Rc::new(RefCell::new(netifd_interfaces));
        let task = Task {
            ex: ex.clone(),
            socket,
            calls,
            netifd,
            names: names.clone(),
            asks: Rc::new(RefCell::new(Asks::default())),
        };
        ex.spawn_boxed(task.run(out_rx)).detach();
        Bus {
            out,
            netifd_interfaces: names,
        }
    }

    /// Queues a message for the bus; dropped when the bus is far behind.
    pub fn send(&self, m: Out) {
        if self.out.try_send(m).is_err() {
            log::debug!("ubus: outgoing queue full, message dropped");
        }
    }
}

struct Task {
    ex: Rc<LocalExecutor<'static>>,
    socket: PathBuf,
    calls: Sender<Call>,
    netifd: Sender<NetifdUpdate>,
    names: Rc<RefCell<Vec<String>>>,
    asks: Rc<RefCell<Asks>>,
}

/// Per netifd interface: the generation of the latest question (a newer one cancels
/// the retries of older ones), whether netifd ever answered, whether we warned.
#[derive(Default)]
struct Asks {
    generation: HashMap<String, u64>,
    answered: HashSet<String>,
    warned: HashSet<String>,
}

impl Asks {
    fn next(&mut self, name: &str) -> u64 {
        let g = self.generation.entry(name.to_string()).or_insert(0);
        *g += 1;
        *g
    }

    fn current(&self, name: &str, generation: u64) -> bool {
        self.generation.get(name) == Some(&generation)
    }
}

enum Step {
    In(Result<Incoming, crate::ubus::Error>),
    Out(Option<Out>),
}

/// Send `data` as the event `name` and as a notification of that name to the
/// subscribers of our object.
async fn announce(client: &Client, object: Option<u32>, name: &str, data: &Value) {
    if let Err(e) = client.send_event(name, data).await {
        log::debug!("ubus: cannot send {name}: {e}");
    }
    if let Some(id) = object {
        if let Err(e) = client.notify(id, name, data).await {
            log::debug!("ubus: cannot notify subscribers: {e}");
        }
    }
}

impl Task {
    async fn run(self, out_rx: Receiver<Out>) {
        let mut session = Session::new(&self.socket);
        session
            .object(OBJECT, control::methods())
            .listen(NETIFD_OBJECT)
            .listen("ubus.object.add")
            .listen("ubus.object.remove");
        loop {
            let conn = session.connect_with_backoff().await;
            log::info!(
                "ubus: object {OBJECT} registered on {}",
                self.socket.display()
            );
            // Transitions from while we were away are stale; status tells the present.
            while out_rx.try_recv().is_ok() {}
            let client = conn.client.clone();
            let object = conn.object_id(OBJECT);
            self.subscribe(&client);
            self.refresh_all(&client);
            loop {
                let step =
                    smol::future::or(async { Step::In(client.next_incoming().await) }, async {
                        Step::Out(out_rx.recv().await.ok())
                    })
                    .await;
                match step {
                    Step::In(Ok(incoming)) => self.incoming(&client, incoming),
                    Step::In(Err(e)) => {
                        log::warn!("ubus: {e}; reconnecting");
                        break;
                    }
                    Step::Out(None) => return,
                    Step::Out(Some(Out::RefreshNetifd)) => self.refresh_all(&client),
                    Step::Out(Some(Out::Refresh(name))) => self.refresh(&client, name),
                    Step::Out(Some(Out::Wan(data))) => {
                        announce(&client, object, WAN_EVENT, &data).await
                    }
                    Step::Out(Some(Out::Ha(data))) => {
                        announce(&client, object, HA_EVENT, &data).await
                    }
                    Step::Out(Some(Out::Quota(data))) => {
                        announce(&client, object, QUOTA_EVENT, &data).await
                    }
                }
            }
        }
    }

    fn incoming(&self, client: &Client, incoming: Incoming) {
        match incoming {
            Incoming::Invoke {
                method,
                args,
                request,
                ..
            } => {
                let calls = self.calls.clone();
                let client = client.clone();
                self.ex
                    .spawn_boxed(async move {
                        let result = Call::send(&calls, method, args).await;
                        let (status, data) = match result {
                            // Like netifd, no data message for methods that only act.
                            Ok(data) if data.as_object().is_some_and(|m| m.is_empty()) => {
                                (Status::Ok, None)
                            }
                            Ok(data) => (Status::Ok, Some(data)),
                            // The status code says little ("unknown error"): the reason
                            // goes along as data, which `ubus call` prints and uhttpd
                            // passes on to the page that called.
                            Err(e) => {
                                log::debug!("ubus: call refused: {}", e.message);
                                (e.status, Some(json!({ "error": e.message })))
                            }
                        };
                        if let Err(e) = client.reply(request, status, data.as_ref()).await {
                            log::debug!("ubus: cannot answer a call: {e}");
                        }
                    })
                    .detach();
            }
            Incoming::Event { id, data } if id == NETIFD_OBJECT => {
                let Some(name) = data.get("interface").and_then(Value::as_str) else {
                    return;
                };
                if self.follows(name) {
                    log::debug!("ubus: netifd event for {name}: {data}");
                    self.refresh(client, name.to_string());
                }
            }
            Incoming::Event { id, data } if id == "ubus.object.add" => {
                match data.get("path").and_then(Value::as_str) {
                    Some(NETIFD_OBJECT) => self.subscribe(client),
                    Some(path) => {
                        if let Some(name) = netifd_interface(path).filter(|n| self.follows(n)) {
                            log::debug!("ubus: {path} registered");
                            self.refresh(client, name.to_string());
                        }
                    }
                    None => {}
                }
            }
            Incoming::Event { id, data } if id == "ubus.object.remove" => {
                let path = data.get("path").and_then(Value::as_str).unwrap_or("");
                if let Some(name) = netifd_interface(path).filter(|n| self.follows(n)) {
                    // netifd removed the interface (or stopped): it is unknown from now.
                    log::info!("{name}: netifd removed {path}");
                    let mut asks = self.asks.borrow_mut();
                    asks.next(name);
                    asks.answered.remove(name);
                    let _ = self.netifd.try_send(NetifdUpdate {
                        interface: name.to_string(),
                        info: None,
                    });
                }
            }
            Incoming::Notification { kind, data } => {
                let Some(name) = data.get("interface").and_then(Value::as_str) else {
                    return;
                };
                if !kind.starts_with("interface.") || !self.follows(name) {
                    return;
                }
                // netifd's notifications carry the interface's full status.
                log::debug!("ubus: netifd {kind} for {name}");
                let mut asks = self.asks.borrow_mut();
                asks.next(name);
                asks.answered.insert(name.to_string());
                let _ = self.netifd.try_send(NetifdUpdate {
                    interface: name.to_string(),
                    info: Some(parse_netifd(&data)),
                });
            }
            Incoming::Event { .. } | Incoming::Subscribers { .. } => {}
        }
    }

    fn follows(&self, name: &str) -> bool {
        self.names.borrow().iter().any(|n| n == name)
    }

    /// Subscribes to netifd's `network.interface` object (again after it re-registered).
    fn subscribe(&self, client: &Client) {
        if self.names.borrow().is_empty() {
            return;
        }
        let client = client.clone();
        self.ex
            .spawn_boxed(async move {
                match client.lookup_id(NETIFD_OBJECT).await {
                    Ok(Some(id)) => match client.subscribe(id).await {
                        Ok(()) => log::debug!("ubus: subscribed to {NETIFD_OBJECT}"),
                        Err(e) => log::warn!("ubus: cannot subscribe to {NETIFD_OBJECT}: {e}"),
                    },
                    // Not there yet: its ubus.object.add will bring us back.
                    Ok(None) => log::debug!("ubus: {NETIFD_OBJECT} not registered yet"),
                    Err(e) => log::debug!("ubus: lookup of {NETIFD_OBJECT}: {e}"),
                }
            })
            .detach();
    }

    fn refresh_all(&self, client: &Client) {
        let names = self.names.borrow().clone();
        for name in names {
            self.refresh(client, name);
        }
    }

    /// Asks netifd for `network.interface.<name>` status, in a task of its own, with
    /// retries while the object is missing or does not answer. A newer question for the
    /// same interface cancels the retries.
    fn refresh(&self, client: &Client, name: String) {
        let client = client.clone();
        let tx = self.netifd.clone();
        let asks = self.asks.clone();
        let generation = asks.borrow_mut().next(&name);
        self.ex
            .spawn_boxed(async move {
                let path = format!("{NETIFD_OBJECT}.{name}");
                for attempt in 0..NETIFD_RETRIES {
                    Timer::after(retry_delay(attempt)).await;
                    if !asks.borrow().current(&name, generation) || client.closed().is_some() {
                        return;
                    }
                    let why = match ask_status(&client, &path).await {
                        Ok(info) => {
                            if !asks.borrow().current(&name, generation) {
                                return;
                            }
                            asks.borrow_mut().answered.insert(name.clone());
                            let _ = tx
                                .send(NetifdUpdate {
                                    interface: name,
                                    info: Some(info),
                                })
                                .await;
                            return;
                        }
                        Err(why) => why,
                    };
                    log::debug!("ubus: {path}: {why} (attempt {})", attempt + 1);
                }
                // Keep what netifd said last; ubus.object.add brings the object back.
                let mut asks = asks.borrow_mut();
                if !asks.answered.contains(&name) && asks.warned.insert(name.clone()) {
                    log::warn!(
                        "{name}: netifd does not know this interface ({path} missing): \
                         no device until it does"
                    );
                }
            })
            .detach();
    }
}

/// How long attempt `attempt` (0-based) of a netifd status query waits first: not at
/// all, then `NETIFD_RETRY_FIRST`, doubling.
fn retry_delay(attempt: u32) -> Duration {
    match attempt {
        0 => Duration::ZERO,
        n => NETIFD_RETRY_FIRST * (1 << (n - 1).min(16)),
    }
}

/// netifd's status of the interface at `path`; `Err` says why there is none.
async fn ask_status(client: &Client, path: &str) -> Result<Netifd, String> {
    let id = match client.lookup_id(path).await {
        Ok(Some(id)) => id,
        Ok(None) => return Err("not registered".into()),
        Err(e) => return Err(e.to_string()),
    };
    match client
        .invoke(id, "status", &json!({}), NETIFD_TIMEOUT)
        .await
    {
        Ok((Status::Ok, Some(v))) => Ok(parse_netifd(&v)),
        Ok((status, _)) => Err(format!("status: {status}")),
        Err(e) => Err(format!("status: {e}")),
    }
}

/// The interface name in a netifd object path `network.interface.<name>`.
fn netifd_interface(path: &str) -> Option<&str> {
    path.strip_prefix("network.interface.")
        .filter(|n| !n.is_empty())
}

/// The part of netifd's `network.interface.<name>` `status` reply uplinkd uses: `up`,
/// `l3_device` (reported only while up) and `device`, the default routes in `route` (target `0.0.0.0` or `::`,
/// mask 0): their `nexthop` is the gateway, the unspecified address means a
/// point-to-point route; and the delegated prefixes in `ipv6-prefix`.
/// Anything missing or malformed counts as unknown, never as an error.
pub fn parse_netifd(v: &Value) -> Netifd {
    let up = v.get("up").and_then(Value::as_bool).unwrap_or(false);
    let device_of = |k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .filter(|d| !d.is_empty())
            .filter(|d| {
                // The name goes into nft rules and socket options: refuse what could
                // break out of a quoted nft string or name another device.
                let ok = crate::config::is_device_name(d);
                if !ok {
                    log::warn!("netifd reports a device name uplinkd refuses: {d:?}; ignored");
                }
                ok
            })
            .map(str::to_string)
    };
    let list = |key: &str| {
        v.get(key)
            .and_then(Value::as_array)
            .map_or(&[][..], |a| a.as_slice())
    };
    let default_via = |any: IpAddr| {
        list("route")
            .iter()
            .find(|r| {
                r.get("target")
                    .and_then(Value::as_str)
                    .and_then(|s| s.parse::<IpAddr>().ok())
                    == Some(any)
                    && r.get("mask").and_then(Value::as_u64) == Some(0)
            })
            .map(|r| {
                r.get("nexthop")
                    .and_then(Value::as_str)
                    .and_then(|s| s.parse::<IpAddr>().ok())
                    .filter(|ip| !ip.is_unspecified())
            })
    };
    let prefixes6 = list("ipv6-prefix")
        .iter()
        .filter_map(|p| {
            let addr: IpAddr = p.get("address")?.as_str()?.parse().ok()?;
            let len = u8::try_from(p.get("mask")?.as_u64()?).ok()?;
            (addr.is_ipv6() && len <= 128).then_some(Prefix { addr, len })
        })
        .collect();
    Netifd {
        up,
        device: device_of("l3_device"),
        main_device: device_of("device"),
        gateway: default_via(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        gateway6: default_via(IpAddr::V6(Ipv6Addr::UNSPECIFIED)),
        prefixes6,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// After a ubusd restart netifd registers its objects again only at its next ubus
    /// reconnect, which it tries every 2 s (netifd `ubus.c`,
    /// `netifd_ubus_reconnect_timer`): a query that finds the object missing must still
    /// be retrying then, and go on a while after.
    #[test]
    fn netifd_retries_outlast_netifds_reconnect() {
        let schedule: Vec<Duration> = (0..NETIFD_RETRIES).map(retry_delay).collect();
        assert_eq!(
            schedule[0],
            Duration::ZERO,
            "the first question goes at once"
        );
        assert!(schedule.windows(2).all(|w| w[1] > w[0]), "{schedule:?}");
        let mut t = Duration::ZERO;
        let times: Vec<Duration> = schedule
            .iter()
            .map(|d| {
                t += *d;
                t
            })
            .collect();
        assert!(
            times
                .iter()
                .filter(|t| **t <= Duration::from_secs(2))
                .count()
                >= 3
        );
        assert!(times.iter().any(|t| *t > Duration::from_secs(2)));
        assert!(
            *times.last().unwrap() >= Duration::from_secs(10),
            "{times:?}"
        );
    }

    #[test]
    fn netifd_status_fields() {
        // Shaped like netifd's reply for a DHCP WAN (trimmed).
        let v = json!({
            "up": true, "pending": false, "available": true, "proto": "dhcp",
            "device": "eth1", "l3_device": "eth1",
            "ipv4-address": [{"address": "10.20.2.2", "mask": 24}],
            "route": [
                {"target": "10.99.0.0", "mask": 16, "nexthop": "10.20.2.9", "source": "0.0.0.0/0"},
                {"target": "0.0.0.0", "mask": 0, "nexthop": "10.20.2.1", "source": "10.20.2.2/32"}
            ]
        });
        assert_eq!(
            parse_netifd(&v),
            Netifd {
                up: true,
                device: Some("eth1".into()),
                main_device: Some("eth1".into()),
                gateway: Some(Some("10.20.2.1".parse().unwrap())),
                gateway6: None,
                prefixes6: Vec::new(),
            }
        );
        // DHCPv6 with a delegated prefix (wan6).
        let v = json!({"up": true, "l3_device": "eth1",
            "route": [{"target": "::", "mask": 0, "nexthop": "fe80::1", "source": "2001:db8:1::/48"}],
            "ipv6-prefix": [{"address": "2001:db8:1::", "mask": 48, "class": "wan6"},
                            {"address": "10.0.0.0", "mask": 8}, {"address": "2001:db8:2::", "mask": 200}]});
        let n = parse_netifd(&v);
        assert_eq!(n.gateway, None);
        assert_eq!(n.gateway6, Some(Some("fe80::1".parse().unwrap())));
        assert_eq!(
            n.prefixes6,
            vec![Prefix {
                addr: "2001:db8:1::".parse().unwrap(),
                len: 48
            }]
        );
        // PPP: the L3 device differs, the default route has no nexthop.
        let v = json!({"up": true, "device": "eth0.2", "l3_device": "pppoe-wan",
            "route": [{"target": "0.0.0.0", "mask": 0, "nexthop": "0.0.0.0"}]});
        let n = parse_netifd(&v);
        assert_eq!(n.device.as_deref(), Some("pppoe-wan"));
        assert_eq!(n.gateway, Some(None));
        // Down, no route, junk types: unknown, not an error.
        let v = json!({"up": "yes", "l3_device": 7, "route": {"target": 1}});
        assert_eq!(parse_netifd(&v), Netifd::default());
        // A name that would break out of an nft string is no device.
        for bad in ["wan\"drop#", "wan*", "eth0 x", "a\nb", "sixteen-bytes-xx"] {
            let v = json!({"up": true, "l3_device": bad});
            assert_eq!(parse_netifd(&v).device, None, "{bad:?}");
        }
    }
}
