//! JSON-RPC authentication as Besu has it: JWTs in `Authorization: Bearer`, either signed by an
//! outside issuer whose public key the node holds (`--rpc-http-authentication-jwt-public-key-file`)
//! or issued by the node's `/login` to the users of a credentials file
//! (`--rpc-http-authentication-credentials-file`). A token's `permissions` name the methods it
//! may call (`"*:*"`, `"net:*"`, `"eth:blockNumber"`).
//!
//! Two layers do the work: [`AuthLayer`] on HTTP requests (WebSocket upgrades included) reads
//! the token, answers `/login`, refuses a bad or expired token with `401` before any method
//! runs, and leaves the caller in the request's extensions; [`AuthRpcLayer`] checks each call,
//! batch entries one by one, against the caller's permissions.

use jsonrpsee::core::middleware::{Batch, BatchEntry, BatchEntryErr, RpcServiceT};
use jsonrpsee::server::{HttpBody, HttpRequest, HttpResponse};
use jsonrpsee::types::{ErrorObject, Request};
use jsonrpsee::{Extensions, MethodResponse};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{SystemTime, UNIX_EPOCH};

/// Besu's JSON-RPC error for a call the caller may not make.
pub const UNAUTHORIZED_CODE: i32 = -40100;

/// How long a token from `/login` is valid, in seconds (Besu's five minutes).
pub const LOGIN_TOKEN_SECONDS: u64 = 300;

/// Largest `/login` body read.
const MAX_LOGIN_BODY: usize = 16 * 1024;

/// Why authentication could not be set up from its files and flags.
#[derive(Debug, thiserror::Error)]
pub enum AuthConfigError {
    /// A file could not be read.
    #[error("cannot read {flag} file {path}: {error}")]
    Read {
        /// The flag naming the file.
        flag: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The file's content is wrong.
    #[error("{flag} file {path}: {reason}")]
    Invalid {
        /// The flag naming the file.
        flag: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A flag's value is wrong or a needed flag is missing.
    #[error("{0}")]
    Flag(String),
}

/// One transport's authentication settings, as given by its flags.
#[derive(Debug, Clone, Default)]
pub struct AuthSettings {
    /// `--rpc-http-authentication-credentials-file`: users for `/login`.
    pub credentials_file: Option<PathBuf>,
    /// `--rpc-http-authentication-jwt-public-key-file`: the outside issuer's public key (PEM).
    pub jwt_public_key_file: Option<PathBuf>,
    /// `--rpc-http-authentication-jwt-algorithm`: RS256 (default), RS384, RS512, ES256, ES384.
    pub jwt_algorithm: Option<String>,
    /// `--rpc-http-api-methods-no-auth`: methods anyone may call.
    pub no_auth_methods: Vec<String>,
}

/// A token's claims as Besu writes and reads them.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Claims {
    #[serde(default)]
    permissions: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    exp: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    iat: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    username: Option<String>,
}

/// One entry of a token's `permissions`: an API group (or `*`) and a method (or `*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Permission {
    group: String,
    method: String,
}

impl Permission {
    fn parse(s: &str) -> Option<Permission> {
        let (group, method) = s.trim().split_once(':')?;
        (!group.is_empty() && !method.is_empty()).then(|| Permission {
            group: group.to_ascii_lowercase(),
            method: method.to_string(),
        })
    }

    /// Whether this permits `method` (`eth_blockNumber`: group `eth`, method `blockNumber`).
    fn permits(&self, method: &str) -> bool {
        let Some((group, name)) = method.split_once('_') else {
            return false;
        };
        (self.group == "*" || self.group.eq_ignore_ascii_case(group))
            && (self.method == "*" || self.method == name)
    }
}

/// Who is calling, as the HTTP layer found it; kept in each request's extensions.
#[derive(Debug, Clone)]
pub(crate) enum Caller {
    /// No token: only the no-auth methods.
    Anonymous,
    /// A valid token's permissions, until it expires (seconds since the epoch), if it does.
    Token {
        permissions: Arc<[Permission]>,
        expires: Option<u64>,
    },
}

