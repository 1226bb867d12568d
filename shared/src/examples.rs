//! The examples the OpenAPI document shows for the main objects (`#[oai(example)]`): one
//! conversation and one message of the same exchange, with realistic values.

use chrono::{DateTime, Utc};
use poem_openapi::types::Example;
use uuid::Uuid;

use crate::conversations::{AgentSummary, Conversation, ConversationState, CustomerSummary};
use crate::ids::{AgentId, ConversationId, CustomerId, MessageId};
use crate::integrations::propagation::{SyncState, SyncStatus};
use crate::messages::{
    ContentType, Direction, Message, MessageStatus, Sender, SenderType, StatusTimes,
};

const CONVERSATION: Uuid = Uuid::from_u128(0x0193_7a2c_5e10_7c3a_9f2e_4b1d_8a6c_0001);
const AGENT: Uuid = Uuid::from_u128(0x0000_0000_0000_4000_8000_0000_0000_a001);

fn at(rfc3339: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(rfc3339)
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_default()
}

impl Example for Conversation {
    fn example() -> Self {
        Self {
            id: ConversationId(CONVERSATION),
            state: ConversationState::Active,
            channel: "whatsapp".into(),
            customer: CustomerSummary {
                id: CustomerId(Uuid::from_u128(0x0193_7a2c_5e0f_7b11_8c4d_2e6f_1a3b_0002)),
                display_name: "Ana Silva".into(),
                phone: Some("+351912345678".into()),
            },
            assignee: Some(AgentSummary {
                id: AgentId(AGENT),
                display_name: "Alex Agent".into(),
            }),
            state_manager_id: Some("sm-7f3e9a".into()),
            genesys_conversation_id: Some("c2b1f8e4-6d0a-4e57-9c1b-3f2a7d8e9b10".into()),
            close_reason: None,
            last_message_preview: Some("Restarted it, the DSL light keeps blinking".into()),
            created_at: at("2026-12-01T09:12:03Z"),
            updated_at: at("2026-12-01T09:14:41Z"),
            last_activity_at: at("2026-12-01T09:14:41Z"),
            closed_at: None,
            sync: Some(SyncStatus {
                state: SyncState::Synced,
                reason: None,
                at: at("2026-12-01T09:14:42Z"),
            }),
        }
    }
}

impl Example for Message {
    fn example() -> Self {
        Self {
            id: MessageId(Uuid::from_u128(0x0193_7a2e_0b44_7d02_a1c3_5e7f_9b2d_0003)),
            conversation_id: ConversationId(CONVERSATION),
            direction: Direction::Outbound,
            sender: Sender {
                kind: SenderType::Agent,
                agent_id: Some(AgentId(AGENT)),
            },
            content_type: ContentType::Text,
            text: "Can you restart the router and tell me which lights are on?".into(),
            template: None,
            media: None,
            status: MessageStatus::Delivered,
            status_times: StatusTimes {
                sent_at: Some(at("2026-12-01T09:13:05Z")),
                delivered_at: Some(at("2026-12-01T09:13:06Z")),
                read_at: None,
                failed_at: None,
            },
            failure_reason: None,
            external_id: Some("wamid.HBgMMzUxOTEyMzQ1Njc4FQIAERgSNUQ2".into()),
            created_at: at("2026-12-01T09:13:04Z"),
            updated_at: at("2026-12-01T09:13:06Z"),
        }
    }
}
