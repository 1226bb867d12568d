//! How a lane takes its next batch. A transaction's fixed cost (its round trips, its commit)
//! outweighs a small batch's rows, and under load the batch is whatever arrived while the last
//! one was applied: a few messages. So a lane that finds more than one message waiting is
//! busy, and waits up to `linger` for its batch to fill; a lone message on an idle lane is
//! applied at once, so a quiet queue sees no delay.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::{Instant, timeout_at};

/// At most this many messages of a lane are applied in one transaction. At full speed the
/// batches come close to it (docs/queue-consumer-performance.md), so `consumer.prefetch` leaves
/// room for every lane's batch and the next one arriving.
pub const MAX_BATCH: usize = 128;

/// The lane's next batch, or `None` once the lane is closed and empty.
pub async fn next_batch<T>(rx: &mut mpsc::Receiver<T>, linger: Duration) -> Option<Vec<T>> {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    if rx.recv_many(&mut batch, MAX_BATCH).await == 0 {
        return None;
    }
    if batch.len() > 1 && !linger.is_zero() {
        let deadline = Instant::now() + linger;
        while batch.len() < MAX_BATCH {
            let room = MAX_BATCH - batch.len();
            match timeout_at(deadline, rx.recv_many(&mut batch, room)).await {
                Ok(received) if received > 0 => {}
                // The lane is closed (stopping: apply what is here now), or the time is up.
                _ => break,
            }
        }
    }
    Some(batch)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINGER: Duration = Duration::from_millis(100);

    fn lane() -> (mpsc::Sender<usize>, mpsc::Receiver<usize>) {
        mpsc::channel(4 * MAX_BATCH)
    }

    #[tokio::test(start_paused = true)]
    async fn a_lone_message_on_an_idle_lane_is_taken_at_once() {
        let (tx, mut rx) = lane();
        tx.send(1).await.unwrap();
        let started = Instant::now();
        assert_eq!(next_batch(&mut rx, LINGER).await, Some(vec![1]));
        assert_eq!(started.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn a_busy_lane_waits_for_what_arrives_within_the_linger() {
        let (tx, mut rx) = lane();
        tx.send(1).await.unwrap();
        tx.send(2).await.unwrap();
        let late = tx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(LINGER / 2).await;
            late.send(3).await.unwrap();
            tokio::time::sleep(LINGER).await;
            late.send(4).await.unwrap();
        });
        let started = Instant::now();
        assert_eq!(next_batch(&mut rx, LINGER).await, Some(vec![1, 2, 3]));
        assert_eq!(started.elapsed(), LINGER);
        assert_eq!(next_batch(&mut rx, LINGER).await, Some(vec![4]));
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_batch_is_taken_without_waiting() {
        let (tx, mut rx) = lane();
        for i in 0..MAX_BATCH + 3 {
            tx.send(i).await.unwrap();
        }
        let started = Instant::now();
        let batch = next_batch(&mut rx, LINGER).await.unwrap();
        assert_eq!(batch, (0..MAX_BATCH).collect::<Vec<_>>());
        assert_eq!(started.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn closing_the_lane_ends_the_wait_and_then_the_lane() {
        let (tx, mut rx) = lane();
        tx.send(1).await.unwrap();
        tx.send(2).await.unwrap();
        drop(tx);
        let started = Instant::now();
        assert_eq!(next_batch(&mut rx, LINGER).await, Some(vec![1, 2]));
        assert_eq!(started.elapsed(), Duration::ZERO);
        assert_eq!(next_batch(&mut rx, LINGER).await, None);
    }

    #[tokio::test(start_paused = true)]
    async fn no_linger_takes_what_is_there() {
        let (tx, mut rx) = lane();
        tx.send(1).await.unwrap();
        tx.send(2).await.unwrap();
        let started = Instant::now();
        assert_eq!(next_batch(&mut rx, Duration::ZERO).await, Some(vec![1, 2]));
        assert_eq!(started.elapsed(), Duration::ZERO);
    }
}
