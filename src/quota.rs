//! Metered WANs: data caps counted from the link's byte counters. Pure: the daemon reads
//! the counters (and the wall clock, which periods need) and hands them in with `now`;
//! [`Meters`] answers with edge-triggered [`Event`]s (warning, exceeded, reset) and says
//! which WANs are spent. A spent WAN is last-resort-only: the plan uses it for new flows
//! only when no other member of a policy is usable (see `plan::choose_members`), and
//! connections pinned to it keep running.
//!
//! ```text
//!   counters (ifindex, rx, tx) ──► Meter.used ──► Level: Normal ─warn─► Warned ─quota─► Exceeded
//!   wall clock ──► Period [start, end) ──── end passed / `quota reset` ──► Normal, used = 0
//! ```
//!
//! Counting: the difference between two samples of the same device. A device that changed
//! (another ifindex: a PPP reconnect, a USB modem re-enumerated) counts everything its
//! counters show, as they started at zero after the previous sample. A counter that went
//! down on the same device is a 32-bit counter that wrapped when the wrapped difference
//! is plausible (see `plausible_wrap`), else counters that were reset: then what they
//! show now is new. Nothing ever counts negative.
//!
//! Periods are computed on the local civil time the router has ([`Wall`]): the shell
//! passes the UTC time and the current UTC offset; a boundary is a local date and time
//! converted with the offset in force now (across a DST change a boundary may be off by
//! the DST shift until the next one).

use std::collections::HashMap;

use serde_json::{Map, Value};

use crate::time::{Duration, Instant};

/// Default `quota_warn`, percent.
pub const DEFAULT_WARN: u8 = 80;
/// Default `quota_save_interval`.
pub const DEFAULT_SAVE_INTERVAL: Duration = Duration::from_secs(3600);
/// Default `quota_state`.
pub const DEFAULT_STATE: &str = "/etc/uplinkd/quota.json";
/// The fastest link a counter could be behind, bytes/s (100 Gbit/s): bounds what a
/// 32-bit wrap may have carried.
const MAX_RATE: u64 = 12_500_000_000;
/// Version of the state file's layout.
const STATE_VERSION: u32 = 1;

/// How the quota's period repeats.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Period {
    /// On `day` of every month (1..=31; a shorter month resets on its last day).
    Monthly {
        day: u8,
    },
    /// On `weekday` (0 = Monday .. 6 = Sunday).
    Weekly {
        weekday: u8,
    },
    Daily,
}

/// Which direction counts.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Direction {
    Both,
    Down,
    Up,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Both => "both",
            Direction::Down => "down",
            Direction::Up => "up",
        }
    }
}

/// One WAN's data cap, as configured.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Quota {
    /// Bytes allowed per period.
    pub bytes: u64,
    pub period: Period,
    /// Local time of day the period starts, minutes after midnight.
    pub reset_minute: u16,
    pub direction: Direction,
    /// Percent of `bytes` at which a warning is emitted (1..=100).
    pub warn: u8,
    /// Longest time a count stays unsaved (flash wear).
    pub save_interval: Duration,
}

#[cfg(test)]
impl Quota {
    /// A quota with the defaults: reset at midnight, both directions, warning at 80 %.
    pub fn for_tests(bytes: u64, period: Period) -> Quota {
        Quota {
            bytes,
            period,
            reset_minute: 0,
            direction: Direction::Both,
            warn: 80,
            save_interval: DEFAULT_SAVE_INTERVAL,
        }
    }
}

/// The wall clock as the router sees it: UTC seconds and the local offset (east of UTC).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Wall {
    pub unix: i64,
    pub offset: i32,
}

impl Wall {
    pub fn utc(unix: i64) -> Wall {
        Wall { unix, offset: 0 }
    }
}

/// A period, in UTC seconds: `start <= t < end`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Span {
    pub start: i64,
    pub end: i64,
}

/// Where a WAN is within its quota. Warned and Exceeded are reported once each per period.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum Level {
    #[default]
    Normal,
    Warned,
    Exceeded,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Normal => "normal",
            Level::Warned => "warned",
            Level::Exceeded => "exceeded",
        }
    }

    fn from_name(name: &str) -> Option<Level> {
        [Level::Normal, Level::Warned, Level::Exceeded]
            .into_iter()
            .find(|l| l.as_str() == name)
    }
}

