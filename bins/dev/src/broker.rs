//! Whether the broker answers, without connecting to it: the queue consumer would otherwise
//! retry for ever, and development without RabbitMQ is normal.

use std::time::Duration;

use portal_shared::config::Settings;
use secrecy::ExposeSecret;

pub async fn reachable(settings: &Settings) -> bool {
    let Ok(uri) = settings.amqp.url.expose_secret().parse::<http::Uri>() else {
        return false;
    };
    let Some(host) = uri.host() else {
        return false;
    };
    let port = uri
        .port_u16()
        .unwrap_or(if uri.scheme_str() == Some("amqps") {
            5671
        } else {
            5672
        });
    matches!(
        tokio::time::timeout(
            Duration::from_secs(1),
            tokio::net::TcpStream::connect((host, port))
        )
        .await,
        Ok(Ok(_))
    )
}
