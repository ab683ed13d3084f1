//! The event loop: the only place that reads the clock, sleeps, and talks to the kernel.
//!
//! Inputs (kernel events, probe replies, TCP probe results, signals) arrive on one
//! channel; each is handed to the [`Engine`] with `now`. After every input the loop runs
//! the engine's due work, executes its outputs (send probes, log transitions), and
//! reconciles the kernel whenever the desired state changed, a kernel event asks for a
//! resync, a periodic resync is due, or a failed write is to be retried.

use crate::SpawnBoxed;
use std::cell::RefCell;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::rc::Rc;

use crate::channel::{Receiver, Sender};
use smol::{LocalExecutor, Timer};

use crate::bus::{self, Bus, NetifdUpdate};
use crate::config::{Config, TrackMethod};
use crate::control::{self, Call, Request};
use crate::dataplane::{self, Ruleset};
use crate::engine::{Engine, Flush, Output};
use crate::hooks::{self, Hooks};
use crate::http;
use crate::kernel::{self, Event as KernelEvent, Object, Ownership, Snapshot};
use crate::plan::Marks;
use crate::plan::{self, Desired};
use crate::probe;
use crate::probe::icmp::EchoReply;
use crate::reconcile::{reconcile, Op};
use crate::socket;
use crate::sync::{Kick, Schedule};
use crate::sys::kernel::{Backend, Mode, HASH_POLICY};
use crate::sys::logger;
use crate::sys::netlink::{describe, EventFilter, Monitor, Netlink};
use crate::sys::nft::{link_bytes, link_ifindex};
use crate::sys::probe::{dns_ask, http_get, process_cookie, tcp_connect, IcmpSocket};
use crate::sys::signals::{Signal, Signals};
use crate::time::{earliest, Duration, Instant};

mod cleanup;
mod front;
mod probes;
mod quota;
mod sync;

use cleanup::remove_owned;
pub use cleanup::{cleanup, Removed};
use probes::ProbeSocket;

/// Command-line choices that shape the daemon.
#[derive(Clone, Debug)]
pub struct Options {
    pub config: PathBuf,
    /// Live, or dry run (`--dry-run`): read the kernel, write nothing, print commands.
    pub backend: Mode,
    /// The control socket (`--control-socket`); `None`: none.
    pub control_socket: Option<PathBuf>,
    /// ubusd's socket (`--ubus-socket`); `None`: do not use ubus.
    pub ubus_socket: Option<PathBuf>,
    /// Where the transition hooks are (`--hooks-dir`, `--user-hook`).
    pub hooks: hooks::Paths,
    /// The `nft` binary (`--nft`).
    pub nft: PathBuf,
}

impl Options {
    /// The defaults of the command line, for `config`.
    pub fn new(config: PathBuf) -> Options {
        Options {
            config,
            backend: Mode::Live,
            control_socket: Some(socket::default_path()),
            ubus_socket: Some(PathBuf::from(bus::DEFAULT_SOCKET)),
            hooks: hooks::Paths::default(),
            nft: PathBuf::from("nft"),
        }
    }
}

/// How often the policies' modes are measured.
const SAMPLE_INTERVAL: Duration = Duration::from_secs(1);
/// What `nft` may take at exit, in all: SIGTERM must be honoured within a second even
/// when nft hangs. What is left then is replaced by the next start.
const NFT_AT_EXIT: Duration = Duration::from_millis(600);
/// How long start-up waits for netifd to describe the WANs that follow it before
/// judging them without it.
const NETIFD_WAIT: Duration = Duration::from_secs(5);

/// How the daemon exits.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Exit {
    /// SIGTERM, what procd and systemd send for a restart: leave routes, rules, nexthops,
    /// the nft table and the hash-policy sysctl as they are. Forwarding goes on exactly as
    /// it was ("fail static", as routing daemons do for a graceful restart) and the next
    /// start adopts all of it (see DESIGN.md "Stop").
    Keep,
    /// SIGINT, what a stop sends: remove everything uplinkd owns.
    Remove,
}