/// Why a count went back to zero.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ResetReason {
    /// The period ended.
    Period,
    /// `uplinkd quota reset`, the ubus method.
    Manual,
}

/// A quota transition, once per crossing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Warning {
        wan: String,
        used: u64,
        quota: u64,
    },
    Exceeded {
        wan: String,
        used: u64,
        quota: u64,
    },
    Reset {
        wan: String,
        reason: ResetReason,
        used: u64,
    },
}

impl Event {
    pub fn wan(&self) -> &str {
        match self {
            Event::Warning { wan, .. } | Event::Exceeded { wan, .. } | Event::Reset { wan, .. } => {
                wan
            }
        }
    }

    /// The hook's `ACTION` and the ubus event's suffix.
    pub fn action(&self) -> &'static str {
        match self {
            Event::Warning { .. } => "quota_warning",
            Event::Exceeded { .. } => "quota_exceeded",
            Event::Reset { .. } => "quota_reset",
        }
    }
}

/// A device's counters at the last sample.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
struct Base {
    ifindex: u32,
    rx: u64,
    tx: u64,
    at: Instant,
}

/// One metered WAN's count.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Meter {
    /// Bytes received and sent this period.
    pub rx: u64,
    pub tx: u64,
    pub level: Level,
    /// The period counted; `None` until the wall clock is known.
    pub span: Option<Span>,
    base: Option<Base>,
}

impl Meter {
    /// The bytes that count against `q`.
    pub fn used(&self, q: &Quota) -> u64 {
        match q.direction {
            Direction::Both => self.rx.saturating_add(self.tx),
            Direction::Down => self.rx,
            Direction::Up => self.tx,
        }
    }
}

/// What the state file holds per WAN.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Saved {
    pub rx: u64,
    pub tx: u64,
    pub level: Level,
    pub start: i64,
    pub end: i64,
}

/// The state file: `{"version":1,"wans":{"wan2":{...}}}`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StateFile {
    pub version: u32,
    pub wans: std::collections::BTreeMap<String, Saved>,
}

impl StateFile {
    /// Parse a state file; the error says what is wrong with it. Read through
    /// `serde_json::Value` (which the control socket links anyway) rather than derived
    /// deserialisers, which cost the router binary several kB each.
    pub fn parse(text: &str) -> Result<StateFile, String> {
        let v: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let top = v.as_object().ok_or("not a JSON object")?;
        let version = top
            .get("version")
            .and_then(Value::as_u64)
            .ok_or("no \"version\" number")?;
        if version != u64::from(STATE_VERSION) {
            return Err(format!(
                "version {version} (this uplinkd reads {STATE_VERSION})"
            ));
        }
        let wans = top
            .get("wans")
            .and_then(Value::as_object)
            .ok_or("no \"wans\" object")?;
        let mut f = StateFile {
            version: STATE_VERSION,
            wans: Default::default(),
        };
        for (name, w) in wans {
            let w = w
                .as_object()
                .ok_or_else(|| format!("wans.{name}: not an object"))?;
            let num = |key: &str| w.get(key).and_then(Value::as_u64);
            let int = |key: &str| w.get(key).and_then(Value::as_i64);
            let bad = |key: &str| format!("wans.{name}.{key}: missing or not a number");
            let saved = Saved {
                rx: num("rx").ok_or_else(|| bad("rx"))?,
                tx: num("tx").ok_or_else(|| bad("tx"))?,
                level: w
                    .get("level")
                    .and_then(Value::as_str)
                    .and_then(Level::from_name)
                    .ok_or_else(|| format!("wans.{name}.level: not normal, warned or exceeded"))?,
                start: int("start").ok_or_else(|| bad("start"))?,
                end: int("end").ok_or_else(|| bad("end"))?,
            };
            f.wans.insert(name.clone(), saved);
        }
        Ok(f)
    }

    pub fn to_json(&self) -> String {
        let wans: Map<String, Value> = self
            .wans
            .iter()
            .map(|(name, s)| {
                let w = serde_json::json!({
                    "rx": s.rx,
                    "tx": s.tx,
                    "level": s.level.as_str(),
                    "start": s.start,
                    "end": s.end,
                });
                (name.clone(), w)
            })
            .collect();
        serde_json::json!({"version": self.version, "wans": wans}).to_string()
    }
}