/// A user of the credentials file.
#[derive(Debug, Clone)]
struct User {
    /// The bcrypt hash of the password.
    password: String,
    permissions: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CredentialsFile {
    #[serde(rename = "Users", default)]
    users: BTreeMap<String, UserEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UserEntry {
    password: String,
    #[serde(default)]
    permissions: Vec<String>,
    #[serde(rename = "privacyPublicKey", default)]
    _privacy_public_key: Option<String>,
}

/// Where tokens come from and how they are checked.
enum Issuer {
    /// An outside issuer: tokens are verified with its public key; `/login` is off.
    External {
        key: DecodingKey,
        algorithm: Algorithm,
    },
    /// The node itself, for the users of a credentials file: `/login` signs tokens with a key
    /// made at start-up (so they end with the process).
    Login {
        users: BTreeMap<String, User>,
        signing: EncodingKey,
        verifying: DecodingKey,
    },
}

impl std::fmt::Debug for Issuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Issuer::External { algorithm, .. } => write!(f, "External({algorithm:?})"),
            Issuer::Login { users, .. } => write!(f, "Login({} users)", users.len()),
        }
    }
}

/// One transport's authentication, ready to check requests.
#[derive(Debug)]
pub struct Auth {
    issuer: Issuer,
    no_auth: HashSet<String>,
}

/// Why a token was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum TokenError {
    #[error("the token has expired")]
    Expired,
    #[error("invalid token: {0}")]
    Invalid(String),
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn read(flag: &'static str, path: &Path) -> Result<Vec<u8>, AuthConfigError> {
    std::fs::read(path).map_err(|error| AuthConfigError::Read {
        flag,
        path: path.to_path_buf(),
        error,
    })
}

fn parse_algorithm(name: &str) -> Result<Algorithm, AuthConfigError> {
    match name.trim().to_ascii_uppercase().as_str() {
        "RS256" => Ok(Algorithm::RS256),
        "RS384" => Ok(Algorithm::RS384),
        "RS512" => Ok(Algorithm::RS512),
        "ES256" => Ok(Algorithm::ES256),
        "ES384" => Ok(Algorithm::ES384),
        other => Err(AuthConfigError::Flag(format!(
            "unsupported JWT algorithm '{other}' (expected RS256, RS384, RS512, ES256 or ES384)"
        ))),
    }
}

impl Auth {
    /// Authentication for one transport from its flags. `prefix` is the flags' prefix
    /// (`rpc-http` or `rpc-ws`), used in error messages.
    pub fn from_settings(prefix: &str, settings: &AuthSettings) -> Result<Auth, AuthConfigError> {
        let issuer = match (&settings.jwt_public_key_file, &settings.credentials_file) {
            (Some(path), _) => {
                let flag = if prefix == "rpc-ws" {
                    "--rpc-ws-authentication-jwt-public-key-file"
                } else {
                    "--rpc-http-authentication-jwt-public-key-file"
                };
                let algorithm =
                    parse_algorithm(settings.jwt_algorithm.as_deref().unwrap_or("RS256"))?;
                let pem = read(flag, path)?;
                let key = match algorithm {
                    Algorithm::ES256 | Algorithm::ES384 => DecodingKey::from_ec_pem(&pem),
                    _ => DecodingKey::from_rsa_pem(&pem),
                }
                .map_err(|e| AuthConfigError::Invalid {
                    flag,
                    path: path.clone(),
                    reason: format!("not a PEM {algorithm:?} public key: {e}"),
                })?;
                Issuer::External { key, algorithm }
            }
            (None, Some(path)) => {
                let flag = if prefix == "rpc-ws" {
                    "--rpc-ws-authentication-credentials-file"
                } else {
                    "--rpc-http-authentication-credentials-file"
                };
                let users = read_credentials(flag, path)?;
                let mut secret = [0u8; 32];
                fill_random(&mut secret)?;
                let key_error =
                    |e: jsonwebtoken::errors::Error| AuthConfigError::Flag(format!("cannot make the /login signing key: {e}"));
                Issuer::Login {
                    users,
                    signing: EncodingKey::from_secret(&secret).map_err(key_error)?,
                    verifying: DecodingKey::from_secret(&secret).map_err(key_error)?,
                }
            }
            (None, None) => {
                return Err(AuthConfigError::Flag(format!(
                    "--{prefix}-authentication-enabled needs --{prefix}-authentication-credentials-file or --{prefix}-authentication-jwt-public-key-file"
                )))
            }
        };
        Ok(Auth {
            issuer,
            no_auth: settings
                .no_auth_methods
                .iter()
                .map(|m| m.trim().to_string())
                .filter(|m| !m.is_empty())
                .collect(),
        })
    }

