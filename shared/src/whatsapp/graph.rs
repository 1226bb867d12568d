//! The WhatsApp Business Management API (Meta's Graph API), as far as templates need it.
//!
//! `GET /{api-version}/{waba-id}/message_templates`, paged by `paging.cursors.after` while
//! `paging.next` is present. Meta signals throttling both as HTTP 429 and as HTTP 400 with a
//! throttling error code, sometimes with a hint of when to come back (`Retry-After`, or
//! `estimated_time_to_regain_access` in minutes in `X-Business-Use-Case-Usage`); those, 5xx
//! answers and timeouts are retried with exponential backoff up to `whatsapp.max_attempts`. An
//! invalid or expired token (error 190) is reported at once: no retry can fix it.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::config::WhatsappSettings;
use crate::{Error, Result};

/// Graph API error codes that mean "too many calls, come back later": 4 (application), 17
/// (user), 32 (page), 613 (custom rate limit), 80007/80008 (WhatsApp Business Account rate
/// limits), 130429 (Cloud API throughput).
const THROTTLING_CODES: [i64; 7] = [4, 17, 32, 613, 80007, 80008, 130429];
/// "Error validating access token": expired, revoked or malformed.
const INVALID_TOKEN_CODE: i64 = 190;
/// Templates per page (the API's maximum is higher; 100 keeps each answer small).
const PAGE_SIZE: u32 = 100;
const FIELDS: &str = "id,name,language,status,category,parameter_format,components,quality_score";

#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    #[error("the access token is invalid or expired (Graph API error 190): {0}")]
    InvalidToken(String),
    #[error("still throttled after {attempts} attempts: {message}")]
    Throttled { attempts: u32, message: String },
    #[error("WhatsApp unavailable after {attempts} attempts: {message}")]
    Unavailable { attempts: u32, message: String },
    #[error("WhatsApp refused the request ({status}, code {code}): {message}")]
    Rejected {
        status: u16,
        code: i64,
        message: String,
    },
    #[error("WhatsApp answered with malformed JSON: {0}")]
    Malformed(String),
    #[error("stopped before the last page")]
    Stopped,
}

#[derive(Debug, Clone)]
pub struct GraphClient {
    http: reqwest::Client,
    base_url: String,
    version: String,
    max_attempts: u32,
    backoff_initial: Duration,
    backoff_max: Duration,
}

/// One answer, classified.
enum Outcome {
    Page(Value),
    Retry {
        hint: Option<Duration>,
        throttled: bool,
        message: String,
    },
    Fail(GraphError),
}

impl GraphClient {
    pub fn new(settings: &WhatsappSettings) -> Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(settings.timeout_ms))
            .build()
            .map_err(Error::internal)?;
        Ok(Self {
            http,
            base_url: settings.api_base_url.trim_end_matches('/').to_string(),
            version: settings.api_version.clone(),
            max_attempts: settings.max_attempts,
            backoff_initial: Duration::from_millis(settings.backoff_initial_ms),
            backoff_max: Duration::from_millis(settings.backoff_max_ms),
        })
    }

    /// Every template of the account, all pages; stops between pages when `stop` fires.
    pub async fn templates(
        &self,
        waba_id: &str,
        token: &SecretString,
        stop: &CancellationToken,
    ) -> std::result::Result<Vec<Value>, GraphError> {
        let url = format!(
            "{}/{}/{waba_id}/message_templates",
            self.base_url, self.version
        );
        let mut templates = Vec::new();
        let mut after: Option<String> = None;
        loop {
            if stop.is_cancelled() {
                return Err(GraphError::Stopped);
            }
            let page = self.page(&url, token, after.as_deref(), stop).await?;
            let data = page
                .get("data")
                .and_then(Value::as_array)
                .ok_or_else(|| GraphError::Malformed("no `data` array in the answer".into()))?;
            templates.extend(data.iter().cloned());
            let next = page.pointer("/paging/next").and_then(Value::as_str);
            let cursor = page
                .pointer("/paging/cursors/after")
                .and_then(Value::as_str);
            match (next, cursor) {
                (Some(_), Some(cursor)) if !data.is_empty() => after = Some(cursor.to_string()),
                _ => return Ok(templates),
            }
        }
    }

    async fn page(
        &self,
        url: &str,
        token: &SecretString,
        after: Option<&str>,
        stop: &CancellationToken,
    ) -> std::result::Result<Value, GraphError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let limit = PAGE_SIZE.to_string();
            let mut params = vec![("limit", limit.as_str()), ("fields", FIELDS)];
            if let Some(after) = after {
                params.push(("after", after));
            }
            let url = reqwest::Url::parse_with_params(url, &params)
                .map_err(|e| GraphError::Malformed(format!("whatsapp.api_base_url: {e}")))?;
            let request = self.http.get(url).bearer_auth(token.expose_secret());
            let sent = tokio::select! {
                () = stop.cancelled() => return Err(GraphError::Stopped),
                sent = request.send() => sent,
            };
            let outcome = match sent {
                Ok(response) => classify(response).await,
                Err(err) => Outcome::Retry {
                    hint: None,
                    throttled: false,
                    message: without_url(&err),
                },
            };
            match outcome {
                Outcome::Page(page) => return Ok(page),
                Outcome::Fail(err) => return Err(err),
                Outcome::Retry {
                    hint,
                    throttled,
                    message,
                } => {
                    if attempt >= self.max_attempts {
                        return Err(if throttled {
                            GraphError::Throttled {
                                attempts: attempt,
                                message,
                            }
                        } else {
                            GraphError::Unavailable {
                                attempts: attempt,
                                message,
                            }
                        });
                    }
                    let wait = self.backoff(attempt, hint);
                    tracing::info!(attempt, wait_ms = wait.as_millis() as u64, %message, "WhatsApp: retrying");
                    tokio::select! {
                        () = stop.cancelled() => return Err(GraphError::Stopped),
                        () = tokio::time::sleep(wait) => {}
                    }
                }
            }
        }
    }

    /// Exponential backoff with equal jitter; a longer hint from WhatsApp wins, up to the maximum.
    fn backoff(&self, attempt: u32, hint: Option<Duration>) -> Duration {
        let jittered = crate::backoff::delay(self.backoff_initial, self.backoff_max, attempt);
        hint.map_or(jittered, |h| h.max(jittered))
            .min(self.backoff_max)
    }
}

