//! Sending one OTLP export: a protobuf message POSTed over HTTP/1.1 (`http/protobuf`), or a
//! unary gRPC call over HTTP/2 without TLS (`grpc`). A connection per export: exports come
//! seconds apart.

use super::config::{Endpoint, Protocol};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::time::Duration;
use tokio::net::TcpStream;

/// Most bytes of an answer read.
const MAX_ANSWER_BYTES: usize = 1 << 20;

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// No connection, or it broke.
    #[error("{authority}: {message}")]
    Transport {
        /// The collector.
        authority: String,
        /// What happened.
        message: String,
    },
    /// The collector answered with an error.
    #[error("{authority} refused the export: {message}")]
    Refused {
        /// The collector.
        authority: String,
        /// Its answer.
        message: String,
    },
    /// The export took longer than `OTEL_EXPORTER_OTLP_TIMEOUT`.
    #[error("{0}: the export timed out")]
    Timeout(String),
}

/// Sends the protobuf `message` to `endpoint`.
pub async fn export(
    endpoint: &Endpoint,
    message: Vec<u8>,
    timeout: Duration,
) -> Result<(), ExportError> {
    match tokio::time::timeout(timeout, send(endpoint, message)).await {
        Ok(result) => result,
        Err(_) => Err(ExportError::Timeout(endpoint.authority.clone())),
    }
}

async fn send(endpoint: &Endpoint, message: Vec<u8>) -> Result<(), ExportError> {
    let transport = |e: &dyn std::fmt::Display| ExportError::Transport {
        authority: endpoint.authority.clone(),
        message: e.to_string(),
    };
    let refused = |message: String| ExportError::Refused {
        authority: endpoint.authority.clone(),
        message,
    };
    let stream = TcpStream::connect(&endpoint.authority)
        .await
        .map_err(|e| transport(&e))?;
    let _ = stream.set_nodelay(true);
    let io = TokioIo::new(stream);
    let (body, content_type) = match endpoint.protocol {
        Protocol::HttpProtobuf => (message, "application/x-protobuf"),
        Protocol::Grpc => {
            // A gRPC message: uncompressed flag, big-endian length, the message.
            let len = u32::try_from(message.len()).map_err(|e| transport(&e))?;
            let mut framed = Vec::with_capacity(message.len() + 5);
            framed.push(0);
            framed.extend_from_slice(&len.to_be_bytes());
            framed.extend_from_slice(&message);
            (framed, "application/grpc")
        }
    };
    let mut request = http::Request::post(match endpoint.protocol {
        Protocol::HttpProtobuf => endpoint.path.clone(),
        Protocol::Grpc => format!("http://{}{}", endpoint.authority, endpoint.path),
    })
    .header(http::header::CONTENT_TYPE, content_type)
    .header(
        http::header::USER_AGENT,
        concat!("consort/", env!("CARGO_PKG_VERSION")),
    );
    request = match endpoint.protocol {
        Protocol::HttpProtobuf => request.header(http::header::HOST, endpoint.authority.as_str()),
        Protocol::Grpc => request.header(http::header::TE, "trailers"),
    };
    for (k, v) in &endpoint.headers {
        request = request.header(k.as_str(), v.as_str());
    }
    let request = request
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| transport(&e))?;
    let response = match endpoint.protocol {
        Protocol::HttpProtobuf => {
            let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
                .await
                .map_err(|e| transport(&e))?;
            tokio::spawn(connection);
            sender
                .send_request(request)
                .await
                .map_err(|e| transport(&e))?
        }
        Protocol::Grpc => {
            let (mut sender, connection) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                    .await
                    .map_err(|e| transport(&e))?;
            tokio::spawn(connection);
            sender
                .send_request(request)
                .await
                .map_err(|e| transport(&e))?
        }
    };
    let (parts, body) = response.into_parts();
    let collected = http_body_util::Limited::new(body, MAX_ANSWER_BYTES)
        .collect()
        .await
        .map_err(|e| transport(&*e))?;
    let trailers = collected.trailers().cloned();
    let answer = collected.to_bytes();
    if !parts.status.is_success() {
        return Err(refused(format!(
            "HTTP {}: {}",
            parts.status,
            String::from_utf8_lossy(answer.get(..answer.len().min(200)).unwrap_or_default())
        )));
    }
    if endpoint.protocol == Protocol::Grpc {
        // The status comes in the trailers, or in the headers of a trailers-only answer.
        let status = trailers
            .as_ref()
            .and_then(|t| t.get("grpc-status"))
            .or_else(|| parts.headers.get("grpc-status"))
            .and_then(|v| v.to_str().ok())
            .unwrap_or("missing");
        if status != "0" {
            let message = trailers
                .as_ref()
                .and_then(|t| t.get("grpc-message"))
                .or_else(|| parts.headers.get("grpc-message"))
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            return Err(refused(format!("grpc-status {status} {message}")));
        }
    }
    Ok(())
}
