//! Presence as the realtime service keeps it: each connection in Redis while it lives (see
//! [`portal_shared::presence`]), and an agent's coming online or going offline pushed to the
//! tenant's supervisors as `agent:presence`, on every pod, through a Redis channel.

use std::time::Duration;

use portal_shared::events::Room;
use portal_shared::ids::{AgentId, TenantId};
use portal_shared::presence::Presence;
use portal_shared::tenancy::TenantCtx;
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};
use socketioxide::SocketIo;
use tokio_util::sync::CancellationToken;

use crate::session::Session;

/// An agent came online (its first connection on any pod) or went offline (its last).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PresenceChange {
    pub tenant_id: TenantId,
    pub agent_id: AgentId,
    pub online: bool,
}

#[derive(Debug, Clone)]
pub struct PresenceBoard {
    presence: Presence,
    redis: ConnectionManager,
    channel: String,
}

impl PresenceBoard {
    pub fn new(presence: Presence, redis: ConnectionManager, channel: String) -> Self {
        Self {
            presence,
            redis,
            channel,
        }
    }

    /// The agent's live connections on every pod; `None` while Redis does not answer.
    pub async fn live_connections(&self, ctx: &TenantCtx) -> Option<u64> {
        self.presence
            .live_connections(ctx.tenant_id(), ctx.agent_id())
            .await
            .ok()
    }

    pub async fn connected(&self, ctx: &TenantCtx, connection: &str) {
        match self
            .presence
            .connected(ctx.tenant_id(), ctx.agent_id(), connection)
            .await
        {
            Ok(true) => self.announce(ctx, true).await,
            Ok(false) => {}
            // Presence is advisory: the connection works without it, and the refresh loop
            // records it once Redis is back.
            Err(err) => tracing::debug!(error = %err, "presence not recorded"),
        }
    }

    pub async fn disconnected(&self, ctx: &TenantCtx, connection: &str) {
        match self
            .presence
            .disconnected(ctx.tenant_id(), ctx.agent_id(), connection)
            .await
        {
            Ok(true) => self.announce(ctx, false).await,
            Ok(false) => {}
            Err(err) => tracing::debug!(error = %err, "presence not removed (it expires)"),
        }
    }

    async fn announce(&self, ctx: &TenantCtx, online: bool) {
        let change = PresenceChange {
            tenant_id: ctx.tenant_id(),
            agent_id: ctx.agent_id(),
            online,
        };
        let Ok(json) = serde_json::to_string(&change) else {
            return;
        };
        let published = redis::cmd("PUBLISH")
            .arg(&self.channel)
            .arg(json)
            .query_async::<()>(&mut self.redis.clone())
            .await;
        if let Err(err) = published {
            tracing::debug!(error = %err, "presence change not published");
        }
    }

    /// Refreshes every live connection of this process well within the presence TTL.
    pub async fn refresh_loop(self, io: SocketIo, every: Duration, stop: CancellationToken) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            let connections: Vec<(TenantId, AgentId, String)> = io
                .sockets()
                .into_iter()
                .filter_map(|s| {
                    let session = s.extensions.get::<std::sync::Arc<Session>>()?;
                    Some((
                        session.ctx.tenant_id(),
                        session.ctx.agent_id(),
                        s.id.to_string(),
                    ))
                })
                .collect();
            for chunk in connections.chunks(1000) {
                if let Err(err) = self.presence.refresh(chunk).await {
                    tracing::warn!(error = %err, "presence refresh failed");
                    break;
                }
            }
        }
    }
}

/// Pushes a presence change to the tenant's supervisors connected here.
pub async fn push(io: &SocketIo, change: &PresenceChange) {
    let payload = serde_json::json!({ "agent_id": change.agent_id, "online": change.online });
    let room = Room::Tenant(change.tenant_id).to_string();
    if let Err(err) = io.to(room).emit("agent:presence", &payload).await {
        tracing::debug!(error = %err, "agent:presence not emitted");
    }
}
