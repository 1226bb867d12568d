//! Stand-ins for the external HTTP services, so the development stack runs offline: each is a
//! real HTTP server on a free local port.

pub mod transformer;
pub mod whatsapp;
