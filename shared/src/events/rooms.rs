//! Who must hear of an event: the Socket.IO rooms it is emitted to.
//!
//! `tenant:{id}` holds the tenant's supervisors and admins (they see everything);
//! `agent:{id}` an agent's own sockets; `queue:{tenant}` the agents who may take unassigned
//! waiting conversations; `conversation:{id}` the sockets that opened that conversation.
//! Emitting to several rooms at once reaches each socket once, however many it is in.

use std::fmt;

use serde::Deserialize;
use uuid::Uuid;

use super::Event;
use crate::conversations::ConversationState;
use crate::ids::{AgentId, ConversationId, TenantId};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Room {
    Tenant(TenantId),
    Agent(AgentId),
    Queue(TenantId),
    Conversation(ConversationId),
}

impl Room {
    /// How every conversation room's name starts.
    pub const CONVERSATION_PREFIX: &'static str = "conversation:";
}

impl fmt::Display for Room {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tenant(id) => write!(f, "tenant:{id}"),
            Self::Agent(id) => write!(f, "agent:{id}"),
            Self::Queue(id) => write!(f, "queue:{id}"),
            Self::Conversation(id) => write!(f, "conversation:{id}"),
        }
    }
}

/// The parts of an event payload that decide its audience.
#[derive(Deserialize)]
struct Payload {
    conversation: Option<ConversationRef>,
    previous: Option<Previous>,
}

#[derive(Deserialize)]
struct ConversationRef {
    id: Uuid,
    state: ConversationState,
    assignee: Option<AssigneeRef>,
}

#[derive(Deserialize)]
struct AssigneeRef {
    id: Uuid,
}

#[derive(Deserialize)]
struct Previous {
    assignee_id: Option<Uuid>,
    state: ConversationState,
}

/// The conversation an event is about, as it is after the change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subject {
    pub id: ConversationId,
    pub assignee: Option<AgentId>,
    pub state: ConversationState,
}

/// The conversation of a conversation or message event; `None` for any other event.
pub fn subject_of(event: &Event) -> Option<Subject> {
    let conversation = ConversationOnly::deserialize(&event.payload)
        .ok()?
        .conversation?;
    Some(Subject {
        id: ConversationId(conversation.id),
        assignee: conversation.assignee.map(|a| AgentId(a.id)),
        state: conversation.state,
    })
}

#[derive(Deserialize)]
struct ConversationOnly {
    conversation: Option<ConversationRef>,
}

fn queued(assignee: Option<Uuid>, state: ConversationState) -> bool {
    assignee.is_none() && state == ConversationState::Waiting
}

/// The rooms an event goes to: the tenant's supervisors always; for a conversation (or one of
/// its messages), whoever opened it, its assignee, the agent that just lost it, and the queue
/// while it is, or just stopped being, unassigned and waiting.
pub fn rooms_for(event: &Event) -> Vec<Room> {
    let mut rooms = vec![Room::Tenant(event.tenant_id)];
    let Ok(payload) = Payload::deserialize(&event.payload) else {
        return rooms;
    };
    let Some(conversation) = payload.conversation else {
        return rooms;
    };
    rooms.push(Room::Conversation(ConversationId(conversation.id)));
    let assignee = conversation.assignee.map(|a| a.id);
    if let Some(agent) = assignee {
        rooms.push(Room::Agent(AgentId(agent)));
    }
    let mut was_queued = false;
    if let Some(previous) = payload.previous {
        was_queued = queued(previous.assignee_id, previous.state);
        if let Some(agent) = previous.assignee_id
            && Some(agent) != assignee
        {
            rooms.push(Room::Agent(AgentId(agent)));
        }
    }
    if was_queued || queued(assignee, conversation.state) {
        rooms.push(Room::Queue(event.tenant_id));
    }
    rooms
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn event(payload: serde_json::Value) -> Event {
        Event {
            tenant_id: TenantId(Uuid::from_u128(1)),
            seq: 1,
            event_type: "conversation:updated".into(),
            payload,
            created_at: chrono::Utc::now(),
            traceparent: None,
        }
    }

    fn names(event: &Event) -> Vec<String> {
        rooms_for(event).iter().map(Room::to_string).collect()
    }

    const T: &str = "tenant:00000000-0000-0000-0000-000000000001";
    const Q: &str = "queue:00000000-0000-0000-0000-000000000001";
    const C: &str = "conversation:00000000-0000-0000-0000-00000000000c";
    const A: &str = "agent:00000000-0000-0000-0000-00000000000a";
    const B: &str = "agent:00000000-0000-0000-0000-00000000000b";
    const CONV: &str = "00000000-0000-0000-0000-00000000000c";
    const AGENT_A: &str = "00000000-0000-0000-0000-00000000000a";
    const AGENT_B: &str = "00000000-0000-0000-0000-00000000000b";

    #[test]
    fn a_new_unassigned_conversation_goes_to_the_queue() {
        let e = event(json!({"conversation": {"id": CONV, "state": "waiting", "assignee": null}}));
        assert_eq!(names(&e), [T, C, Q]);
    }

    #[test]
    fn an_assigned_conversation_goes_to_its_agent_only() {
        let e = event(
            json!({"conversation": {"id": CONV, "state": "active", "assignee": {"id": AGENT_A}}}),
        );
        assert_eq!(names(&e), [T, C, A]);
    }

    #[test]
    fn a_conversation_taken_from_the_queue_tells_the_queue_it_left() {
        let e = event(json!({
            "conversation": {"id": CONV, "state": "active", "assignee": {"id": AGENT_A}},
            "previous": {"assignee_id": null, "state": "waiting"},
        }));
        assert_eq!(names(&e), [T, C, A, Q]);
    }

    #[test]
    fn a_transfer_tells_both_agents() {
        let e = event(json!({
            "conversation": {"id": CONV, "state": "active", "assignee": {"id": AGENT_B}},
            "previous": {"assignee_id": AGENT_A, "state": "active"},
        }));
        assert_eq!(names(&e), [T, C, B, A]);
    }

    #[test]
    fn a_message_follows_its_conversation() {
        let mut e = event(json!({
            "message": {"id": "m"},
            "conversation": {"id": CONV, "state": "active", "assignee": {"id": AGENT_A}},
        }));
        e.event_type = "message:new".into();
        assert_eq!(names(&e), [T, C, A]);
    }

    #[test]
    fn the_subject_is_the_conversation_after_the_change() {
        let e = event(json!({
            "conversation": {"id": CONV, "state": "active", "assignee": {"id": AGENT_B}},
            "previous": {"assignee_id": AGENT_A, "state": "active"},
        }));
        let subject = subject_of(&e).unwrap();
        assert_eq!(subject.id.to_string(), CONV);
        assert_eq!(
            subject.assignee.map(|a| a.to_string()).as_deref(),
            Some(AGENT_B)
        );
        assert_eq!(subject.state, ConversationState::Active);
        assert_eq!(subject_of(&event(json!({"agent": {"id": AGENT_A}}))), None);
    }

    #[test]
    fn an_event_without_a_conversation_goes_to_supervisors_only() {
        assert_eq!(names(&event(json!({"agent": {"id": AGENT_A}}))), [T]);
        assert_eq!(names(&event(json!("not an object"))), [T]);
    }
}
