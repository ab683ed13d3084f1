//! Probe sockets and sending, and the measurements the policies' modes need.

use super::*;
use crate::SpawnBoxed;

/// An open ICMP socket of one WAN and the task reading it.
pub(super) struct ProbeSocket {
    pub(super) device: String,
    pub(super) source: Option<IpAddr>,
    pub(super) mark: Option<u32>,
    pub(super) socket: Rc<IcmpSocket>,
    pub(super) _reader: smol::Task<()>,
}

impl Daemon {
    pub(super) fn send_probe(
        &mut self,
        wan: usize,
        method: TrackMethod,
        target: IpAddr,
        target_index: u8,
        seq: u16,
    ) {
        let iface = &self.engine.config().interfaces[wan];
        let state = &self.engine.wans()[wan];
        match method {
            TrackMethod::Gateway => {
                let name = iface.name.clone();
                let ifindex = state.link.map(|l| l.ifindex).unwrap_or_default();
                match self.sys.kernel.solicit(ifindex, target) {
                    Ok(()) => log::debug!("{name}: asked the kernel to resolve {target}"),
                    Err(e) => {
                        log::debug!("{name}: gateway probe failed: {e}");
                        self.engine.on_probe_error(wan, target_index, seq);
                        self.engine
                            .set_last_result(wan, target_index, Some(e.to_string()));
                    }
                }
            }
            TrackMethod::Ping => {
                let ident = state.ident;
                let name: Rc<str> = iface.name.as_str().into();
                let key = (name.clone(), kernel::Family::of(&target));
                let result = match self.sockets.get(&key) {
                    Some(s) => s.socket.send(target, ident, seq),
                    None => Err(std::io::Error::other("no probe socket")),
                };
                match result {
                    Ok(()) => log::debug!("{name}: echo request to {target} seq {seq}"),
                    Err(e) => {
                        log::debug!("{name}: echo request to {target} failed: {e}");
                        self.engine.on_probe_error(wan, target_index, seq);
                    }
                }
            }
            method => {
                let device = self.engine.device(wan).unwrap_or_default().to_string();
                let source = state.source_for(&target);
                let mark = self.wan_mark(wan);
                let timeout = iface.timeout;
                let tx = self.tx.clone();
                // What the probe sends, prepared here so the task owns plain data.
                let ask = match method {
                    TrackMethod::Http { .. } => {
                        let host = iface.request.track_host.clone();
                        let host = host.unwrap_or_else(|| probe::http::default_host(target));
                        probe::http::request(&iface.request.http_path, &host).into_bytes()
                    }
                    TrackMethod::Dns { qtype, .. } => {
                        let mut buf = [0u8; probe::dns::MAX_QUERY];
                        // The ID: the sequence number, unique among rounds in flight,
                        // hidden under this process's cookie.
                        let c = process_cookie().0;
                        let id = seq ^ u16::from_be_bytes([c[0], c[1]]);
                        let n = probe::dns::query(id, &iface.request.dns_query, qtype, &mut buf);
                        buf.get(..n).unwrap_or_default().to_vec()
                    }
                    _ => Vec::new(),
                };
                let body = iface.request.expect_body.clone();
                let wan: Rc<str> = iface.name.as_str().into();
                self.ex
                    .spawn_boxed(async move {
                        let connect = async {
                            match method {
                                TrackMethod::Http {
                                    port,
                                    expect_status,
                                } => {
                                    let expect = probe::http::Expect {
                                        status: expect_status,
                                        body: body.as_deref(),
                                    };
                                    let to = SocketAddr::new(target, port);
                                    let request = std::str::from_utf8(&ask).unwrap_or_default();
                                    http_get(&device, source, mark, to, request, &expect)
                                        .await
                                        .map(|()| None)
                                }
                                TrackMethod::Dns { port, .. } => {
                                    let to = SocketAddr::new(target, port);
                                    dns_ask(&device, source, mark, to, &ask)
                                        .await
                                        .map(|()| None)
                                }
                                TrackMethod::Tcp { port } => {
                                    let to = SocketAddr::new(target, port);
                                    tcp_connect(&device, source, mark, to)
                                        .await
                                        .map_err(|e| e.to_string())
                                }
                                TrackMethod::Ping | TrackMethod::Gateway => {
                                    Err("not a connection probe".into())
                                }
                            }
                        };
                        let result = smol::future::or(connect, async {
                            Timer::after(timeout).await;
                            Err("timed out".to_string())
                        })
                        .await;
                        let _ = tx
                            .send(Input::Tcp {
                                wan,
                                target,
                                target_index,
                                seq,
                                result,
                            })
                            .await;
                    })
                    .detach();
            }
        }
    }

