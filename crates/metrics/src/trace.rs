//! Spans for OpenTelemetry traces: a JSON-RPC request and each method it calls, a block's
//! import with its execution, state root and commit, a consensus round. Until a tracer is
//! installed ([`install`], done for `--metrics-protocol=OPENTELEMETRY`) a span is nothing and
//! costs one atomic load.
//!
//! A finished span goes to a bounded queue (`OTEL_BSP_MAX_QUEUE_SIZE`; what does not fit is
//! dropped and counted) that the OTLP exporter empties in batches.

use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::trace::v1 as proto;
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::Notify;

/// Where a span comes from: its instrumentation scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// JSON-RPC requests and methods.
    JsonRpc,
    /// Block building, checking and import.
    Blocks,
    /// QBFT rounds.
    Qbft,
}

impl Scope {
    /// The scope's name in OTLP.
    pub fn name(self) -> &'static str {
        match self {
            Scope::JsonRpc => "consort.jsonrpc",
            Scope::Blocks => "consort.blocks",
            Scope::Qbft => "consort.qbft",
        }
    }
}

/// A span's identity, as W3C trace context carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpanContext {
    /// The trace.
    pub trace_id: [u8; 16],
    /// The span.
    pub span_id: [u8; 8],
    /// Whether the trace is recorded.
    pub sampled: bool,
}

impl SpanContext {
    /// Parses a `traceparent` header (`00-<trace id>-<span id>-<flags>`); `None` if it is not
    /// one, as the W3C recommendation says to treat an invalid header.
    pub fn from_traceparent(value: &str) -> Option<SpanContext> {
        let mut parts = value.trim().split('-');
        let version = parts.next()?;
        let (trace, span, flags) = (parts.next()?, parts.next()?, parts.next()?);
        if version.len() != 2 || version == "ff" || (version == "00" && parts.next().is_some()) {
            return None;
        }
        let trace_id: [u8; 16] = hex16(trace)?;
        let span_id: [u8; 8] = hex8(span)?;
        let flags = u8::from_str_radix(flags, 16)
            .ok()
            .filter(|_| flags.len() == 2)?;
        if trace_id == [0; 16] || span_id == [0; 8] {
            return None;
        }
        Some(SpanContext {
            trace_id,
            span_id,
            sampled: flags & 1 == 1,
        })
    }

    /// The `traceparent` header for this context.
    pub fn traceparent(&self) -> String {
        format!(
            "00-{}-{}-{:02x}",
            hex(&self.trace_id),
            hex(&self.span_id),
            u8::from(self.sampled)
        )
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != 2 * N
        || !s
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    {
        return None;
    }
    let mut out = [0u8; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

fn hex16(s: &str) -> Option<[u8; 16]> {
    unhex::<16>(s)
}

fn hex8(s: &str) -> Option<[u8; 8]> {
    unhex::<8>(s)
}

/// Which traces are recorded (`OTEL_TRACES_SAMPLER`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sampler {
    /// Every trace.
    AlwaysOn,
    /// None.
    AlwaysOff,
    /// This fraction of new traces, by trace id.
    Ratio(f64),
    /// A span with a parent follows the parent's decision; a root uses the inner sampler.
    ParentBased(Root),
}

/// The decision for root spans under [`Sampler::ParentBased`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Root {
    /// Every root.
    AlwaysOn,
    /// No root.
    AlwaysOff,
    /// This fraction of roots.
    Ratio(f64),
}

impl Sampler {
    fn samples(&self, parent: Option<&SpanContext>, trace_id: &[u8; 16]) -> bool {
        let ratio = |r: f64| {
            let mut low = [0u8; 8];
            low.copy_from_slice(trace_id.get(8..).unwrap_or(&[0; 8]));
            (u64::from_be_bytes(low) >> 1) as f64 / (u64::MAX >> 1) as f64 <= r
        };
        match (self, parent) {
            (Sampler::AlwaysOn, _) => true,
            (Sampler::AlwaysOff, _) => false,
            (Sampler::Ratio(r), _) => ratio(*r),
            (Sampler::ParentBased(_), Some(parent)) => parent.sampled,
            (Sampler::ParentBased(Root::AlwaysOn), None) => true,
            (Sampler::ParentBased(Root::AlwaysOff), None) => false,
            (Sampler::ParentBased(Root::Ratio(r)), None) => ratio(*r),
        }
    }
}

/// A span's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanKind {
    /// Work inside the node.
    Internal,
    /// A request the node serves.
    Server,
}

/// A finished span, waiting for export.
#[derive(Debug, Clone)]
pub(crate) struct Finished {
    pub(crate) scope: Scope,
    pub(crate) span: proto::Span,
}

/// Collects finished spans for the exporter.
#[derive(Debug)]
pub struct Tracer {
    sampler: Sampler,
    queue: Mutex<Vec<Finished>>,
    max_queue: usize,
    batch: usize,
    dropped: AtomicU64,
    pub(crate) ready: Notify,
}

