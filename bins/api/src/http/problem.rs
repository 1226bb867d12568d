//! `application/problem+json` (RFC 9457) responses, and the one mapping from domain errors.
//!
//! Every operation returns `Result<_, ApiError>`; [`From<Error>`] below is the only place a
//! domain error becomes a status code. Errors that never reach an operation (unknown route,
//! missing bearer token, unparsable body) are rewritten into the same shape by
//! [`problem_for_poem_error`], so clients parse one error format everywhere.

use poem::Response;
use poem::http::StatusCode;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object};
use portal_shared::Error;

pub const PROBLEM_JSON: &str = "application/problem+json";

/// A problem detail.
#[derive(Debug, Clone, Object)]
pub struct Problem {
    /// A URI naming the kind of problem.
    #[oai(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    #[oai(skip_serializing_if_is_none)]
    pub detail: Option<String>,
    /// For validation failures: each offending field and why.
    #[oai(skip_serializing_if_is_none)]
    pub errors: Option<Vec<ProblemField>>,
    /// For a refused status change: the status the object keeps.
    #[oai(skip_serializing_if_is_none)]
    pub current_status: Option<String>,
    /// For server errors: quote it to support; the logs carry the cause under this id.
    #[oai(skip_serializing_if_is_none)]
    pub error_id: Option<String>,
}

#[derive(Debug, Clone, Object)]
pub struct ProblemField {
    pub field: String,
    pub message: String,
    /// The rule broken, where a fixed set of rules applies (template parameters).
    #[oai(skip_serializing_if_is_none)]
    pub rule: Option<String>,
}

impl Problem {
    pub fn new(status: StatusCode, detail: Option<String>) -> Self {
        let title = status.canonical_reason().unwrap_or("Error").to_string();
        let slug = title.to_lowercase().replace(' ', "-");
        Self {
            kind: format!("https://agent-portal.dev/problems/{slug}"),
            title,
            status: status.as_u16(),
            detail,
            errors: None,
            current_status: None,
            error_id: None,
        }
    }

    fn with_fields(mut self, fields: Vec<ProblemField>) -> Self {
        self.errors = Some(fields);
        self
    }
}

/// The error responses every operation may give.
#[derive(Debug, ApiResponse)]
#[oai(bad_request_handler = "bad_request")]
pub enum ApiError {
    /// A parameter could not be parsed.
    #[oai(status = 400, content_type = "application/problem+json")]
    BadRequest(Json<Problem>),
    /// No valid bearer token.
    #[oai(status = 401, content_type = "application/problem+json")]
    Unauthorized(Json<Problem>, #[oai(header = "WWW-Authenticate")] String),
    /// Authenticated, but not allowed.
    #[oai(status = 403, content_type = "application/problem+json")]
    Forbidden(Json<Problem>),
    /// No such object, or not visible to the caller.
    #[oai(status = 404, content_type = "application/problem+json")]
    NotFound(Json<Problem>),
    /// The object's state does not allow this.
    #[oai(status = 409, content_type = "application/problem+json")]
    Conflict(Json<Problem>),
    /// The request is well-formed but invalid; `errors` lists each field.
    #[oai(status = 422, content_type = "application/problem+json")]
    Unprocessable(Json<Problem>),
    #[oai(status = 500, content_type = "application/problem+json")]
    Internal(Json<Problem>),
    /// A dependency is down; retry later.
    #[oai(status = 503, content_type = "application/problem+json")]
    Unavailable(Json<Problem>, #[oai(header = "Retry-After")] String),
}

pub type ApiResult<T> = Result<T, ApiError>;

impl From<Error> for ApiError {
    fn from(err: Error) -> Self {
        let problem = |status: StatusCode, detail: String| Json(Problem::new(status, Some(detail)));
        match err {
            Error::NotFound { resource } => Self::NotFound(problem(
                StatusCode::NOT_FOUND,
                format!("{resource} not found"),
            )),
            Error::Conflict(detail) | Error::Contention(detail) => {
                Self::Conflict(problem(StatusCode::CONFLICT, detail))
            }
            err @ Error::StatusConflict { current, .. } => {
                let mut p = Problem::new(StatusCode::CONFLICT, Some(err.to_string()));
                p.current_status = Some(current.to_string());
                Self::Conflict(Json(p))
            }
            Error::Validation(fields) => Self::Unprocessable(Json(
                Problem::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    Some("the request has invalid fields".into()),
                )
                .with_fields(
                    fields
                        .into_iter()
                        .map(|f| ProblemField {
                            field: f.field,
                            message: f.message,
                            rule: f.rule,
                        })
                        .collect(),
                ),
            )),
            Error::Unauthorized(detail) => Self::Unauthorized(
                problem(StatusCode::UNAUTHORIZED, detail),
                r#"Bearer error="invalid_token""#.to_string(),
            ),
            Error::Forbidden(detail) => Self::Forbidden(problem(StatusCode::FORBIDDEN, detail)),
            Error::Unavailable(detail) => {
                tracing::warn!(%detail, "answering 503");
                Self::Unavailable(
                    problem(StatusCode::SERVICE_UNAVAILABLE, detail),
                    "5".to_string(),
                )
            }
            Error::Internal(cause) => {
                let error_id = uuid::Uuid::new_v4().to_string();
                tracing::error!(%error_id, error = ?cause, "internal error");
                let mut p = Problem::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    Some("an unexpected error occurred".into()),
                );
                p.error_id = Some(error_id);
                Self::Internal(Json(p))
            }
        }
    }
}

/// The parameter that did not parse, if that is what went wrong.
fn unparsed_param(err: &poem::Error) -> Option<ProblemField> {
    err.downcast_ref::<poem_openapi::error::ParseParamError>()
        .map(|e| ProblemField {
            field: e.name.to_string(),
            message: e.reason.clone(),
            rule: None,
        })
}

/// Parameters that did not parse: a 400 naming the parameter.
fn bad_request(err: poem::Error) -> ApiError {
    let field = unparsed_param(&err);
    let mut problem = Problem::new(StatusCode::BAD_REQUEST, Some(err.to_string()));
    if let Some(field) = field {
        problem = problem.with_fields(vec![field]);
    }
    ApiError::BadRequest(Json(problem))
}

/// Turns any error that is not already a problem body into one, keeping its status.
pub async fn problem_for_poem_error(err: poem::Error) -> Response {
    let status = err.status();
    let detail = err.to_string();
    let field = unparsed_param(&err);
    let response = err.into_response();
    let is_problem = response
        .headers()
        .get(poem::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(PROBLEM_JSON.as_bytes()));
    if is_problem {
        return response;
    }
    let mut problem = Problem::new(status, (!detail.is_empty()).then_some(detail));
    if let Some(field) = field {
        problem = problem.with_fields(vec![field]);
    }
    let mut out = problem_response(problem);
    if status == StatusCode::UNAUTHORIZED {
        out.headers_mut().insert(
            poem::http::header::WWW_AUTHENTICATE,
            poem::http::HeaderValue::from_static("Bearer"),
        );
    }
    out
}

pub fn problem_response(problem: Problem) -> Response {
    let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = poem_openapi::types::ToJSON::to_json_string(&problem);
    Response::builder()
        .status(status)
        .content_type(PROBLEM_JSON)
        .body(body)
}