enum Input {
    Kernel(Vec<KernelEvent>),
    Reply {
        wan: Rc<str>,
        reply: EchoReply,
        /// When the kernel received it, if it said.
        received: Option<std::time::Instant>,
    },
    /// The outcome of a tcp, http or dns probe (`Err`: why it failed).
    Tcp {
        wan: Rc<str>,
        target: IpAddr,
        target_index: u8,
        seq: u16,
        /// The handshake's RTT as the kernel measured it, when it has one.
        result: Result<Option<std::time::Duration>, String>,
    },
    Signal(Signal),
    /// A request from the control socket or ubus.
    Control(Call),
    /// What netifd says about a WAN that follows it.
    Netifd(NetifdUpdate),
    /// An `nft` load beside the loop finished.
    Nft {
        ruleset: Ruleset,
        result: Result<(), String>,
    },
}

/// A wall-clock time in the recent past (a kernel receive stamp) on the monotonic
/// clock: now minus its age. A stamp from the future, or older than any probe can wait
/// (the wall clock was stepped meanwhile), counts as now.
fn wall_to_monotonic(at: std::time::SystemTime) -> std::time::Instant {
    let age = std::time::SystemTime::now()
        .duration_since(at)
        .unwrap_or_default();
    let now = std::time::Instant::now();
    if age > Duration::from_secs(10) {
        return now;
    }
    now.checked_sub(age).unwrap_or(now)
}

/// Monotonic clock → core time.
struct Clock(std::time::Instant);

impl Clock {
    fn now(&self) -> Instant {
        Instant::from_micros(self.0.elapsed().as_micros() as u64)
    }

    fn of_std(&self, t: std::time::Instant) -> Instant {
        Instant::from_micros(t.saturating_duration_since(self.0).as_micros() as u64)
    }

    fn to_std(&self, t: Instant) -> std::time::Instant {
        self.0 + Duration::from_micros(t.micros())
    }
}

/// Run until SIGTERM/SIGINT. Returns the process exit code.
pub fn run(opts: Options, cfg: Config) -> i32 {
    quota::set_tz_from_openwrt();
    let ex = Rc::new(LocalExecutor::new());
    smol::block_on(ex.run(async {
        match Daemon::start(ex.clone(), opts, cfg) {
            Ok(d) => d.run().await,
            Err(e) => {
                log::error!("{e}");
                1
            }
        }
    }))
}

struct Daemon {
    ex: Rc<LocalExecutor<'static>>,
    opts: Options,
    clock: Clock,
    /// Netlink, nft, conntrack and sysctls: live or dry run.
    sys: Backend,
    own: Ownership,
    /// What the event monitor passes on: narrowed to our tags and the WAN devices
    /// after every snapshot.
    events: Rc<RefCell<EventFilter>>,
    engine: Engine,
    tx: Sender<Input>,
    rx: Receiver<Input>,
    /// Per WAN and family.
    sockets: HashMap<(Rc<str>, kernel::Family), ProbeSocket>,
    socket_errors: Rc<RefCell<HashMap<Rc<str>, String>>>,
    /// What was last reconciled, to notice when the plan changes.
    applied: Option<Desired>,
    /// The plan for the engine as it is now; `None`: to be computed (see `planned`).
    planned: Option<Desired>,
    nexthops_supported: bool,
    /// When to dump, write, load nft, check the table (pure, see `crate::sync`).
    schedule: Schedule,
    old_hash_policy: Option<String>,
    /// Kernel writes since start (reported in the log at exit, used by the benchmarks).
    writes: u64,
    bus: Option<Bus>,
    hooks: Option<Hooks>,
    /// Removes the socket file when dropped.
    control: Option<socket::Server>,
    /// The HTTP listener (`http_listen`), and the channel its requests come in on.
    http: Option<http::Server>,
    calls: Option<Sender<Call>>,
    /// The nft load running beside the loop (dropping it kills nft).
    nft_job: Option<smol::Task<()>>,
    /// The flowtables last seen (fw4's `flow_offloading`), to note changes once.
    flowtables: Option<Vec<crate::sys::nft::Flowtable>>,
    /// Marks of WANs whose pinned connections must be flushed after the next sync.
    pending_flush: Vec<(String, u32)>,
    /// When the policies' modes are next measured (every second while one needs it).
    sample_at: Instant,
}