impl Tracer {
    /// A tracer sampling by `sampler`, keeping at most `max_queue` spans for export and waking
    /// the exporter once `batch` are waiting.
    pub fn new(sampler: Sampler, max_queue: usize, batch: usize) -> Self {
        Tracer {
            sampler,
            queue: Mutex::new(Vec::new()),
            max_queue: max_queue.max(1),
            batch: batch.max(1),
            dropped: AtomicU64::new(0),
            ready: Notify::new(),
        }
    }

    fn push(&self, finished: Finished) {
        let Ok(mut queue) = self.queue.lock() else {
            return;
        };
        if queue.len() >= self.max_queue {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        queue.push(finished);
        if queue.len() >= self.batch {
            self.ready.notify_one();
        }
    }

    /// Takes up to one batch of finished spans.
    pub(crate) fn take_batch(&self) -> Vec<Finished> {
        let Ok(mut queue) = self.queue.lock() else {
            return Vec::new();
        };
        let n = queue.len().min(self.batch);
        queue.drain(..n).collect()
    }

    /// Spans dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

static TRACER: OnceLock<Arc<Tracer>> = OnceLock::new();

/// Makes `tracer` the process's tracer. The first one installed stays.
pub fn install(tracer: Arc<Tracer>) -> Arc<Tracer> {
    TRACER.get_or_init(|| tracer).clone()
}

fn tracer() -> Option<&'static Arc<Tracer>> {
    TRACER.get()
}

/// Whether spans are recorded at all.
pub fn enabled() -> bool {
    tracer().is_some()
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

thread_local! {
    /// The span that work on this thread belongs to, while one is entered.
    static CURRENT: Cell<Option<SpanContext>> = const { Cell::new(None) };
}

/// The context of the span entered on this thread, if any.
pub fn current() -> Option<SpanContext> {
    CURRENT.with(Cell::get)
}

/// While alive, a span is this thread's current one ([`Span::enter`]).
#[derive(Debug)]
pub struct Entered {
    previous: Option<SpanContext>,
}

impl Drop for Entered {
    fn drop(&mut self) {
        CURRENT.with(|c| c.set(self.previous));
    }
}

/// A span being recorded, or nothing. Ends when dropped.
#[derive(Debug, Default)]
pub struct Span {
    live: Option<Box<Live>>,
}

#[derive(Debug)]
struct Live {
    tracer: &'static Arc<Tracer>,
    scope: Scope,
    context: SpanContext,
    parent: Option<[u8; 8]>,
    name: String,
    kind: SpanKind,
    start: u64,
    attributes: Vec<KeyValue>,
    error: Option<String>,
}

/// A value of a span attribute.
#[derive(Debug, Clone)]
pub enum Value {
    /// Text.
    Str(String),
    /// An integer.
    Int(i64),
    /// A flag.
    Bool(bool),
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Str(v.to_string())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Str(v)
    }
}
impl From<u64> for Value {
    fn from(v: u64) -> Self {
        Value::Int(i64::try_from(v).unwrap_or(i64::MAX))
    }
}
impl From<usize> for Value {
    fn from(v: usize) -> Self {
        Value::Int(i64::try_from(v).unwrap_or(i64::MAX))
    }
}
impl From<u32> for Value {
    fn from(v: u32) -> Self {
        Value::Int(i64::from(v))
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}

fn key_value(key: &str, value: Value) -> KeyValue {
    let value = match value {
        Value::Str(s) => any_value::Value::StringValue(s),
        Value::Int(i) => any_value::Value::IntValue(i),
        Value::Bool(b) => any_value::Value::BoolValue(b),
    };
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

impl Span {
    /// A span that records nothing.
    pub fn none() -> Span {
        Span { live: None }
    }

    /// Starts a span: a child of `parent` when given (a remote parent from `traceparent`, or a
    /// span of this node), else the root of a new trace.
    pub fn start(
        scope: Scope,
        name: impl Into<String>,
        kind: SpanKind,
        parent: Option<SpanContext>,
    ) -> Span {
        let Some(tracer) = tracer() else {
            return Span::none();
        };
        let trace_id = match &parent {
            Some(p) => p.trace_id,
            None => rand::random(),
        };
        if !tracer.sampler.samples(parent.as_ref(), &trace_id) {
            return Span::none();
        }
        let mut span_id: [u8; 8] = rand::random();
        if span_id == [0; 8] {
            span_id = [1; 8];
        }
        Span {
            live: Some(Box::new(Live {
                tracer,
                scope,
                context: SpanContext {
                    trace_id,
                    span_id,
                    sampled: true,
                },
                parent: parent.map(|p| p.span_id),
                name: name.into(),
                kind,
                start: now_ns(),
                attributes: Vec::new(),
                error: None,
            })),
        }
    }

    /// A new internal span under this thread's current span; nothing when there is none.
    pub fn in_current(scope: Scope, name: impl Into<String>) -> Span {
        match current() {
            Some(parent) => Span::start(scope, name, SpanKind::Internal, Some(parent)),
            None => Span::none(),
        }
    }

    /// Makes this span the thread's current one until the guard is dropped (a span that
    /// records nothing leaves the current one as it is).
    pub fn enter(&self) -> Entered {
        let previous = current();
        if let Some(context) = self.context() {
            CURRENT.with(|c| c.set(Some(context)));
        }
        Entered { previous }
    }

    /// A new internal span under this one (nothing if this one records nothing).
    pub fn child(&self, name: impl Into<String>) -> Span {
        match &self.live {
            Some(live) => Span::start(live.scope, name, SpanKind::Internal, Some(live.context)),
            None => Span::none(),
        }
    }

    /// Like [`Span::child`], in another scope.
    pub fn child_in(&self, scope: Scope, name: impl Into<String>) -> Span {
        match &self.live {
            Some(live) => Span::start(scope, name, SpanKind::Internal, Some(live.context)),
            None => Span::none(),
        }
    }

    /// This span's context, for children elsewhere; `None` if it records nothing.
    pub fn context(&self) -> Option<SpanContext> {
        self.live.as_ref().map(|l| l.context)
    }

    /// Whether the span is recorded.
    pub fn is_recording(&self) -> bool {
        self.live.is_some()
    }

    /// Sets an attribute.
    pub fn set(&mut self, key: &'static str, value: impl Into<Value>) {
        if let Some(live) = &mut self.live {
            live.attributes.push(key_value(key, value.into()));
        }
    }

    /// Marks the span failed, with `description`.
    pub fn fail(&mut self, description: impl Into<String>) {
        if let Some(live) = &mut self.live {
            live.error = Some(description.into());
        }
    }

    /// Ends the span now (dropping it does the same).
    pub fn end(self) {}
}

impl Drop for Span {
    fn drop(&mut self) {
        let Some(live) = self.live.take() else {
            return;
        };
        let live = *live;
        let status = proto::Status {
            message: live.error.clone().unwrap_or_default(),
            code: if live.error.is_some() {
                proto::status::StatusCode::Error as i32
            } else {
                proto::status::StatusCode::Unset as i32
            },
        };
        let span = proto::Span {
            trace_id: live.context.trace_id.to_vec(),
            span_id: live.context.span_id.to_vec(),
            parent_span_id: live.parent.map(|p| p.to_vec()).unwrap_or_default(),
            name: live.name,
            kind: match live.kind {
                SpanKind::Internal => proto::span::SpanKind::Internal as i32,
                SpanKind::Server => proto::span::SpanKind::Server as i32,
            },
            start_time_unix_nano: live.start,
            end_time_unix_nano: now_ns().max(live.start),
            attributes: live.attributes,
            status: Some(status),
            ..Default::default()
        };
        live.tracer.push(Finished {
            scope: live.scope,
            span,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_round_trips_and_invalid_headers_are_ignored() {
        let header = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let ctx = SpanContext::from_traceparent(header).unwrap();
        assert!(ctx.sampled);
        assert_eq!(
            ctx.span_id,
            [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7]
        );
        assert_eq!(ctx.traceparent(), header);
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        ] {
            assert_eq!(SpanContext::from_traceparent(bad), None, "{bad}");
        }
        // A later version may add fields.
        assert!(SpanContext::from_traceparent(
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-more"
        )
        .is_some_and(|c| !c.sampled));
    }

    #[test]
    fn parent_based_sampling_follows_the_parent() {
        let id = [7u8; 16];
        let sampled = SpanContext {
            trace_id: id,
            span_id: [1; 8],
            sampled: true,
        };
        let unsampled = SpanContext {
            sampled: false,
            ..sampled
        };
        let s = Sampler::ParentBased(Root::AlwaysOn);
        assert!(s.samples(Some(&sampled), &id));
        assert!(!s.samples(Some(&unsampled), &id));
        assert!(s.samples(None, &id));
        assert!(!Sampler::ParentBased(Root::AlwaysOff).samples(None, &id));
        assert!(Sampler::Ratio(1.0).samples(None, &id));
        assert!(!Sampler::Ratio(0.0).samples(None, &[0xff; 16]));
    }

    #[test]
    fn a_full_queue_drops_and_counts() {
        let tracer = Tracer::new(Sampler::AlwaysOn, 2, 10);
        for _ in 0..3 {
            tracer.push(Finished {
                scope: Scope::Qbft,
                span: proto::Span::default(),
            });
        }
        assert_eq!(tracer.dropped(), 1);
        assert_eq!(tracer.take_batch().len(), 2);
    }
}
