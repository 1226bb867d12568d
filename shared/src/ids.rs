//! Identifier newtypes, so a tenant id cannot be passed where an agent id is expected.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, sqlx::Type, poem_openapi::NewType)]
        #[serde(transparent)]
        #[sqlx(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl From<Uuid> for $name {
            fn from(id: Uuid) -> Self {
                Self(id)
            }
        }
    };
}

id_type!(
    /// A company using the portal; every tenant-owned row carries one.
    TenantId
);
id_type!(
    /// A human agent (the JWT `sub`).
    AgentId
);
id_type!(
    /// A WhatsApp customer.
    CustomerId
);
id_type!(
    /// A conversation between a customer and the contact centre.
    ConversationId
);
id_type!(
    /// A message in a conversation; also the idempotency key of its delivery.
    MessageId
);
