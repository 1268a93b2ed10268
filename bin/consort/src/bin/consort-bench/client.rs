//! A JSON-RPC client over one keep-alive HTTP/1.1 connection or one WebSocket (a clone gets
//! its own), so that the load generator measures the node, not connection set-up. Over a
//! WebSocket it can also follow `newHeads`.

use alloy::providers::{Provider, RootProvider};
use alloy::pubsub::Subscription;
use alloy::rpc::client::RpcClient;
use alloy::transports::ws::WsConnect;
use alloy::transports::{RpcError as AlloyError, TransportErrorKind};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::Mutex;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    /// No connection, or it broke.
    #[error("{0}")]
    Transport(String),
    /// An HTTP error status.
    #[error("HTTP {0}")]
    Http(u16),
    /// A JSON-RPC error answer.
    #[error("JSON-RPC error {code}: {message}")]
    Rpc {
        /// Its code.
        code: i64,
        /// Its message.
        message: String,
    },
}

impl RpcError {
    /// A short name for counting errors by kind (`nonce too low`, `HTTP 503`, ...).
    pub fn kind(&self) -> String {
        match self {
            RpcError::Transport(_) => "transport".into(),
            RpcError::Http(status) => format!("HTTP {status}"),
            RpcError::Rpc { code, message } => {
                let short: String = message
                    .split([':', '('])
                    .next()
                    .unwrap_or_default()
                    .chars()
                    .take(48)
                    .collect();
                format!("{code} {}", short.trim())
            }
        }
    }
}

/// A client of one node.
#[derive(Debug)]
pub struct Client {
    url: String,
    authority: String,
    path: String,
    connection: Mutex<Option<SendRequest<Full<Bytes>>>>,
    /// Over a WebSocket (`ws://`): its connection, made on first use.
    ws: Option<Mutex<Option<RootProvider>>>,
    ids: AtomicU64,
}

impl Clone for Client {
    /// The same node over a new connection.
    fn clone(&self) -> Self {
        Client {
            url: self.url.clone(),
            authority: self.authority.clone(),
            path: self.path.clone(),
            connection: Mutex::new(None),
            ws: self.ws.as_ref().map(|_| Mutex::new(None)),
            ids: AtomicU64::new(0),
        }
    }
}

impl Client {
    /// A client of `url` (`http://host:port/path` or `ws://host:port/path`).
    pub fn new(url: &str) -> Result<Client, RpcError> {
        let (rest, ws) = match (url.strip_prefix("http://"), url.strip_prefix("ws://")) {
            (Some(rest), _) => (rest, false),
            (_, Some(rest)) => (rest, true),
            _ => {
                return Err(RpcError::Transport(format!(
                    "{url} is not an http:// or ws:// URL"
                )))
            }
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        Ok(Client {
            url: url.to_string(),
            authority: authority.to_string(),
            path: path.to_string(),
            connection: Mutex::new(None),
            ws: ws.then(|| Mutex::new(None)),
            ids: AtomicU64::new(0),
        })
    }

    /// Whether the client speaks over a WebSocket.
    pub fn is_ws(&self) -> bool {
        self.ws.is_some()
    }

    /// The WebSocket connection, made on first use.
    async fn ws_provider(
        &self,
        slot: &Mutex<Option<RootProvider>>,
    ) -> Result<RootProvider, RpcError> {
        let mut slot = slot.lock().await;
        if let Some(p) = slot.as_ref() {
            return Ok(p.clone());
        }
        let client = RpcClient::connect_pubsub(WsConnect::new(self.url.clone()))
            .await
            .map_err(from_alloy)?;
        let provider = RootProvider::new(client);
        *slot = Some(provider.clone());
        Ok(provider)
    }

    /// A `newHeads` subscription, over a WebSocket only.
    pub async fn new_heads(&self) -> Result<Option<Subscription<Value>>, RpcError> {
        let Some(slot) = &self.ws else {
            return Ok(None);
        };
        let provider = self.ws_provider(slot).await?;
        let subscription = provider
            .subscribe::<_, Value>(("newHeads",))
            .await
            .map_err(from_alloy)?;
        Ok(Some(subscription))
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, RpcError> {
        let transport = |e: &dyn std::fmt::Display| RpcError::Transport(e.to_string());
        let stream = tokio::net::TcpStream::connect(&self.authority)
            .await
            .map_err(|e| transport(&e))?;
        let _ = stream.set_nodelay(true);
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| transport(&e))?;
        tokio::spawn(connection);
        Ok(sender)
    }

    async fn request(&self, method: http::Method, body: Bytes) -> Result<Bytes, RpcError> {
        let mut slot = self.connection.lock().await;
        // A kept connection the server has closed meanwhile is replaced.
        let kept = match slot.take() {
            Some(mut s) if !s.is_closed() => s.ready().await.is_ok().then_some(s),
            _ => None,
        };
        let mut sender = match kept {
            Some(s) => s,
            None => self.connect().await?,
        };
        let request = http::Request::builder()
            .method(method)
            .uri(self.path.as_str())
            .header(http::header::HOST, self.authority.as_str())
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(body))
            .map_err(|e| RpcError::Transport(e.to_string()))?;
        let retry = request.clone();
        let response = match sender.send_request(request).await {
            Ok(r) => r,
            // Not sent (the connection went away first): once more on a new connection.
            Err(e) if e.is_canceled() || e.is_closed() => {
                sender = self.connect().await?;
                sender
                    .send_request(retry)
                    .await
                    .map_err(|e| RpcError::Transport(e.to_string()))?
            }
            Err(e) => return Err(RpcError::Transport(e.to_string())),
        };
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| RpcError::Transport(e.to_string()))?
            .to_bytes();
        *slot = Some(sender);
        if !status.is_success() {
            return Err(RpcError::Http(status.as_u16()));
        }
        Ok(body)
    }

    /// Calls `method` and returns its result.
    pub async fn call(&self, method: &str, params: Value) -> Result<Value, RpcError> {
        if let Some(slot) = &self.ws {
            let provider = self.ws_provider(slot).await?;
            return provider
                .raw_request::<_, Value>(method.to_string().into(), params)
                .await
                .map_err(from_alloy);
        }
        let id = self.ids.fetch_add(1, Ordering::Relaxed);
        let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let answer = self
            .request(http::Method::POST, Bytes::from(body.to_string()))
            .await?;
        let mut answer: Value = serde_json::from_slice(&answer)
            .map_err(|e| RpcError::Transport(format!("not JSON: {e}")))?;
        if let Some(error) = answer.get("error") {
            return Err(RpcError::Rpc {
                code: error["code"].as_i64().unwrap_or_default(),
                message: error["message"].as_str().unwrap_or_default().to_string(),
            });
        }
        Ok(answer["result"].take())
    }

    /// GETs the URL's text (a metrics endpoint).
    pub async fn get_text(&self) -> Result<String, RpcError> {
        if self.is_ws() {
            return Err(RpcError::Transport(format!(
                "{} is not an HTTP URL",
                self.url
            )));
        }
        let body = self.request(http::Method::GET, Bytes::new()).await?;
        Ok(String::from_utf8_lossy(&body).into_owned())
    }
}

/// alloy's error as the bench counts it: an error answer keeps its code and message.
fn from_alloy(e: AlloyError<TransportErrorKind>) -> RpcError {
    match e {
        AlloyError::ErrorResp(payload) => RpcError::Rpc {
            code: payload.code,
            message: payload.message.to_string(),
        },
        other => RpcError::Transport(other.to_string()),
    }
}
