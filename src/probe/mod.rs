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
//! Once a target has answered [`WELL_KNOWN`] probes, its probes are judged lost sooner:
//! at a deadline derived from its smoothed RTT like TCP's retransmission timeout
//! (RFC 6298: `srtt + 4·rttvar`), at least [`MIN_TIMEOUT`] and at most `timeout`. The round
//! is handed to health at the latest of its targets' deadlines; a reply that comes after
//! its target's deadline but within `timeout` is reported as [`Reply::Late`]: the path is
//! slow, not dead, and health must not count that round toward a fall.
//!
//! Each probe carries a 16-bit sequence number unique among the rounds in flight; the
//! shell matches replies to (WAN, identifier) and the scheduler checks that the reply's
//! sequence belongs to the target it came from, so a stale or foreign reply is never
//! counted.

pub mod cost;
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
/// Answers a target needs before its timeout is derived from its RTT.
pub const WELL_KNOWN: u8 = 5;
/// The shortest derived timeout: below it, scheduling jitter of a busy router (and of the
/// targets) would be mistaken for loss.
pub const MIN_TIMEOUT: Duration = Duration::from_millis(200);

/// What a reply meant.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// Unknown, stale, duplicate or from the wrong target: not counted.
    Ignored,
    /// An answer in its round.
    Answer,
    /// An answer after its target's derived deadline (within `timeout`), for a round
    /// already handed to health as lost there.
    Late,
}

impl Reply {
    /// Whether the reply was one of ours (in its round or late).
    pub fn counted(self) -> bool {
        self != Reply::Ignored
    }
}

/// Smoothed RTT of one target (RFC 6298, section 2), in microseconds.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Rtt {
    srtt_us: u64,
    rttvar_us: u64,
    samples: u8,
}

impl Rtt {
    fn sample(&mut self, rtt: Duration) {
        let r = rtt.as_micros().min(u128::from(u32::MAX)) as u64;
        if self.samples == 0 {
            self.srtt_us = r;
            self.rttvar_us = r / 2;
        } else {
            // RTTVAR <- 3/4 RTTVAR + 1/4 |SRTT - R'|; SRTT <- 7/8 SRTT + 1/8 R'.
            self.rttvar_us = (3 * self.rttvar_us + self.srtt_us.abs_diff(r)) / 4;
            self.srtt_us = (7 * self.srtt_us + r) / 8;
        }
        self.samples = self.samples.saturating_add(1);
    }

    /// The smoothed RTT, once there is a sample.
    pub fn srtt(&self) -> Option<Duration> {
        (self.samples > 0).then(|| Duration::from_micros(self.srtt_us))
    }

    /// How long to wait for this target's answer: `srtt + 4·rttvar` once it is
    /// [`WELL_KNOWN`], within [`MIN_TIMEOUT`]..=`timeout`; `timeout` before that.
    pub fn timeout(&self, timeout: Duration) -> Duration {
        if self.samples < WELL_KNOWN {
            return timeout;
        }
        let rto = Duration::from_micros(self.srtt_us.saturating_add(4 * self.rttvar_us));
        rto.max(MIN_TIMEOUT).min(timeout)
    }
}

/// How the current round should look.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Params {
    pub targets: u8,
    /// How many of the targets one round probes: all of them (`targets` or more), or
    /// fewer in turn, each round starting where the last one stopped (a standby WAN's
    /// rounds, see [`crate::engine`]).
    pub per_round: u8,
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

/// A finished round: one answer per target it probed, starting at target `first` (in
/// `track_ip` order, wrapping around).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Round {
    pub first: u8,
    /// The number of targets of the WAN (for the wrap-around).
    pub of: u8,
    pub answers: heapless::Vec<Answer, MAX_TARGETS>,
}

impl std::ops::Deref for Round {
    type Target = [Answer];

    fn deref(&self) -> &[Answer] {
        &self.answers
    }
}

impl Round {
    pub fn as_slice(&self) -> &[Answer] {
        &self.answers
    }

    /// Whether the round probed every target.
    pub fn complete(&self) -> bool {
        self.answers.len() >= usize::from(self.of)
    }

    /// `(target index, answer)` of each target the round probed.
    pub fn iter(&self) -> impl Iterator<Item = (usize, Answer)> + '_ {
        let of = usize::from(self.of.max(1));
        self.answers
            .iter()
            .enumerate()
            .map(move |(k, a)| ((usize::from(self.first) + k) % of, *a))
    }
}

