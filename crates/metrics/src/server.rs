//! A minimal HTTP/1.1 server for `GET /metrics`. It checks the `Host` header against
//! `--host-allowlist` (403 otherwise, as Besu does against DNS rebinding), optionally a bearer
//! token (401 otherwise), and bounds the request size, the time a client may take and the number
//! of concurrent connections.

use crate::{MetricsError, Registry, Result};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

/// Largest request head read, in bytes.
const MAX_REQUEST_BYTES: usize = 8 * 1024;
/// How long a client may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Most connections served at once.
const MAX_CONNECTIONS: usize = 64;

/// A running metrics endpoint.
#[derive(Debug)]
pub struct MetricsServer {
    /// The address it listens on (with the real port when 0 was asked for).
    pub local_addr: SocketAddr,
    /// The accept loop; abort it to stop serving.
    pub task: JoinHandle<()>,
}

/// Decides whether a bearer token may read the metrics.
pub type Authorizer = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// Starts serving `registry` on `addr`. `allowed_hosts` holds host names (without port) or `*`;
/// with `authorize`, a request needs an `Authorization: Bearer` token it accepts.
pub async fn serve(
    addr: &str,
    registry: Registry,
    allowed_hosts: Vec<String>,
    authorize: Option<Authorizer>,
) -> Result<MetricsServer> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| MetricsError::Bind {
            addr: addr.to_string(),
            source,
        })?;
    let local_addr = listener.local_addr().map_err(|source| MetricsError::Bind {
        addr: addr.to_string(),
        source,
    })?;
    let allowed = Arc::new(allowed_hosts);
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let Ok(permit) = slots.clone().try_acquire_owned() else {
                drop(stream);
                continue;
            };
            let (registry, allowed, authorize) =
                (registry.clone(), allowed.clone(), authorize.clone());
            tokio::spawn(async move {
                let access = Access {
                    allowed: &allowed,
                    authorize: authorize.as_ref(),
                };
                let _ =
                    tokio::time::timeout(REQUEST_TIMEOUT, handle(stream, &registry, access)).await;
                drop(permit);
            });
        }
    });
    Ok(MetricsServer { local_addr, task })
}

/// Whether `host` (a Host header value, possibly with a port) is on the allowlist.
pub(crate) fn host_allowed(host: &str, allowed: &[String]) -> bool {
    let name = match host.rsplit_once(':') {
        Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name,
        _ => host,
    };
    let name = name.trim_start_matches('[').trim_end_matches(']');
    allowed
        .iter()
        .any(|a| a == "*" || a.eq_ignore_ascii_case("all") || a.eq_ignore_ascii_case(name))
}

/// Who may read: the Host allowlist and the token check.
#[derive(Clone, Copy)]
struct Access<'a> {
    allowed: &'a [String],
    authorize: Option<&'a Authorizer>,
}

/// The value of header `name` in the request head's lines.
fn header<'a>(lines: &[&'a str], name: &str) -> Option<&'a str> {
    lines
        .iter()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
}

async fn handle(
    mut stream: TcpStream,
    registry: &Registry,
    access: Access<'_>,
) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        if buf.len() > MAX_REQUEST_BYTES {
            return respond(
                &mut stream,
                "431 Request Header Fields Too Large",
                "text/plain",
                "request too large\n",
            )
            .await;
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
    }
    let head = String::from_utf8_lossy(&buf);
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let (method, path) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    let lines: Vec<&str> = lines.collect();
    let host = header(&lines, "host").unwrap_or_default();
    if !host_allowed(host, access.allowed) {
        return respond(
            &mut stream,
            "403 Forbidden",
            "text/plain",
            "Host not authorized.\n",
        )
        .await;
    }
    if let Some(authorize) = access.authorize {
        let token = header(&lines, "authorization")
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim);
        if !token.is_some_and(|t| authorize(t)) {
            return respond(
                &mut stream,
                "401 Unauthorized",
                "text/plain",
                "a bearer token that permits metrics:* is needed\n",
            )
            .await;
        }
    }
    if method != "GET" {
        return respond(
            &mut stream,
            "405 Method Not Allowed",
            "text/plain",
            "only GET\n",
        )
        .await;
    }
    let path = path.split('?').next().unwrap_or_default();
    if path != "/metrics" && path != "/" {
        return respond(&mut stream, "404 Not Found", "text/plain", "not found\n").await;
    }
    let body = registry.render();
    respond(
        &mut stream,
        "200 OK",
        "text/plain; version=0.0.4; charset=utf-8",
        &body,
    )
    .await
}

async fn respond(
    stream: &mut TcpStream,
    status: &str,
    content_type: &str,
    body: &str,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::host_allowed;

    #[test]
    fn host_allowlist_matches_names_with_or_without_ports() {
        let allowed = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        for (host, ok) in [
            ("localhost", true),
            ("localhost:9545", true),
            ("127.0.0.1:9545", true),
            ("LOCALHOST", true),
            ("evil.example:9545", false),
            ("", false),
        ] {
            assert_eq!(host_allowed(host, &allowed), ok, "{host}");
        }
        assert!(host_allowed("anything", &["*".to_string()]));
    }
}
