//! Probe scheduling for one WAN: when to start a round, which probes it sends, and how
//! replies, errors and timeouts turn into a finished round. Pure and clock-free.
//!
//! A round sends `count` probes to every target at once (targets are never probed one
//! after another); a target answers the round if any of its probes is answered before
//! the round's deadline (`timeout`). Rounds start every `interval` (which health varies
//! between `interval`, `failure_interval` and `recovery_interval`) and may overlap when
//! the timeout is longer than the interval; they are handed to health strictly in the
//! order they started, so a quick round never overtakes a slow one.
//!
//! Each probe carries a 16-bit sequence number unique among the rounds in flight; the
//! shell matches replies to (WAN, identifier) and the scheduler checks that the reply's
//! sequence belongs to the target it came from, so a stale or foreign reply is never
//! counted.

pub mod dns;
pub mod http;
pub mod icmp;

use heapless::Deque;

use crate::config::MAX_TARGETS;
use crate::health::Answer;
use crate::time::{earliest, Duration, Instant};

/// Most rounds in flight at once (timeout / interval, bounded).
pub const MAX_ROUNDS: usize = 16;
/// Most probes per target per round (`count`).
pub const MAX_COUNT: u8 = 10;

/// How the current round should look.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Params {
    pub targets: u8,
    pub count: u8,
    pub timeout: Duration,
    pub interval: Duration,
}

/// A probe the shell must send now.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Probe {
    /// Index into the interface's `track_ip`.
    pub target: u8,
    pub seq: u16,
}

/// A finished round: one answer per target.
pub type Round = heapless::Vec<Answer, MAX_TARGETS>;

#[derive(Clone, Debug)]
struct InFlight {
    started_at: Instant,
    deadline: Instant,
    first_seq: u16,
    count: u8,
    targets: u8,
    /// One bit per probe still unresolved.
    outstanding: u128,
    answers: [Answer; MAX_TARGETS],
}

impl InFlight {
    fn probes(&self) -> u16 {
        u16::from(self.targets) * u16::from(self.count)
    }

    fn index_of(&self, seq: u16) -> Option<u16> {
        let i = seq.wrapping_sub(self.first_seq);
        (i < self.probes()).then_some(i)
    }

    fn done(&self, now: Instant) -> bool {
        self.outstanding == 0 || now >= self.deadline
    }
}

/// The probe schedule of one WAN.
#[derive(Clone, Debug, Default)]
pub struct Scheduler {
    last_start: Option<Instant>,
    rounds: Deque<InFlight, MAX_ROUNDS>,
    next_seq: u16,
}

impl Scheduler {
    /// `seed` spreads sequence numbers so a restarted daemon does not reuse the last ones.
    pub fn new(seed: u16) -> Scheduler {
        Scheduler {
            last_start: None,
            rounds: Deque::new(),
            next_seq: seed,
        }
    }

    /// Forget rounds in flight (carrier lost, disabled, targets changed); the next round
    /// starts at the next poll.
    pub fn reset(&mut self) {
        self.rounds.clear();
        self.last_start = None;
    }

    /// Ask for a round to start at the next poll (`probe` on demand).
    pub fn probe_now(&mut self) {
        self.last_start = None;
    }

    /// When the next round is due, or a round in flight reaches its deadline.
    pub fn poll_at(&self, p: &Params) -> Option<Instant> {
        let next_start = match self.last_start {
            Some(t) => t + p.interval,
            None => Instant::ZERO,
        };
        let deadline = self.rounds.front().map(|r| r.deadline);
        earliest(Some(next_start), deadline)
    }

    /// The oldest round, if it is finished: answered in full, or past its deadline.
    pub fn finished(&mut self, now: Instant) -> Option<Round> {
        if !self.rounds.front()?.done(now) {
            return None;
        }
        let r = self.rounds.pop_front()?;
        Some(
            r.answers[..usize::from(r.targets)]
                .iter()
                .copied()
                .collect(),
        )
    }

