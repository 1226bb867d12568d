//! `application/problem+json` (RFC 9457) responses, and the one mapping from domain errors.
//!
//! Every operation returns `Result<_, ApiError>`; [`From<Error>`] below is the only place a
//! domain error becomes a status code. Errors that never reach an operation (unknown route,
//! missing bearer token, unparsable body) are rewritten into the same shape by
//! [`problem_for_poem_error`], so clients parse one error format everywhere.

use poem::Response;
use poem::http::StatusCode;
use poem_openapi::error::{ParseParamError, ParseRequestPayloadError};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object};
use portal_shared::Error;

pub const PROBLEM_JSON: &str = "application/problem+json";

/// A problem detail.
#[derive(Debug, Clone, Object)]
#[oai(example)]
#[oai(skip_serializing_if_is_none)]
pub struct Problem {
    /// A URI naming the kind of problem.
    #[oai(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: Option<String>,
    /// For validation failures: each offending field and why.
    pub errors: Option<Vec<ProblemField>>,
    /// For a refused status change: the status the object keeps.
    pub current_status: Option<String>,
    /// For server errors: quote it to support; the logs carry the cause under this id.
    pub error_id: Option<String>,
}

impl poem_openapi::types::Example for Problem {
    fn example() -> Self {
        Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("the request has invalid fields".into()),
        )
        .with_fields(vec![ProblemField {
            field: "text".into(),
            message: "breaks the declared constraint maxLength(4096)".into(),
            rule: None,
        }])
    }
}

#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ProblemField {
    pub field: String,
    pub message: String,
    /// The rule broken, where a fixed set of rules applies (template parameters).
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
    /// The body is larger than `http.max_body_bytes`.
    #[oai(status = 413, content_type = "application/problem+json")]
    PayloadTooLarge(Json<Problem>),
    /// The body is not `application/json` (or `Content-Type` is missing).
    #[oai(status = 415, content_type = "application/problem+json")]
    UnsupportedMediaType(Json<Problem>),
    /// The request is well-formed but invalid; `errors` lists each field.
    #[oai(status = 422, content_type = "application/problem+json")]
    Unprocessable(Json<Problem>),
    /// Over the tenant's or the agent's rate limit: `Retry-After` says when to try again,
    /// `RateLimit` and `RateLimit-Policy` (IETF draft) which quota it was.
    #[oai(status = 429, content_type = "application/problem+json")]
    TooManyRequests(
        Json<Problem>,
        #[oai(header = "Retry-After")] String,
        #[oai(header = "RateLimit")] String,
        #[oai(header = "RateLimit-Policy")] String,
    ),
    /// A fault of ours; `error_id` finds the cause in the logs.
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
    err.downcast_ref::<ParseParamError>().map(|e| ProblemField {
        field: e.name.to_string(),
        message: e.reason.clone(),
        rule: None,
    })
}

/// A parameter or body field that parsed but breaks a constraint the document declares for it
/// (length, pattern, range). poem-openapi checks those while parsing and reports them in
/// words (``verification failed. maxLength(4096)``, after ``field `text` `` for a body field).
fn broken_constraint(err: &poem::Error) -> Option<ProblemField> {
    const MARK: &str = "verification failed. ";
    let (field, reason) = if let Some(e) = err.downcast_ref::<ParseParamError>() {
        (e.name.to_string(), e.reason.as_str())
    } else {
        let reason = err
            .downcast_ref::<ParseRequestPayloadError>()?
            .reason
            .as_str();
        let (_, rest) = reason.split_once("field `")?;
        let (field, _) = rest.split_once('`')?;
        (field.to_string(), rest)
    };
    let (_, rule) = reason.split_once(MARK)?;
    let rule = rule
        .split(" (occurred while parsing")
        .next()
        .unwrap_or(rule);
    Some(ProblemField {
        field,
        message: format!("breaks the declared constraint {rule}"),
        rule: None,
    })
}

/// A parameter or body that did not parse: a 400 naming the parameter; one that parsed but
/// breaks its declared constraint is a validation failure like any other (422).
fn parse_problem(err: &poem::Error) -> Problem {
    if let Some(field) = broken_constraint(err) {
        return Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("the request has invalid fields".into()),
        )
        .with_fields(vec![field]);
    }
    let problem = Problem::new(StatusCode::BAD_REQUEST, Some(err.to_string()));
    match unparsed_param(err) {
        Some(field) => problem.with_fields(vec![field]),
        None => problem,
    }
}

fn is_parse_error(err: &poem::Error) -> bool {
    err.is::<ParseParamError>() || err.is::<ParseRequestPayloadError>()
}

/// The operations' handler of parse errors.
fn bad_request(err: poem::Error) -> ApiError {
    let problem = parse_problem(&err);
    if problem.status == StatusCode::UNPROCESSABLE_ENTITY.as_u16() {
        ApiError::Unprocessable(Json(problem))
    } else {
        ApiError::BadRequest(Json(problem))
    }
}

/// Turns any error that is not already a problem body into one, keeping its status.
pub async fn problem_for_poem_error(err: poem::Error) -> Response {
    if is_parse_error(&err) {
        return problem_response(parse_problem(&err));
    }
    let status = err.status();
    let detail = err.to_string();
    let response = err.into_response();
    let is_problem = response
        .headers()
        .get(poem::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(PROBLEM_JSON.as_bytes()));
    if is_problem {
        return response;
    }
    let problem = Problem::new(status, (!detail.is_empty()).then_some(detail));
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
