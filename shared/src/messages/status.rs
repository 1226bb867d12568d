//! The order of delivery statuses.
//!
//! Receipts arrive out of order (a `delivered` after its `read`) and twice, so a status is
//! only ever moved forward: pending → sent → delivered → read, and to failed only while the
//! message has not reached the customer (pending or sent). A later status implies the earlier
//! ones: a message read was also sent and delivered.

use super::MessageStatus;

/// What asking for `to` means for a message whose status is `from`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// A move forward: apply it.
    Forward,
    /// Already there: nothing to do.
    Same,
    /// Backwards or impossible (a late receipt): the current status stands.
    Refused,
}

pub fn transition(from: MessageStatus, to: MessageStatus) -> Transition {
    use MessageStatus::*;
    if from == to {
        return Transition::Same;
    }
    match (from, to) {
        (Pending | Sent, Failed) => Transition::Forward,
        (Failed, _) | (_, Failed) | (_, Pending) => Transition::Refused,
        _ if rank(to) > rank(from) => Transition::Forward,
        _ => Transition::Refused,
    }
}

fn rank(status: MessageStatus) -> u8 {
    match status {
        MessageStatus::Pending => 0,
        MessageStatus::Sent => 1,
        MessageStatus::Delivered => 2,
        MessageStatus::Read => 3,
        MessageStatus::Failed => 4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use MessageStatus::*;

    #[test]
    fn statuses_only_move_forward() {
        for (from, to, expected) in [
            (Pending, Sent, Transition::Forward),
            (Pending, Read, Transition::Forward),
            (Sent, Delivered, Transition::Forward),
            (Delivered, Read, Transition::Forward),
            (Read, Delivered, Transition::Refused),
            (Delivered, Sent, Transition::Refused),
            (Sent, Pending, Transition::Refused),
            (Read, Read, Transition::Same),
            (Pending, Failed, Transition::Forward),
            (Sent, Failed, Transition::Forward),
            (Delivered, Failed, Transition::Refused),
            (Read, Failed, Transition::Refused),
            (Failed, Sent, Transition::Refused),
            (Failed, Failed, Transition::Same),
        ] {
            assert_eq!(transition(from, to), expected, "{from:?} -> {to:?}");
        }
    }
}
