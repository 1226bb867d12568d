//! Logs and traces, set up once per binary.
//!
//! Logs are JSON lines in production (one object per event, carrying the fields of every span
//! it happened in, so a line inside a request has its `request_id` and `tenant_id`, and the
//! `trace_id` and `span_id` when traces are on) and human-readable in a terminal. Traces go to
//! an OpenTelemetry collector over OTLP when the standard `OTEL_EXPORTER_OTLP_ENDPOINT` is set
//! (and nowhere otherwise). One user action is one trace across the processes: the W3C
//! `traceparent` of incoming requests and RabbitMQ messages is continued, and the context of
//! the span that wrote an event or queued a message is stored with it
//! ([`current_traceparent`]), so the realtime emit joins the trace and the delivery attempt
//! links to it.

use std::collections::HashMap;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Subscriber;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormattedFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::{LogFormat, TelemetrySettings};

/// What goes into traces, whatever the log filter: every span at `info` and above.
const TRACE_FILTER: &str = "info";

/// Flushes pending spans when dropped; keep it alive for the life of `main`.
#[derive(Debug)]
pub struct TelemetryGuard {
    tracer_provider: Option<SdkTracerProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.tracer_provider.take()
            && let Err(err) = provider.shutdown()
        {
            eprintln!("flushing traces failed: {err}");
        }
    }
}

/// Installs the global subscriber. Call once, first thing in `main`.
pub fn init(
    service_name: &'static str,
    settings: &TelemetrySettings,
) -> anyhow::Result<TelemetryGuard> {
    let filter =
        EnvFilter::try_from_default_env().or_else(|_| EnvFilter::try_new(&settings.log_filter))?;
    let fmt_layer = match settings.log_format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .fmt_fields(JsonFields::new())
            .event_format(JsonLines)
            .with_filter(filter)
            .boxed(),
        LogFormat::Pretty => tracing_subscriber::fmt::layer()
            .compact()
            .with_filter(filter)
            .boxed(),
    };

    let tracer_provider = if std::env::var_os("OTEL_EXPORTER_OTLP_ENDPOINT").is_some() {
        // The exporter reads the standard OTEL_EXPORTER_OTLP_* variables itself.
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .build()?;
        // Beside these, OTEL_RESOURCE_ATTRIBUTES (the pod and namespace, from the chart).
        let resource = opentelemetry_sdk::Resource::builder()
            .with_service_name(service_name)
            .with_attribute(opentelemetry::KeyValue::new(
                "service.version",
                env!("CARGO_PKG_VERSION"),
            ))
            .build();
        Some(
            SdkTracerProvider::builder()
                .with_batch_exporter(exporter)
                .with_resource(resource)
                .build(),
        )
    } else {
        None
    };
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());

    // Quieter logs must not cut a trace short: spans have their own filter.
    let otel_layer = tracer_provider.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer(service_name))
            .with_filter(EnvFilter::new(TRACE_FILTER))
    });

    tracing_subscriber::registry()
        .with(fmt_layer)
        .with(otel_layer)
        .try_init()?;
    Ok(TelemetryGuard { tracer_provider })
}

/// The trace context carried by incoming W3C `traceparent`/`tracestate` headers.
pub fn extract_context(headers: &http::HeaderMap) -> opentelemetry::Context {
    TraceContextPropagator::new().extract(&opentelemetry_http::HeaderExtractor(headers))
}

/// The trace context carried by `traceparent`/`tracestate` in a message's headers (AMQP).
pub fn extract_context_from<'a>(
    headers: impl IntoIterator<Item = (&'a str, String)>,
) -> opentelemetry::Context {
    let carrier: std::collections::HashMap<String, String> = headers
        .into_iter()
        .filter(|(k, _)| {
            k.eq_ignore_ascii_case("traceparent") || k.eq_ignore_ascii_case("tracestate")
        })
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect();
    TraceContextPropagator::new().extract(&carrier)
}

/// The W3C `traceparent` of the current span, to store with what it causes later (an event, a
/// queued message); `None` when traces are off.
pub fn current_traceparent() -> Option<String> {
    let context = tracing::Span::current().context();
    if !context.span().span_context().is_valid() {
        return None;
    }
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&context, &mut carrier);
    carrier.remove("traceparent")
}

