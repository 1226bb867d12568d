//! Demo data for development: one tenant with agents, customers and a few hundred
//! conversations, plus a small second tenant to show isolation. Loaded as the database owner by
//! the development stack (`bins/dev`) and by tests; never used by the services themselves.

use chrono::{Duration, Utc};
use sqlx::PgPool;
use uuid::Uuid;

/// Fixed ids, so demo tokens stay valid across reloads.
pub const TENANT: Uuid = Uuid::from_u128(0x0000_0000_0000_4000_8000_0000_0000_0001);
pub const OTHER_TENANT: Uuid = Uuid::from_u128(0x0000_0000_0000_4000_8000_0000_0000_0002);
pub const AGENT: Uuid = Uuid::from_u128(0x0000_0000_0000_4000_8000_0000_0000_a001);
pub const SUPERVISOR: Uuid = Uuid::from_u128(0x0000_0000_0000_4000_8000_0000_0000_a100);
pub const ADMIN: Uuid = Uuid::from_u128(0x0000_0000_0000_4000_8000_0000_0000_a200);

const FIRST: [&str; 12] = [
    "Ana", "Bruno", "Chloé", "Dmitri", "Emeka", "Fatima", "Grace", "Hiroshi", "Ingrid", "João",
    "Kwame", "Lucía",
];
const LAST: [&str; 10] = [
    "Silva", "Okafor", "Müller", "Nakamura", "García", "Smith", "Kowalski", "Haddad", "Nguyen",
    "Rossi",
];

/// Loads the demo data unless the demo tenant already exists. Returns whether it loaded.
/// Customer, reply, customer: a few conversations in the languages customers write in.
const EXCHANGES: [[&str; 3]; 5] = [
    [
        "Hi, my internet has been down since this morning",
        "Sorry to hear that! Can you restart the router and tell me which lights are on?",
        "Restarted it, the DSL light keeps blinking",
    ],
    [
        "Hola, quiero cambiar mi plan a fibra 600",
        "¡Claro! El cambio se hace hoy y sin coste. ¿Confirmo el pedido?",
        "Sí, confirmo el pedido, gracias",
    ],
    [
        "Bonjour, ma facture de ce mois est trop élevée",
        "Je regarde votre facture tout de suite.",
        "Merci, il y a des frais d'itinérance que je ne comprends pas",
    ],
    [
        "Olá, o meu telemóvel não tem rede desde ontem",
        "Vamos verificar a sua linha. Pode reiniciar o telemóvel?",
        "Já reiniciei e continua sem rede",
    ],
    [
        "I want to cancel my contract, I'm moving abroad",
        "We're sorry to see you go. I can help you with the cancellation and the final bill.",
        "Great, please send the final bill to my email",
    ],
];

