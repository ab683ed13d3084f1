//! uplinkd: multi-WAN failover and load balancing for OpenWrt routers and Linux gateways.
//!
//! # Layers
//!
//! The daemon is a pure, clock-free core wrapped in a thin shell (see DESIGN.md):
//!
//! ```text
//!   config (UCI text -> Config)                         pure
//!   probe   scheduler: when to probe what, rounds       pure, time is an argument
//!   health  per-WAN hysteresis, quality, damping        pure, time is an argument
//!   plan    (Config, health, links) -> desired objects  pure
//!           and nft table; the engine emits the flushes
//!   reconcile (desired, kernel snapshot) -> ops         pure
//!   sync    when to dump, write, load nft, retry        pure, time is an argument
//!   ---------------------------------------------------------------------------
//!   sys     the kernel traits (sys::kernel) with live   the shell: all I/O
//!           and dry-run backends, probe sockets
//!   daemon  the single event loop: reads the clock, feeds the core, applies ops
//! ```
//!
//! Data flows one way: kernel events and probe replies enter the event loop, become
//! inputs to the core together with `now`; the core answers with probes to send, health
//! transitions to log, and a desired set of kernel objects; the reconciler diffs that set
//! against a fresh dump and the shell applies only the difference. The core also says
//! when it next needs to run (`poll_at`), the only reason the loop ever sleeps.

pub mod balance;
pub mod bus;
pub mod channel;
pub mod cli;
pub mod config;
pub mod control;
pub mod daemon;
pub mod dataplane;
pub mod engine;
pub mod health;
pub mod hooks;
pub mod http;
pub mod kernel;
pub mod metrics;
pub mod plan;
pub mod probe;
pub mod quota;
pub mod reconcile;
pub mod retry;
pub mod socket;
pub mod status;
pub mod sync;
pub mod sys;
pub mod time;
pub mod ubus;

#[cfg(test)]
pub(crate) mod testutil;

/// Spawning on the event loop's executor with the future boxed: the executor's task
/// code (run, wake, schedule, drop) is then compiled once for every task of the daemon
/// instead of once per future type, which is most of what a spawn costs in size.
pub trait SpawnBoxed {
    /// Like `LocalExecutor::spawn`, for a task that returns nothing.
    fn spawn_boxed(
        &self,
        future: impl std::future::Future<Output = ()> + 'static,
    ) -> smol::Task<()>;
}

impl SpawnBoxed for smol::LocalExecutor<'static> {
    fn spawn_boxed(
        &self,
        future: impl std::future::Future<Output = ()> + 'static,
    ) -> smol::Task<()> {
        let boxed: std::pin::Pin<Box<dyn std::future::Future<Output = ()>>> = Box::pin(future);
        self.spawn(boxed)
    }
}