    /// The caller a bearer token names, or why it is refused.
    pub(crate) fn verify(&self, token: &str) -> Result<Caller, TokenError> {
        let (key, algorithm) = match &self.issuer {
            Issuer::External { key, algorithm } => (key, *algorithm),
            Issuer::Login { verifying, .. } => (verifying, Algorithm::HS256),
        };
        let mut validation = Validation::new(algorithm);
        validation.leeway = 0;
        // An outside issuer's token without `exp` never expires, as Besu (Vert.x) reads it;
        // `/login` tokens always carry one.
        let required: &[&str] = match self.issuer {
            Issuer::External { .. } => &[],
            Issuer::Login { .. } => &["exp"],
        };
        validation.set_required_spec_claims(required);
        let data = jsonwebtoken::decode::<Claims>(token, key, &validation).map_err(|e| match e
            .kind()
        {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
            _ => TokenError::Invalid(e.to_string()),
        })?;
        let permissions: Vec<Permission> = data
            .claims
            .permissions
            .iter()
            .filter_map(|p| Permission::parse(p))
            .collect();
        Ok(Caller::Token {
            permissions: permissions.into(),
            expires: data.claims.exp,
        })
    }

    /// Whether `token` is valid and permits `method` (`metrics_scrape` for the metrics
    /// endpoint: `metrics:*` or `*:*`).
    pub fn token_permits(&self, token: &str, method: &str) -> bool {
        self.verify(token)
            .and_then(|caller| self.check(Some(&caller), method))
            .is_ok()
    }

    /// Checks a `/login` and issues a token valid for [`LOGIN_TOKEN_SECONDS`].
    fn login(&self, username: &str, password: &str) -> Result<String, LoginError> {
        let Issuer::Login { users, signing, .. } = &self.issuer else {
            return Err(LoginError::Disabled);
        };
        let user = users.get(username).ok_or(LoginError::Refused)?;
        if !bcrypt::verify(password, &user.password).unwrap_or(false) {
            return Err(LoginError::Refused);
        }
        let iat = now();
        let claims = Claims {
            permissions: user.permissions.clone(),
            exp: Some(iat.saturating_add(LOGIN_TOKEN_SECONDS)),
            iat: Some(iat),
            username: Some(username.to_string()),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, signing)
            .map_err(|e| LoginError::Internal(e.to_string()))
    }

    /// Whether `caller` may call `method`; the error to answer if not.
    pub(crate) fn check(&self, caller: Option<&Caller>, method: &str) -> Result<(), TokenError> {
        if self.no_auth.contains(method) {
            return Ok(());
        }
        match caller {
            Some(Caller::Token {
                permissions,
                expires,
            }) => {
                if expires.is_some_and(|at| at <= now()) {
                    Err(TokenError::Expired)
                } else if permissions.iter().any(|p| p.permits(method)) {
                    Ok(())
                } else {
                    Err(TokenError::Invalid(format!("{method} is not permitted")))
                }
            }
            _ => Err(TokenError::Invalid("no token".into())),
        }
    }
}

fn fill_random(buf: &mut [u8]) -> Result<(), AuthConfigError> {
    use std::io::Read;
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(buf))
        .map_err(|e| AuthConfigError::Flag(format!("cannot read random bytes for /login: {e}")))
}

fn read_credentials(
    flag: &'static str,
    path: &Path,
) -> Result<BTreeMap<String, User>, AuthConfigError> {
    let invalid = |reason: String| AuthConfigError::Invalid {
        flag,
        path: path.to_path_buf(),
        reason,
    };
    let text = String::from_utf8(read(flag, path)?).map_err(|_| invalid("not UTF-8".into()))?;
    let file: CredentialsFile = toml::from_str(&text).map_err(|e| invalid(e.to_string()))?;
    let mut users = BTreeMap::new();
    for (name, entry) in file.users {
        if !entry.password.starts_with("$2") {
            return Err(invalid(format!(
                "user '{name}': password is not a bcrypt hash ($2a$, $2b$ or $2y$)"
            )));
        }
        if let Some(bad) = entry
            .permissions
            .iter()
            .find(|p| Permission::parse(p).is_none())
        {
            return Err(invalid(format!(
                "user '{name}': permission '{bad}' is not group:method (for example \"eth:*\")"
            )));
        }
        users.insert(
            name,
            User {
                password: entry.password,
                permissions: entry.permissions,
            },
        );
    }
    Ok(users)
}

