//! Acknowledgements, batched: one `basic.ack` with `multiple` for every delivery that is
//! finished up to the oldest one still in work, instead of one frame per message.
//!
//! Lanes finish deliveries out of order, and a `multiple` ack covers every unsettled tag up to
//! the one it names, so it may only name a tag below the oldest delivery still in work. One
//! task owns that bookkeeping ([`Pending`]) and is the only one to settle on the channel, so
//! two acks can never cross. A delivery held up for long (retrying while Postgres is down)
//! must not hold back the acknowledgement of everything after it, which would use up the
//! prefetch window and stall the consumer: past [`Pending::HELD_BACK`] finished deliveries
//! behind it, they are acknowledged one by one.

use std::collections::BTreeSet;

use lapin::Channel;
use lapin::options::{BasicAckOptions, BasicNackOptions};
use tokio::sync::mpsc;

#[derive(Debug)]
enum Settle {
    /// Received and handed to a lane; not yet finished.
    Delivered(u64),
    /// Finished; to be acknowledged.
    Ack(u64),
    /// Back to the queue.
    Requeue(u64),
    /// Its channel is gone: nothing to settle, the broker redelivers it.
    Forget(u64),
}

/// Where the consumer reports what became of each delivery of one channel.
#[derive(Debug, Clone)]
pub struct Acks {
    tx: mpsc::UnboundedSender<Settle>,
}

impl Acks {
    /// The handle, and the task that settles on `channel` until every handle is dropped
    /// (then it acknowledges what is finished and ends).
    pub fn start(channel: Channel) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Self { tx }, tokio::spawn(settle(channel, rx)))
    }

    /// Call before handing the delivery on, so it counts as in work until it is settled.
    pub fn delivered(&self, tag: u64) {
        self.send(Settle::Delivered(tag));
    }

    pub fn ack(&self, tag: u64) {
        self.send(Settle::Ack(tag));
    }

    pub fn requeue(&self, tag: u64) {
        self.send(Settle::Requeue(tag));
    }

    pub fn forget(&self, tag: u64) {
        self.send(Settle::Forget(tag));
    }

    fn send(&self, settle: Settle) {
        // The task ends only when every handle is gone, so this cannot fail while `self` lives.
        let _ = self.tx.send(settle);
    }
}

/// What to send to the broker.
#[derive(Debug, PartialEq, Eq)]
enum Frame {
    /// `basic.ack` of this tag and, with `multiple`, every unsettled one below it.
    Ack {
        tag: u64,
        multiple: bool,
    },
    Requeue(u64),
}

/// The settling bookkeeping of one channel, apart from the channel, so it can be tested alone.
#[derive(Debug, Default)]
struct Pending {
    in_work: BTreeSet<u64>,
    finished: BTreeSet<u64>,
}

impl Pending {
    /// Finished deliveries kept waiting behind an older one still in work, at most.
    const HELD_BACK: usize = 256;

    fn apply(&mut self, settle: Settle, frames: &mut Vec<Frame>) {
        match settle {
            Settle::Delivered(tag) => {
                self.in_work.insert(tag);
            }
            Settle::Ack(tag) => {
                self.in_work.remove(&tag);
                self.finished.insert(tag);
            }
            Settle::Requeue(tag) => {
                self.in_work.remove(&tag);
                frames.push(Frame::Requeue(tag));
            }
            Settle::Forget(tag) => {
                self.in_work.remove(&tag);
            }
        }
    }

    /// The acks for what is finished: one `multiple` ack up to the oldest delivery in work, and
    /// single acks for those behind it when too many are (or when `all`, at the end).
    fn flush(&mut self, all: bool, frames: &mut Vec<Frame>) {
        let oldest_in_work = self.in_work.first().copied().unwrap_or(u64::MAX);
        let behind = self.finished.split_off(&oldest_in_work);
        if let Some(&last) = self.finished.last() {
            frames.push(Frame::Ack {
                tag: last,
                multiple: self.finished.len() > 1,
            });
        }
        self.finished = behind;
        if all || self.finished.len() > Self::HELD_BACK {
            frames.extend(
                std::mem::take(&mut self.finished)
                    .into_iter()
                    .map(|tag| Frame::Ack {
                        tag,
                        multiple: false,
                    }),
            );
        }
    }
}

