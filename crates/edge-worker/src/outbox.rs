//! Clicks waiting to go onto the queue, shared by the requests an isolate serves at the same time.
//!
//! One queue send per click costs a subrequest per click (measured on workerd: about 120 µs of CPU per
//! click). Instead, an isolate has at most one *sender*: the request that recorded a click when there
//! was none. Its `wait_until` sends the waiting clicks, one queue message (a JSON array of up to
//! [`MAX_BATCH`] clicks) at a time, and lasts until the outbox is empty; clicks recorded meanwhile,
//! by any request, join the next message. Those requests need no `wait_until` of their own: a sender
//! never stops while a click waits, except to hand over to a newer one.
//!
//! Its lifetime is what a `wait_until` may rely on, so it is bounded: once a sender has served
//! [`SENDER_TERM_MS`] or made [`SENDER_TERM_SENDS`] sends, the next click recorded makes its own
//! request the sender, and the old one retires after its send in flight (well inside the 30 s the
//! runtime grants a `wait_until` after the response, and far below the subrequest limit of one
//! invocation). If no click comes, nothing new waits and the old sender empties the outbox. A send
//! still in flight after [`STALE_SEND_MS`] is presumed lost and its clicks are sent again by the current
//! sender (the API ignores click ids it already has).

use std::collections::VecDeque;

/// Most clicks in one queue message.
pub const MAX_BATCH: usize = 100;

/// Most bytes of one queue message's clicks (a queue message may hold 128 KB).
pub const MAX_BATCH_BYTES: usize = 96 * 1024;

/// After this long, a send still in flight is presumed lost and its clicks are sent again.
pub const STALE_SEND_MS: i64 = 10_000;

/// How long a sender lets clicks gather before a send that would not be full: one queue operation then
/// carries many clicks even when each send is quick, at the cost of this much delay before the queue.
pub const LINGER_MS: i64 = 20;

/// How often a sender looks again while an older sender's send is in flight.
pub const IN_FLIGHT_POLL_MS: i64 = 8;

/// After this long a sender hands over to the next request that records a click.
pub const SENDER_TERM_MS: i64 = 5_000;

/// After this many sends a sender hands over to the next request that records a click.
pub const SENDER_TERM_SENDS: u32 = 200;

/// Where a click is: waiting or on its way (`pending`), or gone (sent or given up).
#[derive(Debug, Default)]
pub struct Outbox {
    /// Clicks not yet confirmed sent, oldest first, with consecutive sequence numbers.
    pending: VecDeque<(u64, String)>,
    next_seq: u64,
    in_flight: Option<InFlight>,
    sender: Option<Sender>,
    next_sender: u64,
}

#[derive(Debug, Clone, Copy)]
struct Sender {
    id: u64,
    since_ms: i64,
    sends: u32,
    /// When it last started a send (or became the sender).
    last_send_ms: i64,
}

/// What a sender does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Send these clicks, then [`Outbox::finish`] them.
    Send(Send),
    /// Look again after this many milliseconds: clicks are gathering for a fuller send, or an older
    /// sender's send is in flight.
    Wait(i64),
    /// Nothing waits, or a newer sender took over: this one is done.
    Retire,
}

#[derive(Debug, Clone, Copy)]
struct InFlight {
    last_seq: u64,
    started_ms: i64,
}

/// A send the caller has just been put in charge of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Send {
    /// Sequence number of the batch's last click; hand it back to [`Outbox::finish`].
    pub last_seq: u64,
    /// The clicks (each a JSON object), oldest first.
    pub messages: Vec<String>,
}

impl Send {
    /// The queue message: the clicks as one JSON array.
    pub fn body(&self) -> String {
        let mut body = String::with_capacity(self.messages.iter().map(|m| m.len() + 1).sum::<usize>() + 1);
        body.push('[');
        for (i, message) in self.messages.iter().enumerate() {
            if i > 0 {
                body.push(',');
            }
            body.push_str(message);
        }
        body.push(']');
        body
    }
}

impl Outbox {
    /// Adds a click (its queue message). Returns a sender id when the caller must become the sender
    /// (there is none, or the current one has served its term): it then runs [`Outbox::next_step`]
    /// with that id, under a `wait_until`, until told to retire.
    pub fn push(&mut self, message: String, now_ms: i64) -> Option<u64> {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.pending.push_back((seq, message));
        let serving = self.sender.is_some_and(|s| now_ms - s.since_ms < SENDER_TERM_MS && s.sends < SENDER_TERM_SENDS);
        if serving {
            return None;
        }
        let id = self.next_sender;
        self.next_sender += 1;
        self.sender = Some(Sender { id, since_ms: now_ms, sends: 0, last_send_ms: now_ms });
        Some(id)
    }

