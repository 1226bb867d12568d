//! Exponential backoff with "equal jitter": half of each step fixed, half random, so many
//! clients retrying together spread out and none retries at once. Every retry loop uses it:
//! deliveries to the transformer, WhatsApp requests, reconnecting to Redis and to the broker.

use std::time::Duration;

use rand::Rng;

/// The delay before retry number `attempt` (1 for the first): `initial` doubled per attempt up
/// to `max`, drawn from the upper half of that step.
pub fn delay(initial: Duration, max: Duration, attempt: u32) -> Duration {
    let step = initial
        .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)))
        .min(max);
    let half = step / 2;
    half + rand::rng().random_range(Duration::ZERO..=step - half)
}

/// A retry loop's state: [`Backoff::next_delay`] grows until [`Backoff::reset`].
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max,
            attempt: 0,
        }
    }

    pub fn next_delay(&mut self) -> Duration {
        self.attempt = self.attempt.saturating_add(1);
        delay(self.initial, self.max, self.attempt)
    }

    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_maximum_within_the_upper_half_of_each_step() {
        let (initial, max) = (Duration::from_millis(1000), Duration::from_millis(60_000));
        for (attempt, step) in [(1, 1000), (2, 2000), (3, 4000), (7, 60_000), (40, 60_000)] {
            for _ in 0..50 {
                let d = delay(initial, max, attempt).as_millis() as u64;
                assert!(
                    (step / 2..=step).contains(&d),
                    "attempt {attempt}: {d} ms not within [{}, {step}]",
                    step / 2
                );
            }
        }
    }

    #[test]
    fn a_reset_starts_again_from_the_first_step() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(10));
        for _ in 0..5 {
            backoff.next_delay();
        }
        assert!(backoff.next_delay() >= Duration::from_millis(1600));
        backoff.reset();
        assert!(backoff.next_delay() <= Duration::from_millis(100));
    }
}