#[derive(Clone, Debug)]
struct InFlight {
    started_at: Instant,
    /// `timeout` after the start: no reply counts after it.
    deadline: Instant,
    /// Each target's derived deadline (at most `deadline`).
    target_deadlines: [Instant; MAX_TARGETS],
    /// Handed to health already; kept until `deadline` to recognise late replies.
    reported: bool,
    first_seq: u16,
    count: u8,
    /// Targets this round probes, from `first`, wrapping at `of`.
    targets: u8,
    first: u8,
    of: u8,
    /// One bit per probe still unresolved.
    outstanding: u128,
    answers: [Answer; MAX_TARGETS],
}

impl InFlight {
    fn probes(&self) -> u16 {
        u16::from(self.targets) * u16::from(self.count)
    }

    /// The round-relative index of target `target`, if the round probed it.
    fn relative(&self, target: u8) -> Option<u8> {
        let of = self.of.max(1);
        let k = (u16::from(target) + u16::from(of) - u16::from(self.first) % u16::from(of))
            % u16::from(of);
        let k = k as u8;
        (k < self.targets).then_some(k)
    }

    fn index_of(&self, seq: u16) -> Option<u16> {
        let i = seq.wrapping_sub(self.first_seq);
        (i < self.probes()).then_some(i)
    }

    /// Whether target `t` still has a probe unresolved.
    fn waiting_for(&self, t: u8) -> bool {
        let count = u16::from(self.count);
        let mask = if count >= 128 {
            u128::MAX
        } else {
            (1u128 << count) - 1
        };
        let shift = u16::from(t) * count;
        shift < 128 && (self.outstanding >> shift) & mask != 0
    }

    /// When the round can be judged: at once when every probe is resolved, else at the
    /// latest derived deadline of the targets still waited for.
    fn judge_at(&self) -> Instant {
        (0..self.targets)
            .filter(|&t| self.waiting_for(t))
            .map(|t| self.target_deadlines[usize::from(t)])
            .max()
            .unwrap_or(self.started_at)
    }
}

/// The probe schedule of one WAN.
#[derive(Clone, Debug, Default)]
pub struct Scheduler {
    last_start: Option<Instant>,
    rounds: Deque<InFlight, MAX_ROUNDS>,
    next_seq: u16,
    /// Where the next partial round starts.
    next_first: u8,
    rtt: [Rtt; MAX_TARGETS],
}

impl Scheduler {
    /// `seed` spreads sequence numbers so a restarted daemon does not reuse the last ones.
    pub fn new(seed: u16) -> Scheduler {
        Scheduler {
            last_start: None,
            rounds: Deque::new(),
            next_seq: seed,
            next_first: 0,
            rtt: [Rtt::default(); MAX_TARGETS],
        }
    }

    /// What is known of each target's RTT, in `track_ip` order.
    pub fn rtt(&self) -> &[Rtt; MAX_TARGETS] {
        &self.rtt
    }

    /// Forget rounds in flight and what was learnt of the path (carrier lost, disabled,
    /// targets changed); the next round starts at the next poll.
    pub fn reset(&mut self) {
        self.rounds.clear();
        self.last_start = None;
        self.rtt = [Rtt::default(); MAX_TARGETS];
    }

    /// The oldest round not yet handed to health.
    fn pending(&self) -> Option<&InFlight> {
        self.rounds.iter().find(|r| !r.reported)
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
        let judge = self.pending().map(InFlight::judge_at);
        earliest(Some(next_start), judge)
    }

    /// The oldest round not yet handed to health, if it is finished: answered in full,
    /// or past the deadlines of the targets that did not answer.
    pub fn finished(&mut self, now: Instant) -> Option<Round> {
        // Rounds past `timeout` cannot take replies any more.
        while self
            .rounds
            .front()
            .is_some_and(|r| r.reported && (now >= r.deadline || r.outstanding == 0))
        {
            self.rounds.pop_front();
        }
        let r = self.rounds.iter_mut().find(|r| !r.reported)?;
        if now < r.judge_at() {
            return None;
        }
        r.reported = true;
        Some(Round {
            first: r.first,
            of: r.of,
            answers: r.answers[..usize::from(r.targets)]
                .iter()
                .copied()
                .collect(),
        })
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
        let of = p.targets.min(MAX_TARGETS as u8);
        let (first, targets) = if p.per_round >= of || p.per_round == 0 {
            (0, of)
        } else {
            let first = self.next_first % of;
            self.next_first = (first + p.per_round) % of;
            (first, p.per_round)
        };
        let target_of = |k: u16| ((u16::from(first) + k) % u16::from(of)) as u8;
        let count = p.count.clamp(1, MAX_COUNT);
        let probes = u16::from(targets) * u16::from(count);
        let mut target_deadlines = [now + p.timeout; MAX_TARGETS];
        for (k, d) in target_deadlines
            .iter_mut()
            .enumerate()
            .take(usize::from(targets))
        {
            let rtt = self.rtt[usize::from(target_of(k as u16))];
            *d = now + rtt.timeout(p.timeout);
        }
        let round = InFlight {
            started_at: now,
            deadline: now + p.timeout,
            target_deadlines,
            reported: false,
            first_seq: self.next_seq,
            count,
            targets,
            first,
            of,
            outstanding: if probes >= 128 {
                u128::MAX
            } else {
                (1u128 << probes) - 1
            },
            answers: [None; MAX_TARGETS],
        };
        for i in 0..probes {
            let _ = out.push(Probe {
                target: target_of(i / u16::from(count)),
                seq: self.next_seq.wrapping_add(i),
            });
        }
        self.next_seq = self.next_seq.wrapping_add(probes);
        self.last_start = Some(now);
        let _ = self.rounds.push_back(round);
        out
    }

