//! Stand-ins for the external HTTP services, so the development stack runs offline: each is a
//! real HTTP server, on a free local port in the one-process stack, or on fixed ports for
//! docker-compose (`dev stand-ins`).

pub mod transformer;
pub mod whatsapp;

use std::net::SocketAddr;

use anyhow::Context;
use poem::listener::TcpAcceptor;
use poem::{Endpoint, Server};

/// Serves `app` on `addr` (port 0: a free one) in the background; returns the bound address.
async fn serve(
    app: impl Endpoint + 'static,
    name: &'static str,
    addr: SocketAddr,
) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the stand-in {name} to {addr}"))?;
    let addr = listener.local_addr()?;
    let acceptor = TcpAcceptor::from_tokio(listener)?;
    tokio::spawn(async move {
        if let Err(err) = Server::new_with_acceptor(acceptor).run(app).await {
            tracing::error!(error = %err, "the stand-in {name} stopped");
        }
    });
    tracing::info!(%addr, "the stand-in {name} is listening");
    Ok(addr)
}