/// The trace context of a stored `traceparent` (see [`current_traceparent`]).
pub fn context_of(traceparent: &str) -> opentelemetry::Context {
    extract_context_from([("traceparent", traceparent.to_string())])
}

/// Adds the current span's trace context to an outgoing request's headers.
pub fn inject_context(headers: &mut http::HeaderMap) {
    let context = tracing::Span::current().context();
    TraceContextPropagator::new()
        .inject_context(&context, &mut opentelemetry_http::HeaderInjector(headers));
}

/// One JSON object per line: time, level, target, the fields of the spans the event happened
/// in (outermost first, so an inner span's value wins), the event's own fields, the innermost
/// span's name, and the trace and span ids when traces are on.
#[derive(Debug)]
struct JsonLines;

impl<S> FormatEvent<S, JsonFields> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, JsonFields>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        // First, before any span is looked at here: reading the context locks the span.
        let context = tracing::Span::current().context();
        let otel = context.span();
        let ids = otel.span_context();
        let meta = event.metadata();
        let mut line = serde_json::Map::new();
        line.insert(
            "timestamp".into(),
            chrono::Utc::now()
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
                .into(),
        );
        line.insert("level".into(), meta.level().as_str().into());
        line.insert("target".into(), meta.target().into());
        if let Some(scope) = ctx.event_scope() {
            let mut innermost = None;
            for span in scope.from_root() {
                if let Some(fields) = span.extensions().get::<FormattedFields<JsonFields>>()
                    && let Ok(serde_json::Value::Object(fields)) =
                        serde_json::from_str::<serde_json::Value>(&fields.fields)
                {
                    line.extend(fields.into_iter().filter(|(k, _)| !k.starts_with("otel.")));
                }
                innermost = Some(span.name());
            }
            if let Some(name) = innermost {
                line.insert("span".into(), name.into());
            }
        }
        event.record(&mut FieldsInto(&mut line));
        if ids.is_valid() {
            line.insert("trace_id".into(), ids.trace_id().to_string().into());
            line.insert("span_id".into(), ids.span_id().to_string().into());
        }
        let text = serde_json::to_string(&line).map_err(|_| std::fmt::Error)?;
        writeln!(writer, "{text}")
    }
}

struct FieldsInto<'a>(&'a mut serde_json::Map<String, serde_json::Value>);

impl tracing::field::Visit for FieldsInto<'_> {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_f64(&mut self, field: &tracing::field::Field, value: f64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_bool(&mut self, field: &tracing::field::Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().into(), format!("{value:?}").into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every line is one JSON object with the fields of its spans, the inner one winning.
    #[test]
    fn a_log_line_carries_the_fields_of_the_spans_it_happened_in() {
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
        let sink = lines.clone();
        let subscriber = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .fmt_fields(JsonFields::new())
                .event_format(JsonLines)
                .with_writer(move || Sink(sink.clone())),
        );
        tracing::subscriber::with_default(subscriber, || {
            let request =
                tracing::info_span!("http.request", request_id = "r-1", otel.kind = "server");
            let _request = request.enter();
            let repo = tracing::info_span!("list", tenant_id = "t-1");
            let _repo = repo.enter();
            tracing::info!(rows = 3_u64, "read");
        });
        let text = String::from_utf8(lines.lock().map(|l| l.clone()).unwrap_or_default())
            .unwrap_or_default();
        let line: serde_json::Value = serde_json::from_str(text.trim()).unwrap_or_default();
        assert_eq!(line["message"], "read");
        assert_eq!(line["rows"], 3);
        assert_eq!(line["request_id"], "r-1");
        assert_eq!(line["tenant_id"], "t-1");
        assert_eq!(line["span"], "list");
        assert_eq!(line["level"], "INFO");
        assert!(line.get("otel.kind").is_none(), "{line}");
        assert!(
            line.get("trace_id").is_none(),
            "no traces without an exporter: {line}"
        );
    }

    struct Sink(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if let Ok(mut lines) = self.0.lock() {
                lines.extend_from_slice(buf);
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
}