    /// The round of `seq`, the probe's index in it and its round-relative target.
    fn locate(&mut self, seq: u16, target: u8) -> Option<(&mut InFlight, u16, u8)> {
        let round = self.rounds.iter_mut().find(|r| r.index_of(seq).is_some())?;
        let i = round.index_of(seq)?;
        let k = round.relative(target)?;
        if i / u16::from(round.count) != u16::from(k) || round.outstanding & (1 << i) == 0 {
            return None;
        }
        Some((round, i, k))
    }

    /// A reply for `seq` from target `target` arrived at `now` (the kernel's receive
    /// time). Every reply within `timeout` teaches the target's RTT, late ones included,
    /// so a path that became slower soon gets deadlines that fit it again.
    pub fn on_reply(&mut self, seq: u16, target: u8, now: Instant) -> Reply {
        self.answer(seq, target, |started_at| now.saturating_since(started_at))
    }

    /// An answer for `seq` whose round-trip time the kernel measured (a TCP handshake:
    /// `tcpi_rtt`), so the time the loop took to hear of it does not count. Judged as
    /// if it had arrived `rtt` after the round started.
    pub fn on_measured_reply(&mut self, seq: u16, target: u8, rtt: Duration) -> Reply {
        self.answer(seq, target, |_| rtt)
    }

    fn answer(&mut self, seq: u16, target: u8, rtt: impl FnOnce(Instant) -> Duration) -> Reply {
        let Some((round, i, k)) = self.locate(seq, target) else {
            return Reply::Ignored;
        };
        let rtt = rtt(round.started_at);
        if round.started_at + rtt >= round.deadline {
            return Reply::Ignored;
        }
        round.outstanding &= !(1 << i);
        let reply = if round.reported {
            Reply::Late
        } else {
            let slot = &mut round.answers[usize::from(k)];
            *slot = Some(match *slot {
                Some(best) => best.min(rtt),
                None => rtt,
            });
            Reply::Answer
        };
        if let Some(est) = self.rtt.get_mut(usize::from(target)) {
            est.sample(rtt);
        }
        reply
    }

    /// A confirmation that target `target` is reachable, tied to no probe (the kernel
    /// confirmed the gateway's neighbour entry): it answers the target's first
    /// unresolved probe in every round in flight, each with the time since its start.
    pub fn on_target_reply(&mut self, target: u8, now: Instant) -> Reply {
        let seqs: heapless::Vec<u16, MAX_ROUNDS> = self
            .rounds
            .iter()
            .filter(|r| r.started_at <= now)
            .filter_map(|r| {
                let t = r.relative(target)?;
                let count = u16::from(r.count);
                (0..count)
                    .map(|k| u16::from(t) * count + k)
                    .find(|&i| i < 128 && r.outstanding & (1 << i) != 0)
                    .map(|i| r.first_seq.wrapping_add(i))
            })
            .collect();
        let mut best = Reply::Ignored;
        for seq in seqs {
            match self.on_reply(seq, target, now) {
                Reply::Answer => best = Reply::Answer,
                Reply::Late if best == Reply::Ignored => best = Reply::Late,
                _ => {}
            }
        }
        best
    }

