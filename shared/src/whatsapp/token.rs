//! Access tokens encrypted at rest with ChaCha20-Poly1305 (RFC 8439).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};

use crate::ids::TenantId;
use crate::{Error, Result};

/// Encrypts and decrypts tenants' access tokens with the key from `whatsapp.token_key`. The
/// tenant id is the associated data: a ciphertext moved to another tenant's row fails to open.
#[derive(Clone)]
pub struct TokenCipher {
    cipher: ChaCha20Poly1305,
}

impl std::fmt::Debug for TokenCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenCipher(<key redacted>)")
    }
}

impl TokenCipher {
    pub fn new(key_base64: &SecretString) -> Result<Self> {
        let key: [u8; 32] = STANDARD
            .decode(key_base64.expose_secret().trim())
            .ok()
            .and_then(|k| k.try_into().ok())
            .ok_or_else(|| {
                Error::invalid("whatsapp.token_key", "must be 32 bytes, base64-encoded")
            })?;
        Ok(Self {
            cipher: ChaCha20Poly1305::new(&Key::from(key)),
        })
    }

    /// A fresh random nonce and the ciphertext.
    pub fn seal(&self, tenant: TenantId, token: &str) -> Result<([u8; 12], Vec<u8>)> {
        let mut nonce = [0u8; 12];
        rand::rng().fill_bytes(&mut nonce);
        let sealed = self
            .cipher
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: token.as_bytes(),
                    aad: tenant.0.as_bytes(),
                },
            )
            .map_err(|_| Error::internal(anyhow::anyhow!("token encryption failed")))?;
        Ok((nonce, sealed))
    }

    pub fn open(&self, tenant: TenantId, nonce: &[u8], sealed: &[u8]) -> Result<SecretString> {
        let nonce: [u8; 12] = nonce
            .try_into()
            .map_err(|_| Error::internal(anyhow::anyhow!("stored nonce has the wrong length")))?;
        let plain = self
            .cipher
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: sealed,
                    aad: tenant.0.as_bytes(),
                },
            )
            .map_err(|_| {
                Error::internal(anyhow::anyhow!(
                    "the stored access token does not decrypt with whatsapp.token_key (was the key changed?)"
                ))
            })?;
        let token = String::from_utf8(plain).map_err(|_| {
            Error::internal(anyhow::anyhow!("the stored access token is not UTF-8"))
        })?;
        Ok(SecretString::from(token))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cipher() -> TokenCipher {
        TokenCipher::new(&SecretString::from(STANDARD.encode([7u8; 32]))).unwrap()
    }

    #[test]
    fn a_token_opens_for_its_tenant_only() {
        let (a, b) = (
            TenantId(uuid::Uuid::new_v4()),
            TenantId(uuid::Uuid::new_v4()),
        );
        let (nonce, sealed) = cipher().seal(a, "EAAG-secret").unwrap();
        assert!(
            !sealed.windows(6).any(|w| w == b"EAAG-s"),
            "not in the clear"
        );
        assert_eq!(
            cipher().open(a, &nonce, &sealed).unwrap().expose_secret(),
            "EAAG-secret"
        );
        assert!(cipher().open(b, &nonce, &sealed).is_err());
        let other = TokenCipher::new(&SecretString::from(STANDARD.encode([8u8; 32]))).unwrap();
        assert!(other.open(a, &nonce, &sealed).is_err());
        let (nonce2, _) = cipher().seal(a, "EAAG-secret").unwrap();
        assert_ne!(nonce, nonce2, "a fresh nonce each time");
    }

    #[test]
    fn the_key_must_be_32_bytes_of_base64() {
        assert!(TokenCipher::new(&SecretString::from("short".to_string())).is_err());
        assert!(TokenCipher::new(&SecretString::from(STANDARD.encode([1u8; 16]))).is_err());
    }
}