async fn settle(channel: Channel, mut rx: mpsc::UnboundedReceiver<Settle>) {
    let mut pending = Pending::default();
    let mut received = Vec::with_capacity(1024);
    let mut frames = Vec::new();
    let mut broken = false;
    loop {
        let open = rx.recv_many(&mut received, 1024).await > 0;
        for settle in received.drain(..) {
            pending.apply(settle, &mut frames);
        }
        pending.flush(!open, &mut frames);
        for frame in frames.drain(..) {
            if broken {
                continue;
            }
            if let Err(err) = send(&channel, frame).await {
                // The channel is gone with its unsettled deliveries: the broker redelivers
                // them, and what was applied already is recognised by its event_id.
                tracing::warn!(error = %err, "settling deliveries failed; the broker will redeliver them");
                broken = true;
            }
        }
        if !open {
            return;
        }
    }
}

async fn send(channel: &Channel, frame: Frame) -> lapin::Result<()> {
    match frame {
        Frame::Ack { tag, multiple } => channel.basic_ack(tag, BasicAckOptions { multiple }).await,
        Frame::Requeue(tag) => {
            channel
                .basic_nack(
                    tag,
                    BasicNackOptions {
                        multiple: false,
                        requeue: true,
                    },
                )
                .await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(pending: &mut Pending, settles: Vec<Settle>) -> Vec<Frame> {
        let mut frames = Vec::new();
        for settle in settles {
            pending.apply(settle, &mut frames);
        }
        pending.flush(false, &mut frames);
        frames
    }

    #[test]
    fn deliveries_finished_in_order_are_acknowledged_with_one_multiple_ack() {
        let mut pending = Pending::default();
        let mut settles: Vec<Settle> = (1..=5).map(Settle::Delivered).collect();
        settles.extend((1..=5).map(Settle::Ack));
        assert_eq!(
            run(&mut pending, settles),
            vec![Frame::Ack {
                tag: 5,
                multiple: true
            }]
        );
        assert!(run(&mut pending, vec![]).is_empty());
    }

    #[test]
    fn an_ack_never_covers_a_delivery_still_in_work() {
        let mut pending = Pending::default();
        let mut settles: Vec<Settle> = (1..=6).map(Settle::Delivered).collect();
        settles.extend([1, 2, 4, 5].map(Settle::Ack));
        assert_eq!(
            run(&mut pending, settles),
            vec![Frame::Ack {
                tag: 2,
                multiple: true
            }]
        );
        // 3 finishes: 4 and 5, waiting behind it, go with it; 6 is still in work.
        assert_eq!(
            run(&mut pending, vec![Settle::Ack(3)]),
            vec![Frame::Ack {
                tag: 5,
                multiple: true
            }]
        );
        assert_eq!(
            run(&mut pending, vec![Settle::Ack(6)]),
            vec![Frame::Ack {
                tag: 6,
                multiple: false
            }]
        );
    }

    #[test]
    fn a_requeued_or_forgotten_delivery_does_not_hold_back_the_acks_after_it() {
        let mut pending = Pending::default();
        let mut settles: Vec<Settle> = (1..=4).map(Settle::Delivered).collect();
        settles.extend([Settle::Ack(2), Settle::Requeue(1), Settle::Ack(4)]);
        assert_eq!(
            run(&mut pending, settles),
            vec![
                Frame::Requeue(1),
                Frame::Ack {
                    tag: 2,
                    multiple: false
                }
            ]
        );
        assert_eq!(
            run(&mut pending, vec![Settle::Forget(3)]),
            vec![Frame::Ack {
                tag: 4,
                multiple: false
            }]
        );
    }

    #[test]
    fn a_delivery_stuck_in_work_does_not_hold_back_more_than_a_window_of_acks() {
        let mut pending = Pending::default();
        let last = Pending::HELD_BACK as u64 + 2;
        let mut settles: Vec<Settle> = (1..=last).map(Settle::Delivered).collect();
        settles.extend((2..last).map(Settle::Ack));
        assert!(run(&mut pending, settles).is_empty(), "1 is still in work");
        let frames = run(&mut pending, vec![Settle::Ack(last)]);
        assert_eq!(frames.len(), Pending::HELD_BACK + 1);
        assert!(frames.iter().all(|f| matches!(
            f,
            Frame::Ack {
                multiple: false,
                ..
            }
        )));
        // 1 finishes later and is acknowledged alone.
        assert_eq!(
            run(&mut pending, vec![Settle::Ack(1)]),
            vec![Frame::Ack {
                tag: 1,
                multiple: false
            }]
        );
    }

    #[test]
    fn at_the_end_every_finished_delivery_is_acknowledged() {
        let mut pending = Pending::default();
        let mut frames = Vec::new();
        for settle in [Settle::Delivered(1), Settle::Delivered(2), Settle::Ack(2)] {
            pending.apply(settle, &mut frames);
        }
        pending.flush(true, &mut frames);
        assert_eq!(
            frames,
            vec![Frame::Ack {
                tag: 2,
                multiple: false
            }]
        );
    }
}
