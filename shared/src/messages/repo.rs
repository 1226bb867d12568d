//! SQL for messages and their outbox. Like every repository, each function takes a
//! tenant-scoped transaction and names the tenant in its queries as well; the two exceptions
//! (claiming due outbox rows across tenants, reading the backlog) go through the narrow
//! SECURITY DEFINER functions of the messages migration.

use chrono::{DateTime, Utc};
use sqlx::{AssertSqlSafe, PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

use super::{
    ContentType, Direction, HistoryAnchor, HistoryCursor, HitConversation, MediaContent, Message,
    MessageStatus, SearchCursor, SearchHit, Sender, SenderType, StatusTimes, TemplateContent,
};
use crate::Result;
use crate::conversations::{ConversationState, CustomerSummary, Visibility};
use crate::ids::{AgentId, ConversationId, CustomerId, MessageId, TenantId};
use crate::tenancy::TenantTx;

/// The columns [`MessageRow`] reads, for a table aliased `m`.
const COLUMNS: &str = "m.id, m.conversation_id, m.direction, m.sender_type, m.sender_agent_id, \
    m.content_type, m.body, m.template_name, m.template_language, m.template_parameters, \
    m.media_url, m.media_mime_type, m.status, m.sent_at, m.delivered_at, m.read_at, m.failed_at, \
    m.failure_reason, m.external_id, m.created_at, m.updated_at";

#[derive(Debug, sqlx::FromRow)]
struct MessageRow {
    id: Uuid,
    conversation_id: Uuid,
    direction: Direction,
    sender_type: SenderType,
    sender_agent_id: Option<Uuid>,
    content_type: ContentType,
    body: String,
    template_name: Option<String>,
    template_language: Option<String>,
    template_parameters: Option<serde_json::Value>,
    media_url: Option<String>,
    media_mime_type: Option<String>,
    status: MessageStatus,
    sent_at: Option<DateTime<Utc>>,
    delivered_at: Option<DateTime<Utc>>,
    read_at: Option<DateTime<Utc>>,
    failed_at: Option<DateTime<Utc>>,
    failure_reason: Option<String>,
    external_id: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<MessageRow> for Message {
    fn from(r: MessageRow) -> Self {
        Self {
            id: MessageId(r.id),
            conversation_id: ConversationId(r.conversation_id),
            direction: r.direction,
            sender: Sender {
                kind: r.sender_type,
                agent_id: r.sender_agent_id.map(AgentId),
            },
            content_type: r.content_type,
            text: r.body,
            template: match (r.template_name, r.template_language) {
                (Some(name), Some(language)) => Some(TemplateContent {
                    name,
                    language,
                    parameters: r.template_parameters.unwrap_or(serde_json::Value::Null),
                }),
                _ => None,
            },
            media: r.media_url.map(|url| MediaContent {
                url,
                mime_type: r.media_mime_type,
            }),
            status: r.status,
            status_times: StatusTimes {
                sent_at: r.sent_at,
                delivered_at: r.delivered_at,
                read_at: r.read_at,
                failed_at: r.failed_at,
            },
            failure_reason: r.failure_reason,
            external_id: r.external_id,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// A message to store; the database fills in times and the search vector.
#[derive(Debug)]
pub(super) struct NewMessage<'a> {
    pub id: MessageId,
    pub conversation_id: ConversationId,
    pub direction: Direction,
    pub sender_type: SenderType,
    pub sender_agent_id: Option<AgentId>,
    pub content_type: ContentType,
    pub body: &'a str,
    pub template: Option<&'a TemplateContent>,
    pub status: MessageStatus,
    pub idempotency: Option<(&'a str, &'a [u8])>,
    /// Inbound messages arrive with their media, WhatsApp id and the time the customer sent them.
    pub media: Option<&'a MediaContent>,
    pub external_id: Option<&'a str>,
    pub sent_at: Option<DateTime<Utc>>,
}

/// Stores the message; `None` when another message already holds its idempotency key.
#[tracing::instrument(skip(tx, new), fields(otel.kind = "client", db.system = "postgresql", tenant_id = %tx.tenant_id()))]
pub(super) async fn insert(tx: &mut TenantTx, new: &NewMessage<'_>) -> Result<Option<Message>> {
    let tenant_id = tx.tenant_id().0;
    let sql = format!(
        "INSERT INTO messages AS m (tenant_id, id, conversation_id, direction, sender_type, \
             sender_agent_id, content_type, body, template_name, template_language, \
             template_parameters, status, idempotency_key, request_hash, media_url, \
             media_mime_type, external_id, sent_at, delivered_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, \
             CASE WHEN $12 = 'delivered'::message_status THEN now() END) \
         ON CONFLICT (tenant_id, sender_agent_id, idempotency_key) WHERE idempotency_key IS NOT NULL \
         DO NOTHING RETURNING {COLUMNS}"
    );
    let row: Option<MessageRow> = sqlx::query_as(AssertSqlSafe(sql))
        .bind(tenant_id)
        .bind(new.id.0)
        .bind(new.conversation_id.0)
        .bind(new.direction)
        .bind(new.sender_type)
        .bind(new.sender_agent_id.map(|a| a.0))
        .bind(new.content_type)
        .bind(new.body)
        .bind(new.template.map(|t| t.name.as_str()))
        .bind(new.template.map(|t| t.language.as_str()))
        .bind(new.template.map(|t| &t.parameters))
        .bind(new.status)
        .bind(new.idempotency.map(|(key, _)| key))
        .bind(new.idempotency.map(|(_, hash)| hash))
        .bind(new.media.map(|m| m.url.as_str()))
        .bind(new.media.and_then(|m| m.mime_type.as_deref()))
        .bind(new.external_id)
        .bind(new.sent_at)
        .fetch_optional(tx.conn())
        .await?;
    Ok(row.map(Into::into))
}

/// Stores customers' messages; one whose WhatsApp id is already stored is skipped (it is not
/// in the answer).
pub(super) async fn insert_inbound(
    tx: &mut TenantTx,
    new: &[NewMessage<'_>],
) -> Result<Vec<Message>> {
    let ids: Vec<Uuid> = new.iter().map(|m| m.id.0).collect();
    let conversations: Vec<Uuid> = new.iter().map(|m| m.conversation_id.0).collect();
    let content_types: Vec<ContentType> = new.iter().map(|m| m.content_type).collect();
    let bodies: Vec<&str> = new.iter().map(|m| m.body).collect();
    let media_urls: Vec<Option<&str>> = new
        .iter()
        .map(|m| m.media.map(|x| x.url.as_str()))
        .collect();
    let media_types: Vec<Option<&str>> = new
        .iter()
        .map(|m| m.media.and_then(|x| x.mime_type.as_deref()))
        .collect();
    let external_ids: Vec<Option<&str>> = new.iter().map(|m| m.external_id).collect();
    let sent_at: Vec<Option<DateTime<Utc>>> = new.iter().map(|m| m.sent_at).collect();
    let sql = format!(
        "INSERT INTO messages AS m (tenant_id, id, conversation_id, direction, sender_type, \
             content_type, body, media_url, media_mime_type, external_id, sent_at, status, delivered_at) \
         SELECT $1, u.id, u.conversation_id, 'inbound', 'customer', u.content_type, u.body, \
             u.media_url, u.media_mime_type, u.external_id, u.sent_at, 'delivered', now() \
         FROM unnest($2::uuid[], $3::uuid[], $4::message_content_type[], $5::text[], $6::text[], \
             $7::text[], $8::text[], $9::timestamptz[]) \
             AS u (id, conversation_id, content_type, body, media_url, media_mime_type, external_id, sent_at) \
         ON CONFLICT (tenant_id, external_id) WHERE external_id IS NOT NULL DO NOTHING \
         RETURNING {COLUMNS}"
    );
    let rows: Vec<MessageRow> = sqlx::query_as(AssertSqlSafe(sql))
        .bind(tx.tenant_id().0)
        .bind(ids)
        .bind(conversations)
        .bind(content_types)
        .bind(bodies)
        .bind(media_urls)
        .bind(media_types)
        .bind(external_ids)
        .bind(sent_at)
        .fetch_all(tx.conn())
        .await?;
    Ok(rows.into_iter().map(Into::into).collect())
}

/// One message; `lock` holds it until the transaction ends.
#[tracing::instrument(skip(tx), fields(otel.kind = "client", db.system = "postgresql", tenant_id = %tx.tenant_id()))]
pub(super) async fn find(tx: &mut TenantTx, id: MessageId, lock: bool) -> Result<Option<Message>> {
    let tenant_id = tx.tenant_id().0;
    let lock = if lock { " FOR UPDATE" } else { "" };
    let sql =
        format!("SELECT {COLUMNS} FROM messages m WHERE m.tenant_id = $1 AND m.id = $2{lock}");
    let row: Option<MessageRow> = sqlx::query_as(AssertSqlSafe(sql))
        .bind(tenant_id)
        .bind(id.0)
        .fetch_optional(tx.conn())
        .await?;
    Ok(row.map(Into::into))
}

/// The message WhatsApp knows by `external_id`, locked for update.
pub(super) async fn find_by_external_id(
    tx: &mut TenantTx,
    external_id: &str,
) -> Result<Option<Message>> {
    let id: Option<uuid::Uuid> =
        sqlx::query_scalar("SELECT id FROM messages WHERE tenant_id = $1 AND external_id = $2")
            .bind(tx.tenant_id().0)
            .bind(external_id)
            .fetch_optional(tx.conn())
            .await?;
    match id {
        Some(id) => find(tx, MessageId(id), true).await,
        None => Ok(None),
    }
}

/// The message an agent sent with this idempotency key, and the hash of that request.
#[tracing::instrument(skip(tx, key), fields(otel.kind = "client", db.system = "postgresql", tenant_id = %tx.tenant_id()))]
pub(super) async fn find_by_idempotency_key(
    tx: &mut TenantTx,
    agent: AgentId,
    key: &str,
) -> Result<Option<(Message, Vec<u8>)>> {
    #[derive(sqlx::FromRow)]
    struct Row {
        #[sqlx(flatten)]
        message: MessageRow,
        request_hash: Vec<u8>,
    }
    let tenant_id = tx.tenant_id().0;
    let sql = format!(
        "SELECT {COLUMNS}, m.request_hash FROM messages m \
         WHERE m.tenant_id = $1 AND m.sender_agent_id = $2 AND m.idempotency_key = $3"
    );
    let row: Option<Row> = sqlx::query_as(AssertSqlSafe(sql))
        .bind(tenant_id)
        .bind(agent.0)
        .bind(key)
        .fetch_optional(tx.conn())
        .await?;
    Ok(row.map(|r| (r.message.into(), r.request_hash)))
}

/// Up to `limit` messages next to the anchor, newest first, and whether more lie beyond them.
#[tracing::instrument(skip(tx), fields(otel.kind = "client", db.system = "postgresql", tenant_id = %tx.tenant_id()))]
pub(super) async fn history(
    tx: &mut TenantTx,
    conversation: ConversationId,
    anchor: HistoryAnchor,
    limit: u32,
) -> Result<(Vec<Message>, bool)> {
    let tenant_id = tx.tenant_id().0;
    let mut qb: QueryBuilder<Postgres> = QueryBuilder::new(format!(
        "SELECT {COLUMNS} FROM messages m WHERE m.tenant_id = "
    ));
    qb.push_bind(tenant_id)
        .push(" AND m.conversation_id = ")
        .push_bind(conversation.0);
    // Read from the anchor outwards, so the index range stops after `limit` rows.
    let order = match anchor {
        HistoryAnchor::Latest => "DESC",
        HistoryAnchor::Before(c) => {
            push_after(&mut qb, "<", c);
            "DESC"
        }
        HistoryAnchor::After(c) => {
            push_after(&mut qb, ">", c);
            "ASC"
        }
        HistoryAnchor::Between { after, before } => {
            push_after(&mut qb, ">", after);
            push_after(&mut qb, "<", before);
            "ASC"
        }
    };
    qb.push(format!(
        " ORDER BY m.created_at {order}, m.id {order} LIMIT "
    ))
    .push_bind(i64::from(limit) + 1);
    let rows: Vec<MessageRow> = qb.build_query_as().fetch_all(tx.conn()).await?;
    let more = rows.len() > limit as usize;
    let mut items: Vec<Message> = rows
        .into_iter()
        .take(limit as usize)
        .map(Into::into)
        .collect();
    // Read oldest-first from the anchor; pages are always newest first.
    if order == "ASC" {
        items.reverse();
    }
    Ok((items, more))
}

fn push_after(qb: &mut QueryBuilder<Postgres>, cmp: &str, cursor: HistoryCursor) {
    qb.push(format!(" AND (m.created_at, m.id) {cmp} ("))
        .push_bind(cursor.at)
        .push(", ")
        .push_bind(cursor.id.0)
        .push(")");
}

/// Whether the conversation has a message older (`newer` false) or newer than the cursor.
#[tracing::instrument(skip(tx), fields(otel.kind = "client", db.system = "postgresql", tenant_id = %tx.tenant_id()))]
pub(super) async fn exists_beyond(
    tx: &mut TenantTx,
    conversation: ConversationId,
    cursor: HistoryCursor,
    newer: bool,
) -> Result<bool> {
    let tenant_id = tx.tenant_id().0;
    let cmp = if newer { ">" } else { "<" };
    let sql = format!(
        "SELECT EXISTS (SELECT 1 FROM messages m WHERE m.tenant_id = $1 AND m.conversation_id = $2 \
         AND (m.created_at, m.id) {cmp} ($3, $4))"
    );
    Ok(sqlx::query_scalar(AssertSqlSafe(sql))
        .bind(tenant_id)
        .bind(conversation.0)
        .bind(cursor.at)
        .bind(cursor.id.0)
        .fetch_one(tx.conn())
        .await?)
}

/// Moves the status and stamps its time; a later status also stamps the earlier ones it
/// implies (a message read was delivered). Sets the external id if it was unknown and no
/// other message has it: a duplicate id from upstream must not make the status change fail
/// (the dispatcher would then deliver the message again and again).
#[tracing::instrument(skip(tx, failure_reason, external_id), fields(otel.kind = "client", db.system = "postgresql", tenant_id = %tx.tenant_id()))]
pub(super) async fn set_status(
    tx: &mut TenantTx,
    id: MessageId,
    status: MessageStatus,
    failure_reason: Option<&str>,
    external_id: Option<&str>,
) -> Result<()> {
    let tenant_id = tx.tenant_id().0;
    sqlx::query(
        "UPDATE messages SET status = $3, \
             sent_at = CASE WHEN $3 IN ('sent', 'delivered', 'read') THEN coalesce(sent_at, now()) ELSE sent_at END, \
             delivered_at = CASE WHEN $3 IN ('delivered', 'read') THEN coalesce(delivered_at, now()) ELSE delivered_at END, \
             read_at = CASE WHEN $3 = 'read' THEN coalesce(read_at, now()) ELSE read_at END, \
             failed_at = CASE WHEN $3 = 'failed' THEN now() ELSE failed_at END, \
             failure_reason = CASE WHEN $3 = 'failed' THEN $4 ELSE failure_reason END, \
             external_id = coalesce(external_id, CASE WHEN NOT EXISTS ( \
                 SELECT 1 FROM messages o WHERE o.tenant_id = $1 AND o.external_id = $5) THEN $5 END), \
             updated_at = now() \
         WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant_id)
    .bind(id.0)
    .bind(status)
    .bind(failure_reason)
    .bind(external_id)
    .execute(tx.conn())
    .await?;
    Ok(())
}

// --- search ---

#[derive(Debug, sqlx::FromRow)]
struct HitRow {
    #[sqlx(flatten)]
    message: MessageRow,
    rank: f32,
    snippet: String,
    state: ConversationState,
    customer_id: Uuid,
    customer_name: String,
    customer_phone: Option<String>,
    assigned_agent_id: Option<Uuid>,
}

/// Ranked matches of `query` the caller may see, best first, then newest first.
#[tracing::instrument(skip(tx, query), fields(otel.kind = "client", db.system = "postgresql", tenant_id = %tx.tenant_id()))]
pub(super) async fn search(
    tx: &mut TenantTx,
    visibility: Visibility,
    query: &str,
    conversation: Option<ConversationId>,
    after: Option<SearchCursor>,
    limit: u32,
) -> Result<(Vec<SearchHit>, bool)> {
    let tenant_id = tx.tenant_id().0;
    let mut qb: QueryBuilder<Postgres> = QueryBuilder::new(format!(
        "SELECT {COLUMNS}, p.rank, c.state, c.customer_id, cu.display_name AS customer_name, \
             cu.phone_e164 AS customer_phone, c.assigned_agent_id, \
             ts_headline('simple', translate(m.body, chr(2) || chr(3), ''), \
                 websearch_to_tsquery('simple', "
    ));
    // Matches are marked with two control characters (removed from the text first), and
    // the snippet is escaped and given its <mark> tags in Rust: see `html_snippet`.
    qb.push_bind(query).push(
        "), format('StartSel=%s, StopSel=%s, MaxWords=30, MinWords=12', chr(2), chr(3))) \
         AS snippet FROM (",
    );
    // The inner query picks the page; only its rows get the (costly) headline.
    qb.push("SELECT s.message_id, s.rank, m.created_at FROM search_messages(")
        .push_bind(query)
        .push(", ")
        .push_bind(conversation.map(|c| c.0))
        .push(") s JOIN messages m ON m.tenant_id = ")
        .push_bind(tenant_id)
        .push(
            " AND m.id = s.message_id \
             JOIN conversations c ON c.tenant_id = m.tenant_id AND c.id = m.conversation_id WHERE true",
        );
    if let Visibility::Agent(me) = visibility {
        qb.push(" AND (c.assigned_agent_id = ")
            .push_bind(me.0)
            .push(" OR (c.assigned_agent_id IS NULL AND c.state = 'waiting'))");
    }
    if let Some(after) = after {
        qb.push(" AND (s.rank, m.created_at, m.id) < (")
            .push_bind(after.rank)
            .push(", ")
            .push_bind(after.at)
            .push(", ")
            .push_bind(after.id.0)
            .push(")");
    }
    qb.push(" ORDER BY s.rank DESC, m.created_at DESC, m.id DESC LIMIT ")
        .push_bind(i64::from(limit) + 1)
        .push(") p JOIN messages m ON m.tenant_id = ")
        .push_bind(tenant_id)
        .push(
            " AND m.id = p.message_id \
             JOIN conversations c ON c.tenant_id = m.tenant_id AND c.id = m.conversation_id \
             JOIN customers cu ON cu.tenant_id = c.tenant_id AND cu.id = c.customer_id \
             ORDER BY p.rank DESC, p.created_at DESC, m.id DESC",
        );
    let rows: Vec<HitRow> = qb.build_query_as().fetch_all(tx.conn()).await?;
    let more = rows.len() > limit as usize;
    let hits = rows
        .into_iter()
        .take(limit as usize)
        .map(|r| SearchHit {
            conversation: HitConversation {
                id: ConversationId(r.message.conversation_id),
                state: r.state,
                customer: CustomerSummary {
                    id: CustomerId(r.customer_id),
                    display_name: r.customer_name,
                    phone: r.customer_phone,
                },
                assigned_agent_id: r.assigned_agent_id.map(AgentId),
            },
            message: r.message.into(),
            rank: r.rank,
            snippet: html_snippet(&r.snippet),
        })
        .collect();
    Ok((hits, more))
}

/// Escapes the headline for HTML and turns its match markers into `<mark>` tags, so the
/// portal can render it as HTML without trusting the customer's text.
fn html_snippet(headline: &str) -> String {
    let mut out = String::with_capacity(headline.len() + 32);
    for c in headline.chars() {
        match c {
            '\u{2}' => out.push_str("<mark>"),
            '\u{3}' => out.push_str("</mark>"),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

// --- outbox ---

/// A due outbox row this dispatcher now holds, until `lease_token` is replaced.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct Claim {
    pub tenant_id: Uuid,
    pub message_id: Uuid,
    /// Including this one.
    pub attempts: i32,
    pub lease_token: Uuid,
    /// The trace context of the request that queued it.
    pub traceparent: Option<String>,
}

impl Claim {
    /// The row this claim holds, for [`crate::outbox::release`] and [`crate::outbox::reschedule`].
    pub fn lease(&self) -> crate::outbox::Lease<Uuid> {
        crate::outbox::Lease {
            table: "message_outbox",
            key_column: "message_id",
            tenant_id: self.tenant_id,
            key: self.message_id,
            token: self.lease_token,
        }
    }

    pub fn tenant(&self) -> TenantId {
        TenantId(self.tenant_id)
    }

    pub fn message(&self) -> MessageId {
        MessageId(self.message_id)
    }
}

#[tracing::instrument(skip(tx), fields(otel.kind = "client", db.system = "postgresql", tenant_id = %tx.tenant_id()))]
pub(super) async fn enqueue(tx: &mut TenantTx, id: MessageId) -> Result<()> {
    let tenant_id = tx.tenant_id().0;
    sqlx::query(
        "INSERT INTO message_outbox (tenant_id, message_id, traceparent) VALUES ($1, $2, $3)",
    )
    .bind(tenant_id)
    .bind(id.0)
    .bind(crate::telemetry::current_traceparent())
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// Claims up to `batch` due rows of any tenant for `lease`.
pub(super) async fn claim(
    pool: &PgPool,
    batch: u32,
    lease: std::time::Duration,
) -> Result<Vec<Claim>> {
    Ok(sqlx::query_as(
        "SELECT tenant_id, message_id, attempts, lease_token, traceparent \
         FROM claim_message_outbox($1, make_interval(secs => $2))",
    )
    .bind(i32::try_from(batch).unwrap_or(i32::MAX))
    .bind(lease.as_secs_f64())
    .fetch_all(pool)
    .await?)
}

/// Messages waiting for delivery across all tenants, and the creation time of the oldest.
pub(super) async fn backlog(pool: &PgPool) -> Result<(i64, Option<DateTime<Utc>>)> {
    Ok(
        sqlx::query_as("SELECT waiting, oldest FROM message_outbox_backlog()")
            .fetch_one(pool)
            .await?,
    )
}

#[cfg(test)]
mod tests {
    use super::html_snippet;

    #[test]
    fn snippets_are_escaped_and_marked() {
        assert_eq!(
            html_snippet("<b>\u{2}refund\u{3}</b> & 'more'"),
            "&lt;b&gt;<mark>refund</mark>&lt;/b&gt; &amp; &#39;more&#39;"
        );
    }
}