#[derive(Debug)]
enum LoginError {
    Disabled,
    Refused,
    Internal(String),
}

/// Marks a response as refused for authorization, so a single call is answered `401`.
#[derive(Debug, Clone, Copy)]
struct Unauthorized;

fn unauthorized_error(reason: &TokenError) -> ErrorObject<'static> {
    ErrorObject::owned(UNAUTHORIZED_CODE, "Unauthorized", Some(reason.to_string()))
}

fn json_response(status: u16, body: String) -> HttpResponse {
    let mut response = HttpResponse::new(HttpBody::from(body));
    *response.status_mut() = http::StatusCode::from_u16(status).unwrap_or_default();
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

fn unauthorized_response(reason: &TokenError) -> HttpResponse {
    let body = serde_json::json!({
        "jsonrpc": "2.0",
        "id": null,
        "error": {"code": UNAUTHORIZED_CODE, "message": "Unauthorized", "data": reason.to_string()},
    });
    json_response(401, body.to_string())
}

/// The bearer token of a request: the `Authorization` header, or for a WebSocket upgrade
/// (browsers cannot set headers on one) a `token` query parameter.
fn bearer(request: &HttpRequest<hyper::body::Incoming>) -> Option<String> {
    if let Some(value) = request.headers().get(http::header::AUTHORIZATION) {
        let value = value.to_str().unwrap_or_default().trim();
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .unwrap_or(value);
        return Some(token.trim().to_string());
    }
    request.uri().query().and_then(|q| {
        q.split('&')
            .filter_map(|pair| pair.split_once('='))
            .find(|(k, _)| *k == "token")
            .map(|(_, v)| v.to_string())
    })
}

/// The HTTP half: tokens, `/login`, `401`s. Without [`Auth`], requests pass untouched.
#[derive(Debug, Clone)]
pub(crate) struct AuthLayer {
    pub(crate) auth: Option<Arc<Auth>>,
}

impl<S> tower::Layer<S> for AuthLayer {
    type Service = AuthService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            auth: self.auth.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct AuthService<S> {
    inner: S,
    auth: Option<Arc<Auth>>,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl<S> tower::Service<HttpRequest<hyper::body::Incoming>> for AuthService<S>
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
        let Some(auth) = self.auth.clone() else {
            return Box::pin(self.inner.call(request));
        };
        if request.uri().path() == "/login" {
            return Box::pin(login(auth, request));
        }
        let caller = match bearer(&request) {
            None => Caller::Anonymous,
            Some(token) => match auth.verify(&token) {
                Ok(caller) => caller,
                Err(reason) => {
                    return Box::pin(async move { Ok(unauthorized_response(&reason)) });
                }
            },
        };
        request.extensions_mut().insert(caller);
        let future = self.inner.call(request);
        Box::pin(async move {
            let mut response = future.await?;
            if response.extensions().get::<Unauthorized>().is_some() {
                *response.status_mut() = http::StatusCode::UNAUTHORIZED;
            }
            Ok(response)
        })
    }
}

#[derive(Debug, Deserialize)]
struct LoginRequest {
    username: String,
    password: String,
}

async fn login(
    auth: Arc<Auth>,
    request: HttpRequest<hyper::body::Incoming>,
) -> Result<HttpResponse, BoxError> {
    use http_body_util::BodyExt;
    if request.method() != http::Method::POST {
        return Ok(json_response(
            405,
            r#"{"error":"/login takes a POST"}"#.into(),
        ));
    }
    let body = match http_body_util::Limited::new(request.into_body(), MAX_LOGIN_BODY)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            return Ok(json_response(
                413,
                r#"{"error":"login request too large"}"#.into(),
            ))
        }
    };
    let Ok(login) = serde_json::from_slice::<LoginRequest>(&body) else {
        return Ok(json_response(
            400,
            r#"{"error":"expected {\"username\":...,\"password\":...}"}"#.into(),
        ));
    };
    // bcrypt is slow by design: off the async threads.
    let answer =
        tokio::task::spawn_blocking(move || auth.login(&login.username, &login.password)).await;
    Ok(match answer {
        Ok(Ok(token)) => json_response(200, serde_json::json!({ "token": token }).to_string()),
        Ok(Err(LoginError::Refused)) => json_response(401, "Unauthorized".into()),
        Ok(Err(LoginError::Disabled)) => json_response(
            404,
            r#"{"error":"/login is off: tokens come from the JWT issuer"}"#.into(),
        ),
        Ok(Err(LoginError::Internal(e))) => {
            tracing::warn!("/login failed: {e}");
            json_response(500, r#"{"error":"internal error"}"#.into())
        }
        Err(e) => {
            tracing::warn!("/login failed: {e}");
            json_response(500, r#"{"error":"internal error"}"#.into())
        }
    })
}

/// The per-call half: each call (each batch entry) checked against the caller.
#[derive(Debug, Clone)]
pub(crate) struct AuthRpcLayer {
    pub(crate) auth: Option<Arc<Auth>>,
}

impl<S> tower::Layer<S> for AuthRpcLayer {
    type Service = AuthRpc<S>;
    fn layer(&self, inner: S) -> Self::Service {
        AuthRpc {
            inner,
            auth: self.auth.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct AuthRpc<S> {
    inner: S,
    auth: Option<Arc<Auth>>,
}

impl<S> AuthRpc<S> {
    fn refusal(&self, method: &str, extensions: &Extensions) -> Option<TokenError> {
        let auth = self.auth.as_ref()?;
        auth.check(extensions.get::<Caller>(), method).err()
    }
}

impl<S> RpcServiceT for AuthRpc<S>
where
    S: RpcServiceT<
            MethodResponse = MethodResponse,
            BatchResponse = MethodResponse,
            NotificationResponse = MethodResponse,
        > + Send
        + Sync
        + Clone
        + 'static,
{
    type MethodResponse = MethodResponse;
    type BatchResponse = MethodResponse;
    type NotificationResponse = MethodResponse;

    fn call<'a>(&self, request: Request<'a>) -> impl Future<Output = MethodResponse> + Send + 'a {
        let refusal = self.refusal(request.method_name(), request.extensions());
        let inner = self.inner.clone();
        async move {
            match refusal {
                Some(reason) => {
                    let mut response =
                        MethodResponse::error(request.id, unauthorized_error(&reason));
                    response.extensions_mut().insert(Unauthorized);
                    response
                }
                None => inner.call(request).await,
            }
        }
    }

    fn batch<'a>(&self, mut batch: Batch<'a>) -> impl Future<Output = MethodResponse> + Send + 'a {
        for entry in batch.iter_mut() {
            let refusal = match entry {
                Ok(BatchEntry::Call(request)) => self
                    .refusal(request.method_name(), request.extensions())
                    .map(|reason| (request.id.clone(), reason)),
                Ok(BatchEntry::Notification(n)) => self
                    .refusal(n.method_name(), n.extensions())
                    .map(|reason| (jsonrpsee::types::Id::Null, reason)),
                Err(_) => None,
            };
            if let Some((id, reason)) = refusal {
                *entry = Err(BatchEntryErr::new(id, unauthorized_error(&reason)));
            }
        }
        self.inner.batch(batch)
    }

    fn notification<'a>(
        &self,
        n: jsonrpsee::core::middleware::Notification<'a>,
    ) -> impl Future<Output = MethodResponse> + Send + 'a {
        let refused = self.refusal(n.method_name(), n.extensions()).is_some();
        let inner = self.inner.clone();
        async move {
            if refused {
                MethodResponse::notification()
            } else {
                inner.notification(n).await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permissions_match_group_and_method() {
        let p = |s| Permission::parse(s).unwrap();
        assert!(p("*:*").permits("eth_blockNumber"));
        assert!(p("net:*").permits("net_version"));
        assert!(!p("net:*").permits("eth_chainId"));
        assert!(p("ETH:blockNumber").permits("eth_blockNumber"));
        assert!(!p("eth:blockNumber").permits("eth_getBalance"));
        assert!(!p("eth:*").permits("rpc_modules"));
        assert!(Permission::parse("eth").is_none());
        assert!(Permission::parse(":x").is_none());
    }
}
