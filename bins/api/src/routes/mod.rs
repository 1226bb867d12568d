//! One module per resource, each holding only its `#[OpenApi]` impl and its wire types.

pub mod agents;
pub mod conversations;
pub mod health;

use poem_openapi::Tags;

#[derive(Debug, Tags)]
pub enum ApiTags {
    /// The conversation list and the actions on one conversation.
    Conversations,
    /// The tenant's agents.
    Agents,
}