    /// Start a round if one is due; returns the probes to send.
    pub fn start(&mut self, now: Instant, p: &Params) -> heapless::Vec<Probe, 80> {
        let mut out = heapless::Vec::new();
        if let Some(t) = self.last_start {
            if now < t + p.interval {
                return out;
            }
        }
        if self.rounds.is_full() || p.targets == 0 {
            return out;
        }
        let targets = p.targets.min(MAX_TARGETS as u8);
        let count = p.count.clamp(1, MAX_COUNT);
        let probes = u16::from(targets) * u16::from(count);
        let round = InFlight {
            started_at: now,
            deadline: now + p.timeout,
            first_seq: self.next_seq,
            count,
            targets,
            outstanding: if probes >= 128 {
                u128::MAX
            } else {
                (1u128 << probes) - 1
            },
            answers: [None; MAX_TARGETS],
        };
        for i in 0..probes {
            let _ = out.push(Probe {
                target: (i / u16::from(count)) as u8,
                seq: self.next_seq.wrapping_add(i),
            });
        }
        self.next_seq = self.next_seq.wrapping_add(probes);
        self.last_start = Some(now);
        let _ = self.rounds.push_back(round);
        out
    }

    fn locate(&mut self, seq: u16, target: u8) -> Option<(&mut InFlight, u16)> {
        let round = self.rounds.iter_mut().find(|r| r.index_of(seq).is_some())?;
        let i = round.index_of(seq)?;
        if i / u16::from(round.count) != u16::from(target) || round.outstanding & (1 << i) == 0 {
            return None;
        }
        Some((round, i))
    }

    /// A reply for `seq` from target `target` arrived at `now`. Returns whether it was
    /// counted (false: unknown, stale, duplicate, or from the wrong target).
    pub fn on_reply(&mut self, seq: u16, target: u8, now: Instant) -> bool {
        self.answer(seq, target, |started_at| now.saturating_since(started_at))
    }

    /// An answer for `seq` whose round-trip time the kernel measured (a TCP handshake:
    /// `tcpi_rtt`), so the time the loop took to hear of it does not count. Judged as
    /// if it had arrived `rtt` after the round started.
    pub fn on_measured_reply(&mut self, seq: u16, target: u8, rtt: Duration) -> bool {
        self.answer(seq, target, |_| rtt)
    }

    fn answer(&mut self, seq: u16, target: u8, rtt: impl FnOnce(Instant) -> Duration) -> bool {
        let Some((round, i)) = self.locate(seq, target) else {
            return false;
        };
        let rtt = rtt(round.started_at);
        if round.started_at + rtt >= round.deadline {
            return false;
        }
        round.outstanding &= !(1 << i);
        let slot = &mut round.answers[usize::from(target)];
        *slot = Some(match *slot {
            Some(best) => best.min(rtt),
            None => rtt,
        });
        true
    }

