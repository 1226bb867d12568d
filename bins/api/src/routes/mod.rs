//! One module per resource, each holding only its `#[OpenApi]` impl and its wire types.

pub mod admin;
pub mod agents;
pub mod conversations;
pub mod customers;
pub mod health;
pub mod messages;
pub mod templates;

use poem_openapi::Tags;

#[derive(Debug, Tags)]
pub enum ApiTags {
    /// The conversation list and the actions on one conversation.
    Conversations,
    /// History, sending, delivery status and search.
    Messages,
    /// The tenant's agents.
    Agents,
    /// WhatsApp message templates.
    Templates,
    /// Tenant settings (admins only).
    Admin,
    /// Customer profiles.
    Customers,
}