/// Every metered WAN's meter, by WAN name.
#[derive(Clone, Debug, Default)]
pub struct Meters {
    meters: HashMap<String, Meter>,
    /// Counts changed since the last save, and since when.
    dirty_since: Option<Instant>,
    /// Save as soon as possible (a reset, a level change).
    save_now: bool,
}

/// Whether a counter that went from `old` to `new` (lower) within `dt` on the same device
/// is a 32-bit counter that wrapped: `old` fits in 32 bits and the wrapped difference is
/// within what the fastest link carries in `dt` (at least one second's worth).
fn plausible_wrap(old: u64, new: u64, dt: Duration) -> Option<u64> {
    if old > u64::from(u32::MAX) || new > old {
        return None;
    }
    let wrapped = (1u64 << 32) - old + new;
    let secs = dt.as_secs().max(1);
    (wrapped <= MAX_RATE.saturating_mul(secs) && old >= 1 << 31).then_some(wrapped)
}

/// Bytes between two samples of a counter (see the module doc).
fn delta(old: u64, new: u64, same_device: bool, dt: Duration) -> u64 {
    if !same_device {
        return new;
    }
    if new >= old {
        return new - old;
    }
    plausible_wrap(old, new, dt).unwrap_or(new)
}

impl Meters {
    /// Start from a state file (or nothing): counts of a period that has not ended are
    /// kept; the others are reset when [`Meters::poll`] first sees the wall clock.
    pub fn restore(saved: Option<&StateFile>, quotas: &[(String, Quota)]) -> Meters {
        let mut m = Meters::default();
        for (name, _) in quotas {
            let meter = match saved.and_then(|s| s.wans.get(name)) {
                Some(s) => Meter {
                    rx: s.rx,
                    tx: s.tx,
                    level: s.level,
                    span: Some(Span {
                        start: s.start,
                        end: s.end,
                    }),
                    base: None,
                },
                None => Meter::default(),
            };
            m.meters.insert(name.clone(), meter);
        }
        m
    }

    /// A new configuration: WANs that stay metered keep their count (a changed period
    /// shows at the next poll as a new span), new ones start at zero, others are dropped.
    pub fn reconfigure(&mut self, quotas: &[(String, Quota)]) {
        self.meters
            .retain(|n, _| quotas.iter().any(|(q, _)| q == n));
        for (name, _) in quotas {
            self.meters.entry(name.clone()).or_default();
        }
    }

    pub fn get(&self, wan: &str) -> Option<&Meter> {
        self.meters.get(wan)
    }

    /// Whether `wan` has spent its quota (last resort only).
    pub fn exceeded(&self, wan: &str) -> bool {
        self.meters
            .get(wan)
            .is_some_and(|m| m.level == Level::Exceeded)
    }

    /// A sample of a WAN's device counters; `ifindex` tells a re-created device.
    pub fn on_counters(&mut self, wan: &str, ifindex: u32, rx: u64, tx: u64, now: Instant) {
        let Some(m) = self.meters.get_mut(wan) else {
            return;
        };
        if let Some(b) = m.base {
            let same = b.ifindex == ifindex;
            let dt = now.saturating_since(b.at);
            let (drx, dtx) = (delta(b.rx, rx, same, dt), delta(b.tx, tx, same, dt));
            if drx > 0 || dtx > 0 {
                m.rx = m.rx.saturating_add(drx);
                m.tx = m.tx.saturating_add(dtx);
                self.dirty_since.get_or_insert(now);
            }
        }
        m.base = Some(Base {
            ifindex,
            rx,
            tx,
            at: now,
        });
    }