impl Daemon {
    fn start(ex: Rc<LocalExecutor<'static>>, opts: Options, cfg: Config) -> Result<Self, String> {
        let clock = Clock(std::time::Instant::now());
        let own = plan::ownership(&cfg);
        let mut sys = Backend::open(opts.backend, &own, opts.nft.clone())?;
        let events = Rc::new(RefCell::new(EventFilter {
            own: Some(own.clone()),
            devices: None,
            echo_port: sys.port_id,
        }));
        // The devices the configuration names; WANs that follow netifd are read once it
        // has named theirs.
        let reads = kernel::Reads::Devices(
            cfg.interfaces
                .iter()
                .filter(|i| !i.follows_netifd() && !i.device.is_empty())
                .map(|i| i.device.clone())
                .collect(),
        );
        let snap = sys
            .kernel
            .snapshot(&own, &reads)
            .map_err(|e| format!("cannot read the kernel's state: {e}"))?;
        let now = clock.now();
        let ident_base = (std::process::id() as u16) ^ (clock.0.elapsed().subsec_nanos() as u16);
        let adopted = snap.owned.len();
        let mut engine = Engine::new(cfg, Some(&snap), ident_base, now);
        if !engine.quotas().is_empty() {
            let path = std::path::PathBuf::from(&engine.config().globals.quota_state);
            engine.restore_quota(quota::load(&path).as_ref());
        }
        if opts.ubus_socket.is_some() {
            // Judge, flush and announce nothing about WANs that follow netifd before it
            // has said which device they use.
            engine.wait_for_netifd(now + NETIFD_WAIT);
        }
        if adopted > 0 {
            log::info!("adopting {adopted} kernel objects left by a previous run");
        }
        let (tx, rx) = crate::channel::unbounded();
        let mut d = Daemon {
            ex,
            opts,
            clock,
            sys,
            own,
            events,
            engine,
            tx,
            rx,
            sockets: HashMap::new(),
            socket_errors: Rc::new(RefCell::new(HashMap::new())),
            applied: None,
            planned: None,
            nexthops_supported: snap.nexthops_supported,
            schedule: Schedule::new(now),
            old_hash_policy: None,
            writes: 0,
            bus: None,
            hooks: None,
            control: None,
            http: None,
            calls: None,
            nft_job: None,
            flowtables: None,
            pending_flush: Vec::new(),
            sample_at: now,
        };
        d.start_front_ends();
        let outs = d.engine.on_snapshot(&snap, now);
        d.handle(outs);
        d.set_hash_policy();
        d.spawn_monitor()?;
        d.spawn_signals()?;
        Ok(d)
    }

    fn spawn_monitor(&mut self) -> Result<(), String> {
        let mut monitor =
            Monitor::open().map_err(|e| format!("cannot open netlink events: {e}"))?;
        let filter = monitor.filter();
        *filter.borrow_mut() = self.events.borrow().clone();
        self.events = filter;
        let tx = self.tx.clone();
        self.ex
            .spawn_boxed(async move {
                loop {
                    let events = monitor.next().await;
                    if tx.send(Input::Kernel(events)).await.is_err() {
                        return;
                    }
                }
            })
            .detach();
        Ok(())
    }

    /// Events about devices the WANs do not use, or tags we no longer own, cannot
    /// change the next snapshot: let the monitor drop them.
    fn narrow_events(&self, reads: &kernel::Reads, snap: &Snapshot) {
        let devices = snap
            .links
            .iter()
            .filter(|l| reads.device(&snap.links, l.ifindex))
            .map(|l| l.ifindex)
            .collect();
        let mut filter = self.events.borrow_mut();
        filter.own = Some(self.own.clone());
        filter.devices = Some(devices);
    }

    fn spawn_signals(&self) -> Result<(), String> {
        let signals = Signals::open().map_err(|e| format!("cannot open signalfd: {e}"))?;
        let tx = self.tx.clone();
        self.ex
            .spawn_boxed(async move {
                while let Ok(s) = signals.next().await {
                    if tx.send(Input::Signal(s)).await.is_err() {
                        return;
                    }
                }
            })
            .detach();
        Ok(())
    }