    /// The next thing sender `id` does. A sender that is not the current one retires (after its own
    /// send in flight, which the caller finishes first); the current one retires once nothing waits.
    pub fn next_step(&mut self, id: u64, now_ms: i64) -> Step {
        let Some(sender) = self.sender.filter(|s| s.id == id) else {
            return Step::Retire;
        };
        if self.pending.is_empty() {
            self.sender = None;
            return Step::Retire;
        }
        let due = sender.last_send_ms + LINGER_MS;
        if self.pending.len() < MAX_BATCH && now_ms < due {
            return Step::Wait(due - now_ms);
        }
        match self.start(now_ms) {
            Some(send) => {
                self.sender = Some(Sender { sends: sender.sends + 1, last_send_ms: now_ms, ..sender });
                Step::Send(send)
            }
            None => Step::Wait(IN_FLIGHT_POLL_MS),
        }
    }

    /// Drops every waiting click, for sender `id` that cannot send at all (the queue binding is
    /// missing): nothing would ever take them, and they must not pile up. Returns how many there were.
    pub fn abandon(&mut self, id: u64) -> usize {
        if self.sender.is_none_or(|s| s.id != id) {
            return 0;
        }
        self.sender = None;
        self.in_flight = None;
        std::mem::take(&mut self.pending).len()
    }

    /// Puts the caller in charge of sending the oldest waiting clicks, unless a send is already under
    /// way (and not stale) or nothing waits.
    fn start(&mut self, now_ms: i64) -> Option<Send> {
        if self.in_flight.is_some_and(|f| now_ms - f.started_ms < STALE_SEND_MS) {
            return None;
        }
        let mut bytes = 0;
        let messages: Vec<String> = self
            .pending
            .iter()
            .take(MAX_BATCH)
            .take_while(|(_, m)| {
                bytes += m.len() + 1;
                // The first click always goes, whatever its size: it is far below the queue's limit.
                bytes == m.len() + 1 || bytes <= MAX_BATCH_BYTES
            })
            .map(|(_, m)| m.clone())
            .collect();
        let last_seq = self.pending.get(messages.len().checked_sub(1)?)?.0;
        self.in_flight = Some(InFlight { last_seq, started_ms: now_ms });
        Some(Send { last_seq, messages })
    }

    /// Ends the send of the clicks up to `last_seq`, whatever its outcome (the caller logs failures):
    /// they leave the outbox and the next send may start.
    pub fn finish(&mut self, last_seq: u64) {
        while self.pending.front().is_some_and(|(seq, _)| *seq <= last_seq) {
            self.pending.pop_front();
        }
        if self.in_flight.is_some_and(|f| f.last_seq == last_seq) {
            self.in_flight = None;
        }
    }

    /// How many clicks wait or are on their way.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether no click waits.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A moment `n` lingers after time zero.
    const fn at(n: i64) -> i64 {
        n * LINGER_MS
    }

    fn msg(n: u32) -> String {
        format!("click {n}")
    }

    fn sent(step: Step) -> Send {
        match step {
            Step::Send(send) => send,
            other => panic!("expected a send, got {other:?}"),
        }
    }

    #[test]
    fn a_lone_click_makes_its_request_the_sender() {
        let mut outbox = Outbox::default();
        let sender = outbox.push(msg(1), 0).expect("the first click's request sends");
        assert_eq!(outbox.next_step(sender, 5), Step::Wait(LINGER_MS - 5), "lets clicks gather first");
        let send = sent(outbox.next_step(sender, at(1)));
        assert_eq!(send.messages, [msg(1)]);
        outbox.finish(send.last_seq);
        assert!(outbox.is_empty());
        assert_eq!(outbox.next_step(sender, at(1)), Step::Retire);
        let next = outbox.push(msg(2), at(2)).expect("with the sender retired, the next click's request sends");
        assert_ne!(next, sender);
    }

    #[test]
    fn clicks_recorded_meanwhile_leave_together_in_the_next_send() {
        let mut outbox = Outbox::default();
        let sender = outbox.push(msg(1), 0).unwrap();
        assert_eq!(outbox.push(msg(2), 1), None, "covered by the sender: no wait_until of its own");
        let first = sent(outbox.next_step(sender, at(1)));
        assert_eq!(first.messages, [msg(1), msg(2)]);
        assert_eq!(outbox.push(msg(3), at(1) + 1), None);
        assert_eq!(outbox.push(msg(4), at(1) + 1), None);
        outbox.finish(first.last_seq);
        assert_eq!(outbox.next_step(sender, at(1) + 2), Step::Wait(LINGER_MS - 2));
        let next = sent(outbox.next_step(sender, at(2)));
        assert_eq!(next.messages, [msg(3), msg(4)]);
        outbox.finish(next.last_seq);
        assert_eq!(outbox.next_step(sender, at(2)), Step::Retire);
    }