    /// Bring periods and levels up to date. Returns the transitions, in order.
    pub fn poll(&mut self, quotas: &[(String, Quota)], wall: Wall) -> Vec<Event> {
        let mut out = Vec::new();
        for (name, q) in quotas {
            let Some(m) = self.meters.get_mut(name) else {
                continue;
            };
            let span = period(q, wall);
            match m.span {
                None => m.span = Some(span),
                Some(s) if s != span => {
                    // The period ended (or the configuration moved it): start over.
                    let used = m.used(q);
                    m.rx = 0;
                    m.tx = 0;
                    m.level = Level::Normal;
                    m.span = Some(span);
                    self.save_now = true;
                    out.push(Event::Reset {
                        wan: name.clone(),
                        reason: ResetReason::Period,
                        used,
                    });
                }
                Some(_) => {}
            }
            let used = m.used(q);
            let warn_at =
                u64::try_from(u128::from(q.bytes) * u128::from(q.warn) / 100).unwrap_or(u64::MAX);
            if m.level == Level::Normal && used >= warn_at {
                m.level = Level::Warned;
                self.save_now = true;
                out.push(Event::Warning {
                    wan: name.clone(),
                    used,
                    quota: q.bytes,
                });
            }
            if m.level == Level::Warned && used >= q.bytes {
                m.level = Level::Exceeded;
                self.save_now = true;
                out.push(Event::Exceeded {
                    wan: name.clone(),
                    used,
                    quota: q.bytes,
                });
            }
        }
        out
    }

    /// Reset a WAN's count by hand. `None` when it is not metered.
    pub fn reset(&mut self, wan: &str, q: &Quota) -> Option<Event> {
        let m = self.meters.get_mut(wan)?;
        let used = m.used(q);
        m.rx = 0;
        m.tx = 0;
        m.level = Level::Normal;
        self.save_now = true;
        Some(Event::Reset {
            wan: wan.to_string(),
            reason: ResetReason::Manual,
            used,
        })
    }

    /// Whether the state should be written now: after a reset or level change at once,
    /// else once a count has been unsaved for `interval`.
    pub fn save_due(&self, interval: Duration, now: Instant) -> bool {
        self.save_now
            || self
                .dirty_since
                .is_some_and(|t| now.saturating_since(t) >= interval)
    }

    /// When a save is next due, if anything is unsaved.
    pub fn save_at(&self, interval: Duration) -> Option<Instant> {
        self.dirty_since.map(|t| t + interval)
    }

    /// Whether anything is unsaved (a clean exit writes it).
    pub fn dirty(&self) -> bool {
        self.save_now || self.dirty_since.is_some()
    }

