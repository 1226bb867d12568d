//! A tenant's WhatsApp Business Account, and the client of the WhatsApp Business Management API.

pub mod accounts;
pub mod graph;
mod token;

pub use accounts::{Account, AccountInfo};
pub use graph::{GraphClient, GraphError};
pub use token::TokenCipher;