    /// Sending `seq` failed (e.g. ENETUNREACH: no route in the WAN's table): the probe
    /// is lost now instead of at the deadline.
    pub fn on_error(&mut self, seq: u16, target: u8) {
        if let Some((round, i, _)) = self.locate(seq, target) {
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
            per_round: targets,
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
        assert!(s.on_reply(100, 0, at(20)).counted());
        assert!(s.on_reply(102, 2, at(35)).counted());
        assert!(s.finished(at(40)).is_none(), "target 1 still outstanding");
        assert!(s.on_reply(101, 1, at(50)).counted());
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
        assert!(
            !s.on_reply(1, 0, at(10)).counted(),
            "seq 1 was sent to target 1"
        );
        assert!(!s.on_reply(7, 0, at(10)).counted(), "never sent");
        assert!(s.on_reply(0, 0, at(10)).counted());
        assert!(!s.on_reply(0, 0, at(11)).counted(), "duplicate");
        assert_eq!(s.poll_at(&params), Some(at(1000)));
        assert!(s.finished(at(999)).is_none());
        let r = s.finished(at(1000)).expect("deadline");
        assert_eq!(r.as_slice(), &[Some(Duration::from_millis(10)), None]);
        assert!(
            !s.on_reply(1, 1, at(1001)).counted(),
            "stale: its round is over"
        );
    }

    #[test]
    fn a_measured_rtt_counts_whenever_the_loop_hears_of_it() {
        let mut s = Scheduler::new(0);
        let params = p(2, 1);
        s.start(at(0), &params);
        // The kernel measured 2.5 ms; the loop was busy and reads it at t=400.
        assert!(s
            .on_measured_reply(0, 0, Duration::from_micros(2500))
            .counted());
        assert!(
            !s.on_measured_reply(0, 0, Duration::from_millis(1))
                .counted(),
            "duplicate"
        );
        // A measurement beyond the timeout is a loss, like a late reply.
        assert!(!s
            .on_measured_reply(1, 1, Duration::from_millis(1000))
            .counted());
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
        assert!(s.on_reply(2, 0, at(30)).counted());
        assert!(s.on_reply(1, 0, at(40)).counted());
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
            per_round: 1,
            count: 1,
            timeout: Duration::from_secs(1),
            interval: Duration::from_millis(500),
        };
        s.start(at(0), &params); // seq 0, lost
        s.start(at(500), &params); // seq 1, answered fast
        assert!(s.on_reply(1, 0, at(510)).counted());
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
        assert!(s.on_reply(0, 1, at(5)).counted());
        assert!(s.on_reply(u16::MAX, 0, at(6)).counted());
        assert!(s.finished(at(6)).is_some());
    }

    #[test]
    fn a_confirmation_answers_the_target_in_every_round_in_flight() {
        let mut s = Scheduler::new(0);
        let params = Params {
            interval: Duration::from_millis(500),
            ..p(2, 1)
        };
        s.start(at(0), &params); // seqs 0, 1
        s.start(at(500), &params); // seqs 2, 3
        assert_eq!(s.on_target_reply(1, at(600)), Reply::Answer);
        assert_eq!(
            s.on_target_reply(1, at(610)),
            Reply::Ignored,
            "nothing left"
        );
        assert_eq!(
            s.on_target_reply(5, at(610)),
            Reply::Ignored,
            "no such target"
        );
        assert_eq!(
            s.finished(at(1000)).unwrap().as_slice(),
            &[None, Some(Duration::from_millis(600))]
        );
        assert_eq!(
            s.finished(at(1500)).unwrap().as_slice(),
            &[None, Some(Duration::from_millis(100))]
        );
        // After its round's timeout a confirmation is too late to count.
        s.start(at(2000), &params);
        assert_eq!(s.on_target_reply(0, at(3000)), Reply::Ignored);
    }

    #[test]
    fn partial_rounds_take_the_targets_in_turn() {
        let mut s = Scheduler::new(0);
        let params = Params {
            per_round: 1,
            ..p(3, 1)
        };
        let sent = s.start(at(0), &params);
        assert_eq!((sent.len(), sent[0].target, sent[0].seq), (1, 0, 0));
        assert!(s.on_reply(0, 0, at(10)).counted());
        let r = s.finished(at(10)).expect("answered");
        assert!(!r.complete());
        assert_eq!(
            r.iter().collect::<Vec<_>>(),
            vec![(0, Some(Duration::from_millis(10)))]
        );
        let sent = s.start(at(1000), &params);
        assert_eq!((sent[0].target, sent[0].seq), (1, 1));
        assert!(!s.on_reply(1, 0, at(1010)).counted(), "wrong target");
        let sent = s.start(at(2000), &params);
        assert_eq!(sent[0].target, 2);
        // The wrap-around: two per round of three.
        let mut s = Scheduler::new(0);
        let params = Params {
            per_round: 2,
            ..p(3, 1)
        };
        s.start(at(0), &params);
        let sent = s.start(at(1000), &params);
        let targets: Vec<u8> = sent.iter().map(|p| p.target).collect();
        assert_eq!(targets, vec![2, 0]);
        assert!(s.on_reply(sent[1].seq, 0, at(1020)).counted());
        assert!(s.finished(at(1000)).is_some(), "round at 0 timed out");
        let r = s.finished(at(2000)).expect("round at 1000 timed out");
        assert_eq!(
            r.iter().collect::<Vec<_>>(),
            vec![(2, None), (0, Some(Duration::from_millis(20)))]
        );
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
