//! The front ends: hooks, the control socket, ubus and HTTP, and the calls they make.

use super::*;

impl Daemon {
    /// Hooks, the control socket and ubus. None of them is needed for routing: each
    /// logs why it is missing and the daemon runs on.
    pub(super) fn start_front_ends(&mut self) {
        match Hooks::start(self.opts.hooks.clone()) {
            Ok(h) => self.hooks = Some(h),
            Err(e) => log::error!("hooks: cannot start their thread: {e}"),
        }
        let (calls, calls_rx) = crate::channel::unbounded::<Call>();
        forward(&self.ex, calls_rx, self.tx.clone(), Input::Control);
        if let Some(path) = &self.opts.control_socket {
            match socket::Server::start(&self.ex, path, calls.clone()) {
                Ok(s) => self.control = Some(s),
                Err(e) => log::error!("control socket {}: {e}", path.display()),
            }
        }
        self.calls = Some(calls.clone());
        self.sync_http();
        let netifd: Vec<String> = self
            .engine
            .netifd_interfaces()
            .map(str::to_string)
            .collect();
        match &self.opts.ubus_socket {
            Some(path) => {
                let (netifd_tx, netifd_rx) = crate::channel::unbounded();
                forward(&self.ex, netifd_rx, self.tx.clone(), Input::Netifd);
                self.bus = Some(Bus::spawn(&self.ex, path.clone(), calls, netifd_tx, netifd));
            }
            None => {
                for name in netifd {
                    log::error!(
                        "{name}: no 'option device' and no ubus: its device can only come from netifd"
                    );
                }
            }
        }
    }

    /// Start, move or stop the HTTP listener as `http_listen` says.
    pub(super) fn sync_http(&mut self) {
        let globals = &self.engine.config().globals;
        let (want, hosts) = (globals.http_listen, globals.http_hosts.clone());
        if self.http.as_ref().map(|h| (h.addr, &h.hosts)) == want.map(|a| (a, &hosts)) {
            return;
        }
        self.http = None;
        let (Some(addr), Some(calls)) = (want, &self.calls) else {
            return;
        };
        match http::Server::start(&self.ex, addr, hosts, calls.clone()) {
            Ok(h) => {
                log::info!("http: serving /metrics, /status.json and / on {}", h.addr);
                self.http = Some(h);
            }
            Err(e) => log::error!("http: cannot listen on {addr}: {e}"),
        }
    }

    /// Carry out one control request (from ubus or the control socket).
    pub(super) fn control(
        &mut self,
        method: &str,
        args: &serde_json::Value,
        now: Instant,
    ) -> Result<serde_json::Value, control::Error> {
        let req = Request::parse(method, args)?;
        if req == Request::Reload {
            return self
                .reload(now)
                .map(|()| serde_json::json!({}))
                .map_err(|e| control::Error::new(crate::ubus::Status::UnknownError, e));
        }
        let (mut data, outs) = if let Request::Status { .. } = req {
            // Read only: the plan the loop computed for this state of the engine.
            self.planned();
            control::apply(&mut self.engine, self.planned.as_ref(), &req, now)?
        } else {
            let done = control::apply(&mut self.engine, None, &req, now);
            self.changed();
            done?
        };
        if let (Request::Status { interface: None }, Some(o)) = (&req, data.as_object_mut()) {
            o.insert("sync".into(), self.sync_report(now));
        }
        match &req {
            Request::SetWeight { interface, weight } => {
                log::info!("{interface}: weight set to {weight} at run time")
            }
            Request::Disable { interface } => log::info!("{interface}: drained at run time"),
            Request::Enable { interface } => log::info!("{interface}: enabled at run time"),
            _ => {}
        }
        self.handle(outs);
        Ok(data)
    }

    pub(super) fn reload(&mut self, now: Instant) -> Result<(), String> {
        let path = self.opts.config.clone();
        let cfg = match Config::load(&path) {
            Ok(c) => c,
            Err(errors) => {
                for e in &errors {
                    log::error!("{e}");
                }
                let msg = format!(
                    "reload of {} failed ({} errors): keeping the running configuration",
                    path.display(),
                    errors.len()
                );
                log::error!("{msg}");
                let first = errors.first().map(|e| format!(": {e}")).unwrap_or_default();
                return Err(format!("{msg}{first}"));
            }
        };
        logger::set_level(cfg.globals.log_level);
        let new_own = plan::ownership(&cfg);
        if new_own != self.own {
            // Table range, priorities or protocol moved: retire everything under the old
            // tags before the new ones take over.
            log::info!("ownership tags changed: removing objects created under the old ones");
            // Only our objects are wanted here.
            let reads = kernel::Reads::Devices(Vec::new());
            if let Ok(snap) = self.sys.kernel.snapshot(&self.own, &reads) {
                let ops = reconcile(&[], &snap.owned);
                self.apply(&ops, &snap);
            }
            self.own = new_own;
            self.applied = None;
        }
        let outs = self.engine.reload(cfg, now);
        self.handle(outs);
        self.changed();
        self.sync_http();
        self.schedule.kick(Kick::Now, now);
        if let Some(bus) = &self.bus {
            *bus.netifd_interfaces.borrow_mut() = self
                .engine
                .netifd_interfaces()
                .map(str::to_string)
                .collect();
            bus.send(bus::Out::RefreshNetifd);
        }
        log::info!("configuration reloaded from {}", path.display());
        Ok(())
    }
}