    /// The state to write; marks everything saved.
    pub fn save(&mut self) -> StateFile {
        self.save_now = false;
        self.dirty_since = None;
        StateFile {
            version: STATE_VERSION,
            wans: self
                .meters
                .iter()
                .filter_map(|(n, m)| {
                    let s = m.span?;
                    Some((
                        n.clone(),
                        Saved {
                            rx: m.rx,
                            tx: m.tx,
                            level: m.level,
                            start: s.start,
                            end: s.end,
                        },
                    ))
                })
                .collect(),
        }
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (the usual era arithmetic).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day number (inverse of [`days_from_civil`]).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

pub fn days_in_month(y: i64, m: u32) -> u32 {
    let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    (days_from_civil(ny, nm, 1) - days_from_civil(y, m, 1)) as u32
}

const DAY: i64 = 86_400;

/// The period of `q` that holds `wall`, in UTC seconds.
pub fn period(q: &Quota, wall: Wall) -> Span {
    let local = wall.unix + i64::from(wall.offset);
    let today = local.div_euclid(DAY);
    let at = |day: i64| day * DAY + i64::from(q.reset_minute) * 60;
    let (start, end) = match q.period {
        Period::Daily => {
            let s = if local >= at(today) { today } else { today - 1 };
            (at(s), at(s + 1))
        }
        Period::Weekly { weekday } => {
            // 1970-01-01 was a Thursday (3 with Monday = 0).
            let wd = (today + 3).rem_euclid(7);
            let mut s = today - (wd - i64::from(weekday)).rem_euclid(7);
            if local < at(s) {
                s -= 7;
            }
            (at(s), at(s + 7))
        }
        Period::Monthly { day } => {
            let boundary = |y: i64, m: u32| {
                let d = u32::from(day).clamp(1, days_in_month(y, m));
                at(days_from_civil(y, m, d))
            };
            let prev = |y: i64, m: u32| if m == 1 { (y - 1, 12) } else { (y, m - 1) };
            let next = |y: i64, m: u32| if m == 12 { (y + 1, 1) } else { (y, m + 1) };
            let (y, m, _) = civil_from_days(today);
            let this = boundary(y, m);
            if local >= this {
                let (ny, nm) = next(y, m);
                (this, boundary(ny, nm))
            } else {
                let (py, pm) = prev(y, m);
                (boundary(py, pm), this)
            }
        }
    };
    let off = i64::from(wall.offset);
    Span {
        start: start - off,
        end: end - off,
    }
}

/// `20G`, `500M`, `1.5G`, `20GiB`, `1000000`: bytes. K/M/G/T are powers of 1000 (as
/// operators sell data plans), Ki/Mi/Gi/Ti powers of 1024; a trailing `B` is allowed.
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let err = || {
        format!("must be a size such as 20G, 500M, 1.5G or 20Gi (bytes; K/M/G/T = 1000^n, Ki/Mi/Gi/Ti = 1024^n), not '{s}'")
    };
    let t = s.strip_suffix(['B', 'b']).unwrap_or(s);
    let units: [(&str, u64); 8] = [
        ("Ki", 1 << 10),
        ("Mi", 1 << 20),
        ("Gi", 1 << 30),
        ("Ti", 1 << 40),
        ("K", 1_000),
        ("M", 1_000_000),
        ("G", 1_000_000_000),
        ("T", 1_000_000_000_000),
    ];
    let (num, unit) = units
        .iter()
        .find_map(|(suffix, mult)| {
            t.strip_suffix(suffix)
                .or_else(|| t.strip_suffix(suffix.to_ascii_lowercase().as_str()))
                .map(|n| (n, *mult))
        })
        .unwrap_or((t, 1));
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    let digits = |d: &str| d.bytes().all(|b| b.is_ascii_digit());
    if int.is_empty() || !digits(int) || !digits(frac) || int.len() > 15 || frac.len() > 6 {
        return Err(err());
    }
    let int: u128 = int.parse().map_err(|_| err())?;
    let frac_n: u128 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<6}").parse().map_err(|_| err())?
    };
    let bytes = (int * 1_000_000 + frac_n) * u128::from(unit) / 1_000_000;
    match u64::try_from(bytes) {
        Ok(b) if b > 0 => Ok(b),
        _ => Err(err()),
    }
}