    /// Open, re-open or close the per-WAN ICMP sockets (one per family the WAN's
    /// targets use) to match device and address.
    pub(super) fn sync_sockets(&mut self) {
        let cfg = self.engine.config();
        let marks = Marks::new(cfg.globals.fwmark_mask);
        type Wanted = (String, Option<IpAddr>, Option<u32>);
        let mut wanted: HashMap<(Rc<str>, kernel::Family), Wanted> = HashMap::new();
        for (i, (iface, wan)) in cfg.interfaces.iter().zip(self.engine.wans()).enumerate() {
            let Some(device) = self.engine.device(i) else {
                continue;
            };
            // Open while either kind that may probe is ping: standby comes and goes
            // with every round, the socket stays.
            let pings = iface.track_method == TrackMethod::Ping
                || iface.standby_method == Some(TrackMethod::Ping);
            if !pings || !wan.health.probing() {
                continue;
            }
            for target in &iface.track_ip {
                let family = kernel::Family::of(target);
                wanted.insert(
                    (iface.name.as_str().into(), family),
                    (
                        device.to_string(),
                        wan.source_for(target),
                        marks.wan(wan.slot),
                    ),
                );
            }
        }
        self.sockets.retain(|key, s| {
            wanted.get(key).is_some_and(|(dev, src, mark)| {
                *dev == s.device && *src == s.source && *mark == s.mark
            })
        });
        for (key, (device, source, mark)) in wanted {
            if self.sockets.contains_key(&key) {
                continue;
            }
            let (name, family) = key.clone();
            let opened = IcmpSocket::open(&device, source, family).and_then(|sock| {
                if let Some(m) = mark {
                    sock.set_mark(m)?;
                }
                Ok(sock)
            });
            match opened {
                Ok(sock) => {
                    self.socket_errors.borrow_mut().remove(&name);
                    let socket = Rc::new(sock);
                    let reader = {
                        let socket = socket.clone();
                        let tx = self.tx.clone();
                        let wan = name.clone();
                        let errors = self.socket_errors.clone();
                        self.ex.spawn_boxed(async move {
                            loop {
                                match socket.recv_stamped().await {
                                    Ok(r) => {
                                        let input = Input::Reply {
                                            wan: wan.clone(),
                                            reply: r.reply,
                                            received: r.at.map(wall_to_monotonic),
                                        };
                                        if tx.send(input).await.is_err() {
                                            return;
                                        }
                                    }
                                    Err(e) => {
                                        note_once(
                                            &errors,
                                            &wan,
                                            format!("{wan}: probe socket: {e}"),
                                        );
                                        Timer::after(Duration::from_millis(200)).await;
                                    }
                                }
                            }
                        })
                    };
                    self.sockets.insert(
                        key,
                        ProbeSocket {
                            device,
                            source,
                            mark,
                            socket,
                            _reader: reader,
                        },
                    );
                }
                Err(e) => note_once(&self.socket_errors, &name, format!("{e}")),
            }
        }
    }

    /// Measure what the policies' modes need (live connections per WAN mark, link byte
    /// counters), once a second and only while a policy's mode needs it. Both are small
    /// kernel reads: the conntrack events since the last sample (a mark-filtered dump
    /// seeds each count, again every minute), two sysfs counters.
    pub(super) fn sample(&mut self, now: Instant) {
        if now < self.sample_at {
            return;
        }
        self.sample_at = now + SAMPLE_INTERVAL;
        let mask = self.engine.config().globals.fwmark_mask;
        let wants = self.engine.sampling();
        if !wants.iter().any(|w| w.connections) {
            self.sys.conntrack.stop_counting();
        }
        for want in wants {
            let mut sample = crate::balance::Sample::default();
            if want.connections {
                if let Some(mark) = self.wan_mark(want.wan) {
                    match self.sys.conntrack.count(mark, mask, now) {
                        None => {}
                        Some(Ok(n)) => sample.connections = Some(n),
                        Some(Err(e)) => log::debug!("conntrack count for mark {mark:#x}: {e}"),
                    }
                }
            }
            if want.counters {
                if let Some((rx, tx)) = self.engine.device(want.wan).and_then(link_bytes) {
                    sample.rx_bytes = Some(rx);
                    sample.tx_bytes = Some(tx);
                    let ifindex = self.engine.device(want.wan).and_then(link_ifindex);
                    if let Some(ifindex) = ifindex {
                        self.engine.on_counters(want.wan, ifindex, rx, tx, now);
                    }
                }
            }
            self.engine.on_sample(want.wan, sample, now);
        }
        self.poll_quota(now);
    }
}