    async fn run(mut self) -> i32 {
        log::info!(
            "uplinkd {} started: {} interfaces, default policy {}{}",
            env!("CARGO_PKG_VERSION"),
            self.engine.config().interfaces.len(),
            self.engine.config().globals.default_policy,
            self.sys.label
        );
        loop {
            // Every turn lets the other tasks run (probe sockets, control, HTTP,
            // signals), however much work is overdue.
            smol::future::yield_now().await;
            let now = self.clock.now();
            if self.schedule.hold_expired(now) {
                log::warn!("nft: the load is slow: routes are written without waiting for it");
            }
            self.sample(now);
            let outs = self.engine.poll(now);
            self.handle(outs);
            self.changed();
            self.sync_sockets();
            self.check_nft(now);
            if self.sync_due(now) {
                self.sync_kernel(now);
            }
            // A retry of a failed load (sync_kernel starts the others).
            self.start_nft(now);
            // While start-up waits for netifd the kernel is not synced (see `sync_due`):
            // its timers must not wake the loop, or it would spin and starve ubus.
            let waiting = self.engine.waiting_for_netifd();
            let wake = [
                self.engine.poll_at(),
                self.schedule.poll_at(waiting, self.sys.nft.checks()),
                (!self.engine.sampling().is_empty()).then_some(self.sample_at),
            ]
            .into_iter()
            .fold(None, earliest);
            let input = match wake {
                Some(t) if t <= self.clock.now() => self.rx.try_recv().ok(),
                Some(t) => {
                    let timer = Timer::at(self.clock.to_std(t));
                    smol::future::or(async { self.rx.recv().await.ok() }, async {
                        timer.await;
                        None
                    })
                    .await
                }
                None => self.rx.recv().await.ok(),
            };
            if let Some(input) = input {
                if let Some(exit) = self.input(input) {
                    return self.exit(exit).await;
                }
                // Drain what else is queued before doing the work once.
                while let Ok(more) = self.rx.try_recv() {
                    if let Some(exit) = self.input(more) {
                        return self.exit(exit).await;
                    }
                }
            }
        }
    }

    /// Handle one input; `Some` when the daemon is to exit, and how.
    fn input(&mut self, input: Input) -> Option<Exit> {
        let now = self.clock.now();
        match input {
            Input::Kernel(events) => {
                for ev in events {
                    match ev {
                        KernelEvent::Link(link) => {
                            let outs = self.engine.on_link(&link, now);
                            self.handle(outs);
                            self.schedule.kick(Kick::Soon, now);
                        }
                        KernelEvent::LinkGone { ifindex } => {
                            let outs = self.engine.on_link_gone(ifindex, now);
                            self.handle(outs);
                            self.schedule.kick(Kick::Now, now);
                        }
                        KernelEvent::NeighbourFailed { ifindex, addr } => {
                            let outs = self.engine.on_neighbour_failed(ifindex, addr, now);
                            self.handle(outs);
                        }
                        KernelEvent::NeighbourReachable { ifindex, addr } => {
                            if self.engine.on_neighbour_reachable(ifindex, addr, now) {
                                log::debug!("gateway {addr} on if{ifindex} confirmed");
                            }
                        }
                        KernelEvent::Changed => {
                            self.schedule.kick(Kick::Soon, now);
                        }
                        KernelEvent::Overrun => {
                            log::warn!("netlink event socket overflowed: resynchronising");
                            self.schedule.kick(Kick::Now, now);
                        }
                    }
                }
            }
            Input::Reply {
                wan,
                reply,
                received,
            } => {
                if let Some(i) = self.engine.wan_index(&wan) {
                    // The kernel's receive time: the wait for the loop is not RTT.
                    let at = received.map_or(now, |r| self.clock.of_std(r).min(now));
                    let counted = self
                        .engine
                        .on_reply(i, reply.from, reply.ident, reply.seq, at);
                    log::debug!(
                        "{wan}: echo reply from {} seq {}{}",
                        reply.from,
                        reply.seq,
                        if counted { "" } else { " (not ours, ignored)" }
                    );
                }
            }
            Input::Tcp {
                wan,
                target,
                target_index,
                seq,
                result,
            } => {
                if let Some(i) = self.engine.wan_index(&wan) {
                    let method = self.engine.wans()[i].method.name();
                    match &result {
                        Ok(rtt) => {
                            self.engine.on_tcp_answer(i, target, seq, *rtt, now);
                            match rtt {
                                Some(rtt) => log::debug!(
                                    "{wan}: {method} probe to {target} answered in {} us",
                                    rtt.as_micros()
                                ),
                                None => log::debug!("{wan}: {method} probe to {target} answered"),
                            }
                        }
                        Err(e) => {
                            self.engine.on_probe_error(i, target_index, seq);
                            log::debug!("{wan}: {method} probe to {target} failed: {e}");
                        }
                    }
                    self.engine.set_last_result(i, target_index, result.err());
                }
            }
            Input::Signal(Signal::Reload) => {
                let _ = self.reload(now);
            }
            Input::Signal(Signal::Terminate) => return Some(Exit::Keep),
            Input::Signal(Signal::Stop) => return Some(Exit::Remove),
            Input::Control(call) => {
                let result = self.control(&call.method, &call.args, now);
                let _ = call.reply.try_send(result);
                // `control` says itself when the engine changed.
                return None;
            }
            Input::Netifd(update) => {
                if let Some(i) = self.engine.wan_index(&update.interface) {
                    log::debug!(
                        "{}: netifd says {}",
                        update.interface,
                        describe_netifd(update.info.as_ref())
                    );
                    let (changed, outs) = self.engine.on_netifd(i, update.info, now);
                    self.handle(outs);
                    if changed {
                        self.schedule.kick(Kick::Now, now);
                    }
                }
            }
            Input::Nft { ruleset, result } => self.nft_done(ruleset, result, now),
        }
        self.changed();
        None
    }