pub async fn load(owner: &PgPool, conversations: usize) -> anyhow::Result<bool> {
    let mut tx = owner.begin().await?;
    // The demo tenant's released conversations go back to this queue in Genesys.
    let inserted = sqlx::query("INSERT INTO tenants (id, name, genesys_queue_id) VALUES ($1, 'Demo Telecom', 'demo-queue'), ($2, 'Other Company', NULL) ON CONFLICT DO NOTHING")
        .bind(TENANT)
        .bind(OTHER_TENANT)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if inserted == 0 {
        return Ok(false);
    }
    let mut agents = vec![
        (AGENT, "Alex Agent".to_string(), "agent"),
        (SUPERVISOR, "Sam Supervisor".to_string(), "supervisor"),
        (ADMIN, "Ada Admin".to_string(), "admin"),
    ];
    for i in 2..=8u128 {
        agents.push((
            Uuid::from_u128(0x0000_0000_0000_4000_8000_0000_0000_a000 + i),
            format!("{} {}", FIRST[i as usize], LAST[i as usize % LAST.len()]),
            "agent",
        ));
    }
    for (n, (id, name, role)) in agents.iter().enumerate() {
        sqlx::query("INSERT INTO agents (tenant_id, id, display_name, email, role, genesys_user_id) VALUES ($1, $2, $3, $4, $5::agent_role, $6)")
            .bind(TENANT)
            .bind(id)
            .bind(name)
            .bind(format!("{}@demo.example", name.to_lowercase().replace(' ', ".")))
            .bind(role)
            .bind(format!("genesys-user-{n}"))
            .execute(&mut *tx)
            .await?;
    }
    let now = Utc::now();
    let customer_count = (conversations * 3 / 4).max(1);
    let mut customers = Vec::with_capacity(customer_count);
    for i in 0..customer_count {
        let id = Uuid::now_v7();
        let name = format!(
            "{} {}",
            FIRST[i % FIRST.len()],
            LAST[(i / FIRST.len()) % LAST.len()]
        );
        let phone = format!("+4479460{:05}", 10_000 + i);
        sqlx::query("INSERT INTO customers (tenant_id, id, display_name, phone_e164, email, state_manager_id) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(TENANT)
            .bind(id)
            .bind(&name)
            .bind(&phone)
            .bind(format!("customer{i}@mail.example"))
            .bind(format!("sm-customer-{i:06}"))
            .execute(&mut *tx)
            .await?;
        customers.push(id);
    }
    for i in 0..conversations {
        let created = now - Duration::minutes((conversations - i) as i64 * 7 + 60);
        let activity = created + Duration::minutes(20 + (i % 50) as i64);
        let (state, assignee) = match i % 5 {
            0 | 1 => ("active", Some(agents[i % agents.len()].0)),
            2 => ("waiting", None),
            3 => ("waiting", Some(agents[i % agents.len()].0)),
            _ => ("closed", Some(agents[i % agents.len()].0)),
        };
        let exchange = EXCHANGES[i % EXCHANGES.len()];
        let conversation = Uuid::now_v7();
        sqlx::query(
            "INSERT INTO conversations (tenant_id, id, customer_id, state, assigned_agent_id, created_at, updated_at, \
             last_activity_at, closed_at, close_reason, genesys_conversation_id, last_message_preview, \
             state_manager_id) \
             VALUES ($1, $2, $3, $4::conversation_state, $5, $6, $7, $7, CASE WHEN $4 = 'closed' THEN $7 END, \
             CASE WHEN $4 = 'closed' THEN 'resolved' END, $8, $9, $10)",
        )
        .bind(TENANT)
        .bind(conversation)
        .bind(customers[i % customers.len()])
        .bind(state)
        .bind(assignee)
        .bind(created)
        .bind(activity)
        .bind(format!("gen-{i:06}"))
        .bind(exchange[2])
        .bind(format!("sm-conversation-{i:06}"))
        .execute(&mut *tx)
        .await?;
        // Customer, agent (or a bot while unassigned), customer; the reply was read.
        for (n, text) in exchange.iter().enumerate() {
            let at = activity - Duration::minutes(10 * (2 - n as i64));
            let (direction, sender, agent, status) = match (n, assignee) {
                (1, Some(agent)) => ("outbound", "agent", Some(agent), "read"),
                (1, None) => ("outbound", "system", None, "read"),
                _ => ("inbound", "customer", None, "delivered"),
            };
            sqlx::query(
                "INSERT INTO messages (tenant_id, id, conversation_id, direction, sender_type, sender_agent_id, \
                 content_type, body, status, sent_at, delivered_at, read_at, external_id, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4::message_direction, $5::message_sender, $6, 'text', $7, \
                 $8::message_status, $9, $9, CASE WHEN $8 = 'read' THEN $9 END, $10, $9, $9)",
            )
            .bind(TENANT)
            .bind(Uuid::now_v7())
            .bind(conversation)
            .bind(direction)
            .bind(sender)
            .bind(agent)
            .bind(*text)
            .bind(status)
            .bind(at)
            .bind(format!("wamid.demo.{i}.{n}"))
            .execute(&mut *tx)
            .await?;
        }
    }
    // The other tenant: one agent, one customer, one conversation, invisible to the demo tenant.
    let other_agent = Uuid::from_u128(0x0000_0000_0000_4000_8000_0000_0000_b001);
    let other_customer = Uuid::now_v7();
    sqlx::query("INSERT INTO agents (tenant_id, id, display_name, role) VALUES ($1, $2, 'Olga Other', 'supervisor')")
        .bind(OTHER_TENANT)
        .bind(other_agent)
        .execute(&mut *tx)
        .await?;
    sqlx::query("INSERT INTO customers (tenant_id, id, display_name, phone_e164) VALUES ($1, $2, 'Otto Outsider', '+15550001111')")
        .bind(OTHER_TENANT)
        .bind(other_customer)
        .execute(&mut *tx)
        .await?;
    sqlx::query("INSERT INTO conversations (tenant_id, id, customer_id) VALUES ($1, $2, $3)")
        .bind(OTHER_TENANT)
        .bind(Uuid::now_v7())
        .bind(other_customer)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(true)
}
