//! The `whatsapp_accounts` table: one account per tenant, its access token encrypted.

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::Serialize;

use super::TokenCipher;
use crate::ids::TenantId;
use crate::tenancy::{Db, TenantTx};
use crate::{Error, FieldError, Result};

/// What the API shows of an account: never the token.
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, Serialize, poem_openapi::Object)]
#[oai(skip_serializing_if_is_none)]
pub struct AccountInfo {
    pub waba_id: String,
    pub phone_number_id: Option<String>,
    pub updated_at: DateTime<Utc>,
}

/// An account with its token decrypted, for calling WhatsApp.
#[derive(Debug, Clone)]
pub struct Account {
    pub waba_id: String,
    pub access_token: SecretString,
}

fn numeric_id(field: &str, value: &str, errors: &mut Vec<FieldError>) {
    if value.is_empty() || value.len() > 32 || !value.bytes().all(|b| b.is_ascii_digit()) {
        errors.push(FieldError::new(
            field,
            "must be WhatsApp's numeric id (1–32 digits)",
        ));
    }
}

/// Creates or replaces the transaction tenant's account.
pub async fn set(
    tx: &mut TenantTx,
    cipher: &TokenCipher,
    waba_id: &str,
    phone_number_id: Option<&str>,
    access_token: &str,
) -> Result<AccountInfo> {
    let mut errors = Vec::new();
    numeric_id("waba_id", waba_id, &mut errors);
    if let Some(id) = phone_number_id {
        numeric_id("phone_number_id", id, &mut errors);
    }
    if access_token.trim().is_empty() || access_token.chars().count() > 2048 {
        errors.push(FieldError::new("access_token", "must be 1–2048 characters"));
    }
    if !errors.is_empty() {
        return Err(Error::Validation(errors));
    }
    let tenant = tx.tenant_id();
    let (nonce, sealed) = cipher.seal(tenant, access_token)?;
    let row: (DateTime<Utc>,) = sqlx::query_as(
        "INSERT INTO whatsapp_accounts (tenant_id, waba_id, phone_number_id, token_nonce, token_ciphertext) \
         VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (tenant_id) DO UPDATE SET waba_id = EXCLUDED.waba_id, \
           phone_number_id = EXCLUDED.phone_number_id, token_nonce = EXCLUDED.token_nonce, \
           token_ciphertext = EXCLUDED.token_ciphertext, updated_at = now() \
         RETURNING updated_at",
    )
    .bind(tenant.0)
    .bind(waba_id)
    .bind(phone_number_id)
    .bind(&nonce[..])
    .bind(&sealed)
    .fetch_one(tx.conn())
    .await?;
    Ok(AccountInfo {
        waba_id: waba_id.to_string(),
        phone_number_id: phone_number_id.map(str::to_string),
        updated_at: row.0,
    })
}

pub async fn info(tx: &mut TenantTx) -> Result<Option<AccountInfo>> {
    let row: Option<(String, Option<String>, DateTime<Utc>)> = sqlx::query_as(
        "SELECT waba_id, phone_number_id, updated_at FROM whatsapp_accounts WHERE tenant_id = $1",
    )
    .bind(tx.tenant_id().0)
    .fetch_optional(tx.conn())
    .await?;
    Ok(
        row.map(|(waba_id, phone_number_id, updated_at)| AccountInfo {
            waba_id,
            phone_number_id,
            updated_at,
        }),
    )
}

/// The transaction tenant's account with its token decrypted.
pub async fn with_token(tx: &mut TenantTx, cipher: &TokenCipher) -> Result<Option<Account>> {
    let row: Option<(String, Vec<u8>, Vec<u8>)> = sqlx::query_as(
        "SELECT waba_id, token_nonce, token_ciphertext FROM whatsapp_accounts WHERE tenant_id = $1",
    )
    .bind(tx.tenant_id().0)
    .fetch_optional(tx.conn())
    .await?;
    row.map(|(waba_id, nonce, sealed)| {
        Ok(Account {
            waba_id,
            access_token: cipher.open(tx.tenant_id(), &nonce, &sealed)?,
        })
    })
    .transpose()
}

/// Every tenant with an account (a cross-tenant lookup through a narrow SECURITY DEFINER
/// function: template-sync must know whom to act as before it can act as anyone).
pub async fn tenants(db: &Db) -> Result<Vec<TenantId>> {
    let rows: Vec<(uuid::Uuid,)> =
        sqlx::query_as("SELECT tenant_id FROM whatsapp_account_tenants()")
            .fetch_all(db.pool())
            .await?;
    Ok(rows.into_iter().map(|(id,)| TenantId(id)).collect())
}
