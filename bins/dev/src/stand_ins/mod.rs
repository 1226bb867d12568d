//! Stand-ins for the external HTTP services, so the development stack runs offline: each is a
//! real HTTP server on a free local port.

pub mod transformer;
pub mod whatsapp;

use std::net::SocketAddr;

use poem::listener::TcpAcceptor;
use poem::{Endpoint, Server};

/// Serves `app` on a free local port in the background; returns the address.
async fn serve(app: impl Endpoint + 'static, name: &'static str) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let acceptor = TcpAcceptor::from_tokio(listener)?;
    tokio::spawn(async move {
        if let Err(err) = Server::new_with_acceptor(acceptor).run(app).await {
            tracing::error!(error = %err, "the stand-in {name} stopped");
        }
    });
    Ok(addr)
}