    /// Act on the engine's outputs.
    fn handle(&mut self, outs: Vec<Output>) {
        for out in outs {
            match out {
                Output::Probe {
                    wan,
                    method,
                    target,
                    target_index,
                    seq,
                } => self.send_probe(wan, method, target, target_index, seq),
                Output::Transition { wan, event } => {
                    let iface = &self.engine.config().interfaces[wan];
                    let name = iface.name.clone();
                    let was = match event.reason {
                        crate::health::Reason::Start => String::new(),
                        _ => format!(" (was {})", event.from.as_str()),
                    };
                    log::info!(
                        "{} {}{was}: {}",
                        iface.name,
                        describe_state(&event.to, &self.clock),
                        event.reason
                    );
                    if let Some(bus) = &self.bus {
                        bus.send(bus::Out::Wan(control::wan_event(&name, &event)));
                    }
                    if let Some(hooks) = &self.hooks {
                        let w = &self.engine.wans()[wan];
                        hooks.transition(hooks::Transition {
                            interface: name.clone(),
                            device: self.engine.device(wan).map(str::to_string),
                            gateway: w.v4.gateway.flatten().map(|g| g.to_string()),
                            gateway6: w.v6.gateway.flatten().map(|g| g.to_string()),
                            state: event.to,
                            previous: event.from,
                            reason: event.reason.to_string(),
                        });
                    }
                }
                Output::Gateway {
                    wan,
                    family,
                    from,
                    to,
                } => {
                    let name = &self.engine.config().interfaces[wan].name;
                    let v = if family == kernel::Family::V6 {
                        "6"
                    } else {
                        ""
                    };
                    log::info!(
                        "{name} gateway{v} {} -> {}",
                        describe_gateway(from),
                        describe_gateway(to)
                    );
                }
                Output::Role { from, to } => {
                    let was = from.map_or("none", |r| r.as_str());
                    log::info!("HA role {} (was {was})", to.as_str());
                    if let Some(bus) = &self.bus {
                        bus.send(bus::Out::Ha(control::ha_event(from, to)));
                    }
                }
                Output::Flush { wan, mark, why } => {
                    let name = self.engine.config().interfaces[wan].name.clone();
                    if why == Flush::Takeover {
                        log::info!("{name}: out on this router: flushing its pinned connections");
                    }
                    self.pending_flush.push((name, mark));
                }
                Output::Moved { wan, from, to } => {
                    let name = self.engine.config().interfaces[wan].name.clone();
                    log::warn!(
                        "{name} moved from slot {from} to {to}: its pinned connections are \
                         flushed (pin slots with option slot to keep them across such edits)"
                    );
                }
                Output::Quota(event) => self.quota_event(event),
                Output::AskNetifd { wan } => {
                    let name = self.engine.config().interfaces[wan].name.clone();
                    log::debug!("{name}: the kernel's default route differs from netifd's");
                    if let Some(bus) = &self.bus {
                        bus.send(bus::Out::Refresh(name));
                    }
                }
            }
        }
    }