/// A size for people: `4.80 MB`, `20.0 GB` (powers of 1000, as [`parse_bytes`] reads).
pub fn fmt_bytes(b: u64) -> String {
    // Integers only: float formatting would add its code to the binary.
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut unit = 1u128;
    let mut i = 0;
    while u128::from(b) >= unit * 1000 && i + 1 < UNITS.len() {
        unit *= 1000;
        i += 1;
    }
    if i == 0 {
        return format!("{b} B");
    }
    let hundredths = (u128::from(b) * 100 + unit / 2) / unit;
    format!("{}.{:02} {}", hundredths / 100, hundredths % 100, UNITS[i])
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB: u64 = 1_000_000;

    fn quota(bytes: u64, period: Period) -> Quota {
        Quota::for_tests(bytes, period)
    }

    /// UTC seconds of a UTC date and time.
    fn utc(y: i64, m: u32, d: u32, h: i64, min: i64) -> i64 {
        days_from_civil(y, m, d) * DAY + h * 3600 + min * 60
    }

    fn t(s: u64) -> Instant {
        Instant::from_secs(s)
    }

    fn one(name: &str, q: Quota) -> Vec<(String, Quota)> {
        vec![(name.to_string(), q)]
    }

    #[test]
    fn civil_dates_round_trip() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        for z in [-800_000, -1, 59, 11_016, 19_782, 20_000, 2_000_000] {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
        }
        assert_eq!(days_in_month(2024, 2), 29);
        assert_eq!(days_in_month(2026, 2), 28);
        assert_eq!(days_in_month(2100, 2), 28);
        assert_eq!(days_in_month(2000, 2), 29);
    }

    #[test]
    fn monthly_periods_clamp_to_the_month_end() {
        let mut q = quota(MB, Period::Monthly { day: 31 });
        q.reset_minute = 3 * 60 + 30;
        // 15 Feb 2026: the period began 31 Jan 03:30 and ends 28 Feb 03:30.
        let s = period(&q, Wall::utc(utc(2026, 2, 15, 12, 0)));
        assert_eq!(s.start, utc(2026, 1, 31, 3, 30));
        assert_eq!(s.end, utc(2026, 2, 28, 3, 30));
        // A leap year: 29 Feb.
        let s = period(&q, Wall::utc(utc(2024, 2, 15, 12, 0)));
        assert_eq!(s.end, utc(2024, 2, 29, 3, 30));
        // The boundary itself belongs to the new period; a second before, the old one.
        let b = utc(2026, 2, 28, 3, 30);
        assert_eq!(period(&q, Wall::utc(b)).start, b);
        assert_eq!(period(&q, Wall::utc(b - 1)).end, b);
        assert_eq!(period(&q, Wall::utc(b)).end, utc(2026, 3, 31, 3, 30));
        // December to January.
        q.period = Period::Monthly { day: 1 };
        let s = period(&q, Wall::utc(utc(2026, 12, 31, 23, 59)));
        assert_eq!(
            (s.start, s.end),
            (utc(2026, 12, 1, 3, 30), utc(2027, 1, 1, 3, 30))
        );
    }

    #[test]
    fn weekly_and_daily_periods() {
        // 30 Nov 2026 is a Monday.
        let q = quota(MB, Period::Weekly { weekday: 0 });
        let s = period(&q, Wall::utc(utc(2026, 11, 30, 0, 0)));
        assert_eq!(
            (s.start, s.end),
            (utc(2026, 11, 30, 0, 0), utc(2026, 12, 7, 0, 0))
        );
        let s = period(&q, Wall::utc(utc(2026, 11, 29, 23, 59)));
        assert_eq!(s.start, utc(2026, 11, 23, 0, 0));
        // Sunday 18:00.
        let mut q = quota(MB, Period::Weekly { weekday: 6 });
        q.reset_minute = 18 * 60;
        let s = period(&q, Wall::utc(utc(2026, 12, 2, 9, 0)));
        assert_eq!(s.start, utc(2026, 11, 29, 18, 0));
        let mut q = quota(MB, Period::Daily);
        q.reset_minute = 4 * 60;
        let s = period(&q, Wall::utc(utc(2026, 11, 30, 3, 59)));
        assert_eq!(
            (s.start, s.end),
            (utc(2026, 11, 29, 4, 0), utc(2026, 11, 30, 4, 0))
        );
    }

    #[test]
    fn periods_follow_local_time() {
        // UTC+2 (CEST): midnight local is 22:00 UTC the day before.
        let q = quota(MB, Period::Daily);
        let wall = Wall {
            unix: utc(2026, 7, 1, 23, 0),
            offset: 7200,
        };
        let s = period(&q, wall);
        assert_eq!(
            (s.start, s.end),
            (utc(2026, 7, 1, 22, 0), utc(2026, 7, 2, 22, 0))
        );
        // West of UTC (-05:00).
        let wall = Wall {
            unix: utc(2026, 7, 2, 3, 0),
            offset: -5 * 3600,
        };
        assert_eq!(period(&q, wall).start, utc(2026, 7, 1, 5, 0));
    }

    #[test]
    fn crossing_warn_then_quota_then_period_reset() {
        let q = Quota {
            bytes: 5 * MB,
            ..quota(0, Period::Monthly { day: 1 })
        };
        let qs = one("wan2", q);
        let mut m = Meters::restore(None, &qs);
        let wall = Wall::utc(utc(2026, 11, 30, 10, 0));
        m.on_counters("wan2", 7, 1000, 1000, t(0));
        assert_eq!(m.poll(&qs, wall), vec![]);
        // 3.9 MB: under 80 %.
        m.on_counters("wan2", 7, 1000 + 3_500_000, 1000 + 400_000, t(1));
        assert_eq!(m.poll(&qs, wall), vec![]);
        // 4.1 MB: warned, once.
        m.on_counters("wan2", 7, 1000 + 3_700_000, 1000 + 400_000, t(2));
        let ev = m.poll(&qs, wall);
        assert!(matches!(
            &ev[..],
            [Event::Warning {
                used: 4_100_000,
                ..
            }]
        ));
        assert_eq!(m.poll(&qs, wall), vec![]);
        assert!(!m.exceeded("wan2"));
        // 5 MB: exceeded, once.
        m.on_counters("wan2", 7, 1000 + 4_600_000, 1000 + 400_000, t(3));
        let ev = m.poll(&qs, wall);
        assert!(matches!(
            &ev[..],
            [Event::Exceeded {
                used: 5_000_000,
                quota: 5_000_000,
                ..
            }]
        ));
        assert!(m.exceeded("wan2"));
        m.on_counters("wan2", 7, 1000 + 9_000_000, 1000 + 400_000, t(4));
        assert_eq!(m.poll(&qs, wall), vec![]);
        // The month ends (1 Dec 00:00 UTC): one reset, the WAN is usable again.
        let next = Wall::utc(utc(2026, 12, 1, 0, 0));
        let ev = m.poll(&qs, next);
        assert!(matches!(
            &ev[..],
            [Event::Reset {
                reason: ResetReason::Period,
                used: 9_400_000,
                ..
            }]
        ));
        assert!(!m.exceeded("wan2"));
        assert_eq!(m.get("wan2").map(|m| m.used(&q)), Some(0));
        // Counting goes on from the same base.
        m.on_counters("wan2", 7, 1000 + 9_100_000, 1000 + 400_000, t(6));
        assert_eq!(m.get("wan2").map(|m| m.used(&q)), Some(100_000));
    }

    #[test]
    fn a_jump_past_both_thresholds_reports_both_in_order() {
        let qs = one("lte", quota(MB, Period::Daily));
        let mut m = Meters::restore(None, &qs);
        let wall = Wall::utc(utc(2026, 11, 30, 10, 0));
        m.on_counters("lte", 1, 0, 0, t(0));
        m.on_counters("lte", 1, 2 * MB, 0, t(1));
        let ev = m.poll(&qs, wall);
        assert!(matches!(
            &ev[..],
            [Event::Warning { .. }, Event::Exceeded { .. }]
        ));
    }

    #[test]
    fn direction_selects_what_counts() {
        let mut q = quota(10 * MB, Period::Daily);
        let mut m = Meter {
            rx: 3,
            tx: 4,
            ..Meter::default()
        };
        assert_eq!(m.used(&q), 7);
        q.direction = Direction::Down;
        assert_eq!(m.used(&q), 3);
        q.direction = Direction::Up;
        assert_eq!(m.used(&q), 4);
        m.tx = u64::MAX;
        q.direction = Direction::Both;
        assert_eq!(m.used(&q), u64::MAX);
    }

    #[test]
    fn ppp_reconnect_counts_the_new_device_from_zero() {
        let qs = one("wwan", quota(100 * MB, Period::Daily));
        let mut m = Meters::restore(None, &qs);
        m.on_counters("wwan", 10, 50 * MB, 5 * MB, t(0));
        m.on_counters("wwan", 10, 51 * MB, 5 * MB, t(1));
        // pppd reconnects: a new device (ifindex 11) whose counters start at zero and
        // carried 200 kB before the first sample.
        m.on_counters("wwan", 11, 200_000, 0, t(2));
        assert_eq!(m.get("wwan").map(|x| (x.rx, x.tx)), Some((MB + 200_000, 0)));
        // Same ifindex, counters reset by the driver (far from a 32-bit wrap).
        m.on_counters("wwan", 11, 300_000, 0, t(3));
        m.on_counters("wwan", 11, 1000, 0, t(4));
        assert_eq!(m.get("wwan").map(|x| x.rx), Some(MB + 300_000 + 1000));
    }

    #[test]
    fn a_32_bit_counter_wrap_counts_across_the_wrap() {
        let qs = one("wan", quota(100 * MB, Period::Daily));
        let mut m = Meters::restore(None, &qs);
        let near = u64::from(u32::MAX) - 999;
        m.on_counters("wan", 3, near, 0, t(0));
        m.on_counters("wan", 3, 500, 0, t(1));
        assert_eq!(m.get("wan").map(|x| x.rx), Some(1500));
        // A 64-bit counter never wraps: lower means reset.
        m.on_counters("wan", 3, 1 << 40, 0, t(2));
        m.on_counters("wan", 3, 10, 0, t(3));
        assert_eq!(
            m.get("wan").map(|x| x.rx),
            Some(1500 + (1 << 40) - 500 + 10)
        );
    }

    #[test]
    fn restart_restores_the_count_of_the_current_period() {
        let q = quota(5 * MB, Period::Monthly { day: 1 });
        let qs = one("wan2", q);
        let wall = Wall::utc(utc(2026, 11, 30, 10, 0));
        let mut m = Meters::restore(None, &qs);
        m.on_counters("wan2", 4, 0, 0, t(0));
        m.on_counters("wan2", 4, 4_500_000, 100_000, t(10));
        assert_eq!(m.poll(&qs, wall).len(), 1);
        assert!(m.dirty());
        let file = m.save();
        assert!(!m.dirty());
        let text = file.to_json();
        // A new process: the count and the level come back, no event repeats.
        let parsed = StateFile::parse(&text).expect("parses");
        let mut m2 = Meters::restore(Some(&parsed), &qs);
        assert_eq!(m2.poll(&qs, wall), vec![]);
        assert_eq!(m2.get("wan2").map(|x| x.used(&q)), Some(4_600_000));
        // First sample after the start is a base only.
        m2.on_counters("wan2", 9, 123_456_789, 0, t(1));
        m2.on_counters("wan2", 9, 123_456_789 + 400_000, 0, t(2));
        let ev = m2.poll(&qs, wall);
        assert!(matches!(
            &ev[..],
            [Event::Exceeded {
                used: 5_000_000,
                ..
            }]
        ));
        // Stopped over the month's end: the saved count is of a past period.
        let later = Wall::utc(utc(2026, 12, 3, 0, 0));
        let mut m3 = Meters::restore(Some(&parsed), &qs);
        let ev = m3.poll(&qs, later);
        assert!(matches!(
            &ev[..],
            [Event::Reset {
                used: 4_600_000,
                ..
            }]
        ));
    }

    #[test]
    fn corrupt_state_files_are_errors_not_panics() {
        for bad in [
            "",
            "{",
            "[]",
            "{\"version\":2,\"wans\":{}}",
            "{\"version\":1,\"wans\":{\"a\":{\"rx\":-1}}}",
        ] {
            assert!(StateFile::parse(bad).is_err(), "{bad:?}");
        }
        assert!(StateFile::parse("{\"version\":1,\"wans\":{}}").is_ok());
    }

    #[test]
    fn saves_are_rate_limited_except_after_transitions() {
        let qs = one("wan", quota(100 * MB, Period::Daily));
        let wall = Wall::utc(utc(2026, 11, 30, 10, 0));
        let hour = Duration::from_secs(3600);
        let mut m = Meters::restore(None, &qs);
        m.poll(&qs, wall);
        m.save();
        m.on_counters("wan", 1, 0, 0, t(0));
        assert!(!m.save_due(hour, t(1)));
        m.on_counters("wan", 1, 1000, 0, t(5));
        assert_eq!(m.save_at(hour), Some(t(5) + hour));
        assert!(!m.save_due(hour, t(3604)));
        assert!(m.save_due(hour, t(3605)));
        m.save();
        // A manual reset saves at once.
        assert!(m.reset("wan", &qs[0].1).is_some());
        assert!(m.save_due(hour, t(3606)));
        assert!(m.reset("other", &qs[0].1).is_none());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("20G"), Ok(20_000_000_000));
        assert_eq!(parse_bytes("500M"), Ok(500_000_000));
        assert_eq!(parse_bytes("5MB"), Ok(5_000_000));
        assert_eq!(parse_bytes("1.5G"), Ok(1_500_000_000));
        assert_eq!(parse_bytes("20Gi"), Ok(20 << 30));
        assert_eq!(parse_bytes("20GiB"), Ok(20 << 30));
        assert_eq!(parse_bytes("1k"), Ok(1000));
        assert_eq!(parse_bytes("123456"), Ok(123_456));
        for bad in ["", "G", "0", "-5M", "5X", "1.2.3G", "99999999999999999T"] {
            assert!(parse_bytes(bad).is_err(), "{bad}");
        }
        assert_eq!(fmt_bytes(4_800_000), "4.80 MB");
        assert_eq!(fmt_bytes(999), "999 B");
    }
}