    /// Sending `seq` failed (e.g. ENETUNREACH: no route in the WAN's table): the probe
    /// is lost now instead of at the deadline.
    pub fn on_error(&mut self, seq: u16, target: u8) {
        if let Some((round, i)) = self.locate(seq, target) {
            round.outstanding &= !(1 << i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(targets: u8, count: u8) -> Params {
        Params {
            targets,
            count,
            timeout: Duration::from_secs(1),
            interval: Duration::from_secs(1),
        }
    }

    fn at(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    #[test]
    fn all_targets_at_once_then_every_interval() {
        let mut s = Scheduler::new(100);
        let params = p(3, 1);
        assert_eq!(s.poll_at(&params), Some(Instant::ZERO));
        let sent = s.start(at(0), &params);
        let targets: Vec<u8> = sent.iter().map(|p| p.target).collect();
        assert_eq!(targets, vec![0, 1, 2]);
        assert_eq!(sent[0].seq, 100);
        assert!(s.start(at(500), &params).is_empty());
        assert_eq!(s.poll_at(&params), Some(at(1000)));
        assert!(s.on_reply(100, 0, at(20)));
        assert!(s.on_reply(102, 2, at(35)));
        assert!(s.finished(at(40)).is_none(), "target 1 still outstanding");
        assert!(s.on_reply(101, 1, at(50)));
        let r = s.finished(at(50)).expect("complete early");
        assert_eq!(
            r.as_slice(),
            &[
                Some(Duration::from_millis(20)),
                Some(Duration::from_millis(50)),
                Some(Duration::from_millis(35))
            ]
        );
        assert_eq!(s.start(at(1000), &params).len(), 3);
    }

    #[test]
    fn timeouts_lose_and_stale_or_foreign_replies_do_not_count() {
        let mut s = Scheduler::new(0);
        let params = p(2, 1);
        s.start(at(0), &params);
        assert!(!s.on_reply(1, 0, at(10)), "seq 1 was sent to target 1");
        assert!(!s.on_reply(7, 0, at(10)), "never sent");
        assert!(s.on_reply(0, 0, at(10)));
        assert!(!s.on_reply(0, 0, at(11)), "duplicate");
        assert_eq!(s.poll_at(&params), Some(at(1000)));
        assert!(s.finished(at(999)).is_none());
        let r = s.finished(at(1000)).expect("deadline");
        assert_eq!(r.as_slice(), &[Some(Duration::from_millis(10)), None]);
        assert!(!s.on_reply(1, 1, at(1001)), "stale: its round is over");
    }

    #[test]
    fn a_measured_rtt_counts_whenever_the_loop_hears_of_it() {
        let mut s = Scheduler::new(0);
        let params = p(2, 1);
        s.start(at(0), &params);
        // The kernel measured 2.5 ms; the loop was busy and reads it at t=400.
        assert!(s.on_measured_reply(0, 0, Duration::from_micros(2500)));
        assert!(
            !s.on_measured_reply(0, 0, Duration::from_millis(1)),
            "duplicate"
        );
        // A measurement beyond the timeout is a loss, like a late reply.
        assert!(!s.on_measured_reply(1, 1, Duration::from_millis(1000)));
        let r = s.finished(at(1000)).expect("deadline");
        assert_eq!(r.as_slice(), &[Some(Duration::from_micros(2500)), None]);
    }

    #[test]
    fn count_probes_per_target_best_rtt_wins() {
        let mut s = Scheduler::new(0);
        let sent = s.start(at(0), &p(2, 3));
        assert_eq!(sent.len(), 6);
        assert_eq!(sent[3].target, 1);
        s.on_error(0, 0);
        assert!(s.on_reply(2, 0, at(30)));
        assert!(s.on_reply(1, 0, at(40)));
        for seq in 3..6 {
            s.on_error(seq, 1);
        }
        let r = s.finished(at(41)).expect("all resolved");
        assert_eq!(r.as_slice(), &[Some(Duration::from_millis(30)), None]);
    }

    #[test]
    fn overlapping_rounds_finish_in_start_order() {
        let mut s = Scheduler::new(0);
        let params = Params {
            targets: 1,
            count: 1,
            timeout: Duration::from_secs(1),
            interval: Duration::from_millis(500),
        };
        s.start(at(0), &params); // seq 0, lost
        s.start(at(500), &params); // seq 1, answered fast
        assert!(s.on_reply(1, 0, at(510)));
        assert!(s.finished(at(600)).is_none(), "round 0 still pending");
        assert_eq!(s.finished(at(1000)).unwrap().as_slice(), &[None]);
        assert_eq!(
            s.finished(at(1000)).unwrap().as_slice(),
            &[Some(Duration::from_millis(10))]
        );
    }

    #[test]
    fn sequence_numbers_wrap() {
        let mut s = Scheduler::new(u16::MAX);
        let sent = s.start(at(0), &p(2, 1));
        assert_eq!((sent[0].seq, sent[1].seq), (u16::MAX, 0));
        assert!(s.on_reply(0, 1, at(5)));
        assert!(s.on_reply(u16::MAX, 0, at(6)));
        assert!(s.finished(at(6)).is_some());
    }

    #[test]
    fn reset_drops_rounds_and_restarts_now() {
        let mut s = Scheduler::new(0);
        s.start(at(0), &p(1, 1));
        s.reset();
        assert!(s.finished(at(5000)).is_none());
        assert_eq!(s.start(at(10), &p(1, 1)).len(), 1);
    }
}
