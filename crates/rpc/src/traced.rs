//! Traces of JSON-RPC over HTTP, as Besu makes them: a server span per HTTP request, named by
//! the client's address, and an internal span per method it calls. A W3C `traceparent` header
//! makes the caller's span the parent. Nothing happens unless a tracer is installed.

use consort_metrics::trace::{self, Scope, Span, SpanContext, SpanKind};
use jsonrpsee::server::{HttpRequest, HttpResponse};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

/// The client's address, put in each request's extensions by the accept loop.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Peer(pub(crate) SocketAddr);

/// The HTTP request's span, in the request's extensions for the method spans.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RequestSpan(pub(crate) SpanContext);

/// Wraps a connection's service so every request carries the client's address.
#[derive(Debug, Clone)]
pub(crate) struct WithPeer<S> {
    pub(crate) inner: S,
    pub(crate) peer: SocketAddr,
}

impl<S, B> tower::Service<HttpRequest<B>> for WithPeer<S>
where
    S: tower::Service<HttpRequest<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: HttpRequest<B>) -> Self::Future {
        request.extensions_mut().insert(Peer(self.peer));
        self.inner.call(request)
    }
}

/// The HTTP layer that opens a request's span.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct TraceLayer;

impl<S> tower::Layer<S> for TraceLayer {
    type Service = TraceService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        TraceService { inner }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct TraceService<S> {
    inner: S,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl<S> tower::Service<HttpRequest<hyper::body::Incoming>> for TraceService<S>
where
    S: tower::Service<
            HttpRequest<hyper::body::Incoming>,
            Response = HttpResponse,
            Error = BoxError,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = HttpResponse;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: HttpRequest<hyper::body::Incoming>) -> Self::Future {
        let upgrade = request.headers().contains_key(http::header::UPGRADE);
        if !trace::enabled() || upgrade {
            return Box::pin(self.inner.call(request));
        }
        let parent = request
            .headers()
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
            .and_then(SpanContext::from_traceparent);
        let peer = request.extensions().get::<Peer>().map(|p| p.0);
        let name = peer.map_or_else(|| request.method().to_string(), |p| p.to_string());
        let mut span = Span::start(Scope::JsonRpc, name, SpanKind::Server, parent);
        span.set("http.request.method", request.method().as_str());
        span.set("url.path", request.uri().path());
        if let Some(peer) = peer {
            span.set("client.address", peer.ip().to_string());
            span.set("client.port", u32::from(peer.port()));
        }
        if let Some(context) = span.context() {
            request.extensions_mut().insert(RequestSpan(context));
        }
        let future = self.inner.call(request);
        Box::pin(async move {
            let response = future.await;
            match &response {
                Ok(r) => {
                    span.set("http.response.status_code", u32::from(r.status().as_u16()));
                    if r.status().is_server_error() || r.status().is_client_error() {
                        span.fail(r.status().to_string());
                    }
                }
                Err(e) => span.fail(e.to_string()),
            }
            response
        })
    }
}

/// The span of one method call: under the HTTP request's span, or a root span for a call
/// that came another way (WebSocket).
pub(crate) fn method_span(name: &'static str, extensions: &jsonrpsee::Extensions) -> Span {
    if !trace::enabled() {
        return Span::none();
    }
    let parent = extensions.get::<RequestSpan>().map(|s| s.0);
    let mut span = Span::start(Scope::JsonRpc, name, SpanKind::Internal, parent);
    span.set("rpc.system", "jsonrpc");
    span.set("rpc.method", name);
    span
}

/// The status description Besu gives a failed call's span.
pub(crate) fn failure_description(kind: &str) -> &'static str {
    match kind {
        k if k.starts_with("INVALID") => "Invalid Params",
        "UNAUTHORIZED" => "Unauthorized",
        "INTERNAL_ERROR" => "Error processing JSON-RPC requestBody",
        _ => "Unexpected error",
    }
}