    #[test]
    fn the_sender_never_retires_while_a_click_waits() {
        let mut outbox = Outbox::default();
        let sender = outbox.push(msg(0), 0).unwrap();
        for n in 1..50 {
            let send = sent(outbox.next_step(sender, at(n)));
            assert_eq!(outbox.push(msg(n as u32), at(n)), None);
            outbox.finish(send.last_seq);
        }
        let last = sent(outbox.next_step(sender, at(50)));
        assert_eq!(last.messages, [msg(49)]);
        outbox.finish(last.last_seq);
        assert_eq!(outbox.next_step(sender, at(50)), Step::Retire);
    }

    #[test]
    fn a_full_batch_goes_at_once_and_a_send_takes_at_most_one() {
        let mut outbox = Outbox::default();
        let sender = outbox.push(msg(0), 0).unwrap();
        for n in 1..250 {
            outbox.push(msg(n), 0);
        }
        let mut sizes = Vec::new();
        for now in [0, 0, at(1)] {
            let send = sent(outbox.next_step(sender, now));
            outbox.finish(send.last_seq);
            sizes.push(send.messages.len());
        }
        assert_eq!(sizes, [MAX_BATCH, MAX_BATCH, 50]);
        assert!(outbox.is_empty());
    }

    #[test]
    fn a_send_stays_under_the_queue_message_size() {
        let mut outbox = Outbox::default();
        let big = "x".repeat(30 * 1024);
        let sender = outbox.push(big.clone(), 0).unwrap();
        for _ in 0..4 {
            outbox.push(big.clone(), 0);
        }
        let send = sent(outbox.next_step(sender, at(1)));
        assert_eq!(send.messages.len(), 3);
        assert!(send.body().len() <= MAX_BATCH_BYTES + 2);
    }

    #[test]
    fn the_queue_message_is_a_json_array_of_the_clicks() {
        let send = Send { last_seq: 1, messages: vec![r#"{"a":1}"#.into(), r#"{"b":2}"#.into()] };
        assert_eq!(send.body(), r#"[{"a":1},{"b":2}]"#);
    }

    #[test]
    fn a_sender_hands_over_after_its_term_and_retires_after_its_send() {
        let mut outbox = Outbox::default();
        let old = outbox.push(msg(1), 0).unwrap();
        let in_flight = sent(outbox.next_step(old, at(1)));
        assert_eq!(outbox.push(msg(2), SENDER_TERM_MS - 1), None);
        let new = outbox.push(msg(3), SENDER_TERM_MS).expect("a term is over: this request takes over");
        let later = SENDER_TERM_MS + LINGER_MS;
        assert_eq!(outbox.next_step(new, later), Step::Wait(IN_FLIGHT_POLL_MS), "one send in flight at a time");
        outbox.finish(in_flight.last_seq);
        assert_eq!(outbox.next_step(old, later), Step::Retire, "clicks wait, but it was replaced");
        let next = sent(outbox.next_step(new, later));
        assert_eq!(next.messages, [msg(2), msg(3)]);
    }

    #[test]
    fn a_sender_hands_over_after_its_sends() {
        let mut outbox = Outbox::default();
        let sender = outbox.push(msg(0), 0).unwrap();
        for n in 1..=SENDER_TERM_SENDS {
            let send = sent(outbox.next_step(sender, i64::from(n) * LINGER_MS));
            outbox.finish(send.last_seq);
            let took_over = outbox.push(msg(n), i64::from(n) * LINGER_MS);
            assert_eq!(took_over.is_some(), n == SENDER_TERM_SENDS, "after send {n}");
        }
    }

    #[test]
    fn a_sender_that_cannot_send_drops_the_waiting_clicks() {
        let mut outbox = Outbox::default();
        let sender = outbox.push(msg(1), 0).unwrap();
        assert_eq!(outbox.abandon(sender + 1), 0, "only the current sender may");
        assert_eq!(outbox.abandon(sender), 1);
        assert!(outbox.is_empty());
        assert!(outbox.push(msg(2), 1).is_some());
    }

    #[test]
    fn a_lost_send_is_taken_over_and_its_clicks_sent_again() {
        let mut outbox = Outbox::default();
        let lost = outbox.push(msg(1), 0).unwrap();
        let lost_send = sent(outbox.next_step(lost, at(1)));
        // The sender's request vanished mid-send; the next click after its term takes over.
        let new = outbox.push(msg(2), SENDER_TERM_MS).unwrap();
        let stale = at(1) + STALE_SEND_MS;
        assert_eq!(outbox.next_step(new, stale - 1), Step::Wait(IN_FLIGHT_POLL_MS));
        let again = sent(outbox.next_step(new, stale));
        assert_eq!(again.messages, [msg(1), msg(2)]);
        // The lost send finishing late changes nothing for the one that took over.
        outbox.finish(lost_send.last_seq);
        assert_eq!(outbox.len(), 1);
        assert_eq!(outbox.next_step(new, stale + LINGER_MS), Step::Wait(IN_FLIGHT_POLL_MS), "still under way");
        outbox.finish(again.last_seq);
        assert!(outbox.is_empty());
        assert_eq!(outbox.next_step(new, stale + LINGER_MS), Step::Retire);
    }
}