/// The request error without its URL (it carries the account id and cursor; the token is in a
/// header, never in the URL).
fn without_url(err: &reqwest::Error) -> String {
    let kind = if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    format!("{kind}: {}", err.without_url_ref())
}

trait WithoutUrl {
    fn without_url_ref(&self) -> String;
}

impl WithoutUrl for reqwest::Error {
    fn without_url_ref(&self) -> String {
        let text = self.to_string();
        match self.url() {
            Some(url) => text.replace(url.as_str(), "<url>"),
            None => text,
        }
    }
}

async fn classify(response: reqwest::Response) -> Outcome {
    let status = response.status();
    let hint = retry_hint(response.headers());
    let body = match response.text().await {
        Ok(body) => body,
        Err(err) => {
            return Outcome::Retry {
                hint: None,
                throttled: false,
                message: without_url(&err),
            };
        }
    };
    let json: Option<Value> = serde_json::from_str(&body).ok();
    if status.is_success() {
        return match json {
            Some(page) => Outcome::Page(page),
            None => Outcome::Fail(GraphError::Malformed(format!(
                "HTTP {status}: {}",
                body.chars().take(200).collect::<String>()
            ))),
        };
    }
    let error = json.as_ref().and_then(|j| j.get("error"));
    let code = error
        .and_then(|e| e.get("code"))
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let message = error
        .and_then(|e| e.get("message"))
        .and_then(Value::as_str)
        .map_or_else(|| format!("HTTP {status}"), str::to_string);
    if code == INVALID_TOKEN_CODE {
        return Outcome::Fail(GraphError::InvalidToken(message));
    }
    if status == StatusCode::TOO_MANY_REQUESTS || THROTTLING_CODES.contains(&code) {
        return Outcome::Retry {
            hint,
            throttled: true,
            message,
        };
    }
    if status.is_server_error() || status == StatusCode::REQUEST_TIMEOUT {
        return Outcome::Retry {
            hint,
            throttled: false,
            message,
        };
    }
    Outcome::Fail(GraphError::Rejected {
        status: status.as_u16(),
        code,
        message,
    })
}

/// `Retry-After` (seconds), or the longest `estimated_time_to_regain_access` (minutes) in
/// `X-Business-Use-Case-Usage`.
fn retry_hint(headers: &HeaderMap) -> Option<Duration> {
    if let Some(secs) = headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
    {
        return Some(Duration::from_secs(secs));
    }
    let usage: Value =
        serde_json::from_str(headers.get("x-business-use-case-usage")?.to_str().ok()?).ok()?;
    usage
        .as_object()?
        .values()
        .filter_map(Value::as_array)
        .flatten()
        .filter_map(|u| {
            u.get("estimated_time_to_regain_access")
                .and_then(Value::as_u64)
        })
        .max()
        .filter(|m| *m > 0)
        .map(|minutes| Duration::from_secs(minutes * 60))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_retry_hint_comes_from_retry_after_or_the_usage_header() {
        let mut headers = HeaderMap::new();
        assert_eq!(retry_hint(&headers), None);
        headers.insert(
            "x-business-use-case-usage",
            r#"{"102":[{"type":"whatsapp_business_management","call_count":100,"estimated_time_to_regain_access":2}]}"#
                .parse()
                .unwrap(),
        );
        assert_eq!(retry_hint(&headers), Some(Duration::from_secs(120)));
        headers.insert("retry-after", "7".parse().unwrap());
        assert_eq!(retry_hint(&headers), Some(Duration::from_secs(7)));
    }
}