    /// Exit as `how` says and return the exit code.
    async fn exit(&mut self, how: Exit) -> i32 {
        // A load still running is killed: nft commits a file as one transaction, so the
        // table stays as it was before it, and the next start (or the removal below)
        // takes it from there.
        self.nft_job = None;
        // The counts since the last save (SIGTERM and SIGINT alike).
        self.save_quota();
        if how == Exit::Keep {
            log::info!(
                "stopping: routes, rules and the nft table stay for the next start \
                 ('uplinkd cleanup' or SIGINT removes them)"
            );
            // Per-flow hashing stays on too: the kept multipath routes rely on it. Its
            // old value goes with this process: the next start sees 1.
            self.control = None;
            log::info!("stopped after {} kernel writes", self.writes);
            return 0;
        }
        log::info!("stopping: removing uplinkd's kernel objects");
        let removed =
            remove_owned(self.sys.kernel.as_mut(), &self.own, self.sys.nft.as_mut()).await;
        self.writes += removed.writes;
        if let Some(old) = self.old_hash_policy.take() {
            if let Err(e) = self.sys.sysctl.write(HASH_POLICY, &old) {
                log::warn!("cannot restore /proc/sys/{HASH_POLICY} to {old}: {e}");
            }
        }
        self.control = None;
        log::info!("stopped after {} kernel writes", self.writes);
        removed.code
    }
}

/// Forwards everything from `rx` into the event loop's channel, wrapped by `wrap`.
fn forward<T: 'static>(
    ex: &LocalExecutor<'static>,
    rx: Receiver<T>,
    tx: Sender<Input>,
    wrap: fn(T) -> Input,
) {
    ex.spawn_boxed(async move {
        while let Ok(v) = rx.recv().await {
            if tx.send(wrap(v)).await.is_err() {
                return;
            }
        }
    })
    .detach();
}

/// Log a repeating error only when it changes.
fn note_once(errors: &RefCell<HashMap<Rc<str>, String>>, wan: &Rc<str>, msg: String) {
    let mut errors = errors.borrow_mut();
    if errors.get(wan) != Some(&msg) {
        log::warn!("{msg}");
        errors.insert(wan.clone(), msg);
    }
}

fn describe_state(state: &crate::health::State, clock: &Clock) -> String {
    match state {
        crate::health::State::Held { until } => {
            let left = until.saturating_since(clock.now());
            format!("held down for {} s", left.as_secs())
        }
        s => s.as_str().to_string(),
    }
}

/// What flow offloading means for pinning, said once per change of the flowtables.
fn note_flowtables(found: &[crate::sys::nft::Flowtable]) {
    for ft in found {
        if ft.hardware {
            log::warn!(
                "flowtable {} in table {} offloads in hardware: offloaded connections keep their WAN \
                 and leave it only when uplinkd deletes their conntrack entry (failover); \
                 hardware offload is not tested with uplinkd",
                ft.name,
                ft.table
            );
        } else {
            log::info!(
                "flowtable {} in table {}: offloaded connections keep the WAN they were pinned to; \
                 a failover's conntrack flush ends their offload",
                ft.name,
                ft.table
            );
        }
    }
}

fn describe_gateway(g: Option<Option<IpAddr>>) -> String {
    match g {
        None => "none".into(),
        Some(None) => "point-to-point".into(),
        Some(Some(a)) => a.to_string(),
    }
}

/// What netifd reported, for the debug log.
fn describe_netifd(info: Option<&crate::engine::Netifd>) -> String {
    let Some(n) = info else {
        return "the interface is gone".into();
    };
    format!(
        "{}, device {}, main device {}, gateway {}, IPv6 gateway {}, {} delegated prefixes",
        if n.up { "up" } else { "down" },
        n.device.as_deref().unwrap_or("none"),
        n.main_device.as_deref().unwrap_or("none"),
        describe_gateway(n.gateway),
        describe_gateway(n.gateway6),
        n.prefixes6.len()
    )
}

fn describe_policy(p: &plan::PolicyPlan) -> String {
    if let Some(lr) = p.last_resort {
        return format!(
            "no usable member, last resort {}",
            crate::status::last_resort_name(lr)
        );
    }
    let describe = |m: &plan::Members| {
        let total: u32 = m.active.iter().map(|(_, w)| u32::from(*w)).sum();
        let members: Vec<String> = m
            .active
            .iter()
            .map(|(n, w)| format!("{n} {}%", u32::from(*w) * 100 / total.max(1)))
            .collect();
        let degraded = if m.degraded_only {
            " (degraded members only)"
        } else {
            ""
        };
        format!("{}{degraded}", members.join(", "))
    };
    match (p.v4.active.is_empty(), p.v6.active.is_empty()) {
        (false, true) => describe(&p.v4),
        (true, false) => format!("IPv6 {}", describe(&p.v6)),
        _ if p.v4 == p.v6 => describe(&p.v4),
        _ => format!("IPv4 {}; IPv6 {}", describe(&p.v4), describe(&p.v6)),
    }
}
