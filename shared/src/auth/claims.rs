//! The JWT claims the Auth Service issues (see ARCHITECTURE.md, "Contracts").

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::agents::Role;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// The agent id.
    pub sub: Uuid,
    pub tenant_id: Uuid,
    /// Any of `agent`, `supervisor`, `admin`; unknown names are ignored.
    #[serde(default)]
    pub roles: Vec<String>,
    pub exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    pub iss: String,
    pub aud: Audience,
}

/// `aud` may be one string or an array of them (RFC 7519, section 4.1.3).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Claims {
    pub fn highest_role(&self) -> Option<Role> {
        self.roles.iter().filter_map(|r| Role::parse(r)).max()
    }
}
