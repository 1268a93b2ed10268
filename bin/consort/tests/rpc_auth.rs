//! JSON-RPC access control against a dev node, with keys, tokens and certificates made by
//! outside tools (openssl) and TLS checked by an outside client (curl): JWTs from an outside
//! issuer (RS256 and ES256) call exactly what their `permissions` allow, a bad or expired token
//! gets 401 before any method runs, batch entries are checked one by one, the no-auth methods
//! stay open, WebSocket upgrades are checked; the credentials file's `/login`; TLS from a
//! PKCS#12 keystore or PEM, with client certificates by known-clients fingerprint or CA; and
//! start-up refusing each wrong file naming its flag.

mod support;

use alloy::providers::{Provider, ProviderBuilder, WsConnect};
use alloy::transports::Authorization;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use support::{http_request_with, rpc, sign_eip1559, start, DEV_KEYS};

/// Runs `openssl` with `args` in `dir`, feeding `input`; returns stdout.
fn openssl(dir: &Path, args: &[&str], input: &[u8]) -> Vec<u8> {
    let mut child = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run openssl");
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn base64url(data: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

/// An ECDSA signature from DER (what `openssl dgst` writes) to JWT's fixed-width `r || s`.
fn der_to_raw(der: &[u8], width: usize) -> Vec<u8> {
    assert_eq!(der[0], 0x30, "not a DER sequence");
    let mut i = if der[1] & 0x80 != 0 {
        2 + usize::from(der[1] & 0x7f)
    } else {
        2
    };
    let mut raw = Vec::new();
    for _ in 0..2 {
        assert_eq!(der[i], 0x02, "not a DER integer");
        let len = usize::from(der[i + 1]);
        let int = &der[i + 2..i + 2 + len];
        let int = &int[int.len().saturating_sub(width)..];
        raw.extend(std::iter::repeat_n(0, width - int.len()));
        raw.extend_from_slice(int);
        i += 2 + len;
    }
    raw
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// An outside JWT issuer: a key pair made by openssl, tokens signed by openssl.
struct Issuer {
    dir: PathBuf,
    algorithm: &'static str,
}

impl Issuer {
    fn rs256(dir: &Path) -> Issuer {
        openssl(dir, &["genrsa", "-out", "issuer.pem", "2048"], b"");
        openssl(
            dir,
            &[
                "rsa",
                "-in",
                "issuer.pem",
                "-pubout",
                "-out",
                "issuer.pub.pem",
            ],
            b"",
        );
        Issuer {
            dir: dir.to_path_buf(),
            algorithm: "RS256",
        }
    }

    fn es256(dir: &Path) -> Issuer {
        openssl(
            dir,
            &[
                "ecparam",
                "-name",
                "prime256v1",
                "-genkey",
                "-noout",
                "-out",
                "issuer.pem",
            ],
            b"",
        );
        openssl(
            dir,
            &[
                "ec",
                "-in",
                "issuer.pem",
                "-pubout",
                "-out",
                "issuer.pub.pem",
            ],
            b"",
        );
        Issuer {
            dir: dir.to_path_buf(),
            algorithm: "ES256",
        }
    }

    fn public_key(&self) -> PathBuf {
        self.dir.join("issuer.pub.pem")
    }

    fn token(&self, claims: Value) -> String {
        let header = json!({"alg": self.algorithm, "typ": "JWT"});
        let signed = format!(
            "{}.{}",
            base64url(header.to_string().as_bytes()),
            base64url(claims.to_string().as_bytes())
        );
        let signature = openssl(
            &self.dir,
            &["dgst", "-sha256", "-sign", "issuer.pem"],
            signed.as_bytes(),
        );
        let signature = if self.algorithm == "ES256" {
            der_to_raw(&signature, 32)
        } else {
            signature
        };
        format!("{signed}.{}", base64url(&signature))
    }

    fn permitting(&self, permissions: &[&str]) -> String {
        self.token(json!({"permissions": permissions, "exp": now() + 600}))
    }
}

/// POSTs a JSON-RPC body with an optional bearer token: status and parsed body.
fn call(url: &str, token: Option<&str>, body: &Value) -> (u16, Value) {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = bearer
        .as_deref()
        .map(|b| vec![("Authorization", b)])
        .unwrap_or_default();
    let (status, _, text) = http_request_with(url, "POST", &body.to_string(), &headers);
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, value)
}

fn request(id: u64, method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

fn unauthorized(response: &Value) -> bool {
    response["error"]["code"] == json!(-40100)
}

/// The status of a WebSocket upgrade of `url` (`ws://host:port/path`) with `headers`.
fn upgrade_status(url: &str, headers: &str) -> u16 {
    let rest = url.trim_start_matches("ws://");
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) if rest[i..].starts_with('?') => (&rest[..i], format!("/{}", &rest[i..])),
        Some(i) => (&rest[..i], rest[i..].to_string()),
        None => (rest, "/".to_string()),
    };
    let mut stream = TcpStream::connect(authority).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{headers}\r\n"
    )
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
        head.push(byte[0]);
    }
    String::from_utf8_lossy(&head)
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

#[test]
fn an_outside_rs256_token_calls_what_it_permits_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let issuer = Issuer::rs256(dir.path());
    let key = format!(
        "--rpc-http-authentication-jwt-public-key-file={}",
        issuer.public_key().display()
    );
    let node = start(
        &dir.path().join("node"),
        &[
            "--rpc-http-authentication-enabled",
            &key,
            "--rpc-http-api-methods-no-auth=net_version",
        ],
    );
    let url = &node.http;
    let token = issuer.permitting(&["eth:blockNumber", "eth:getTransactionCount", "net:*"]);

    // Permitted: a method by name, a whole group.
    let (status, r) = call(url, Some(&token), &request(1, "eth_blockNumber", json!([])));
    assert_eq!(status, 200, "{r}");
    assert!(r["result"].is_string(), "{r}");
    let (status, r) = call(url, Some(&token), &request(2, "net_peerCount", json!([])));
    assert_eq!(status, 200, "{r}");
    assert!(r["result"].is_string(), "{r}");

    // Not permitted: 401 and Besu's -40100.
    let (status, r) = call(url, Some(&token), &request(3, "eth_chainId", json!([])));
    assert_eq!(status, 401, "{r}");
    assert!(unauthorized(&r), "{r}");
    assert_eq!(r["id"], json!(3), "{r}");

    // No token: only the no-auth methods.
    let (status, r) = call(url, None, &request(4, "eth_blockNumber", json!([])));
    assert_eq!(status, 401, "{r}");
    assert!(unauthorized(&r), "{r}");
    let (status, r) = call(url, None, &request(5, "net_version", json!([])));
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["result"], json!("1337"), "{r}");

    // A batch: each entry on its own.
    let batch = json!([
        request(6, "eth_blockNumber", json!([])),
        request(7, "eth_chainId", json!([])),
        request(8, "net_version", json!([])),
    ]);
    let (status, r) = call(url, Some(&token), &batch);
    assert_eq!(status, 200, "{r}");
    let entry = |id: u64| {
        r.as_array()
            .unwrap()
            .iter()
            .find(|e| e["id"] == json!(id))
            .cloned()
            .unwrap_or_else(|| panic!("no entry {id} in {r}"))
    };
    assert!(entry(6)["result"].is_string(), "{r}");
    assert!(unauthorized(&entry(7)), "{r}");
    assert!(entry(8)["result"].is_string(), "{r}");

    // A refused method does not run: the transfer is not in the pool and the nonce is unmoved.
    let signer: alloy::signers::local::PrivateKeySigner = DEV_KEYS[0].parse().unwrap();
    let sender = signer.address().to_string();
    let transfer = sign_eip1559(
        &signer,
        alloy::consensus::TxEip1559 {
            chain_id: 1337,
            nonce: 0,
            gas_limit: 21_000,
            max_fee_per_gas: 10_000_000_000,
            max_priority_fee_per_gas: 1,
            to: alloy::primitives::TxKind::Call(alloy::primitives::Address::repeat_byte(0x42)),
            value: alloy::primitives::U256::from(1),
            access_list: Default::default(),
            input: Default::default(),
        },
    )
    .to_string();
    let send = request(9, "eth_sendRawTransaction", json!([transfer]));
    let expired = issuer.token(json!({"permissions": ["*:*"], "exp": now() - 5}));
    let forger = dir.path().join("forger");
    std::fs::create_dir_all(&forger).unwrap();
    let forged = Issuer::rs256(&forger).permitting(&["*:*"]);
    for (who, bearer) in [
        (
            "a token without eth:sendRawTransaction",
            Some(token.as_str()),
        ),
        ("no token", None),
        ("an expired token", Some(expired.as_str())),
        ("a token from another key", Some(forged.as_str())),
        ("a malformed token", Some("not.a.jwt")),
    ] {
        let (status, r) = call(url, bearer, &send);
        assert_eq!(status, 401, "{who}: {r}");
        assert!(unauthorized(&r), "{who}: {r}");
    }
    // The bad tokens are refused outright, even for the open and the permitted methods.
    for bearer in [&expired, &forged] {
        let (status, r) = call(url, Some(bearer), &request(10, "net_version", json!([])));
        assert_eq!(status, 401, "{r}");
    }
    let (_, r) = call(
        url,
        Some(&token),
        &request(11, "eth_getTransactionCount", json!([sender, "pending"])),
    );
    assert_eq!(r["result"], json!("0x0"), "a refused send ran: {r}");

    // A token without `exp` never expires, as Besu reads an outside issuer's tokens.
    let forever = issuer.token(json!({"permissions": ["eth:blockNumber"]}));
    let (status, r) = call(
        url,
        Some(&forever),
        &request(12, "eth_blockNumber", json!([])),
    );
    assert_eq!(status, 200, "{r}");
    let (status, _) = call(url, Some(&forever), &request(13, "eth_chainId", json!([])));
    assert_eq!(status, 401);

    // /login belongs to the credentials file; with an outside issuer it is off.
    let (status, _, _) = http_request_with(
        &format!("{url}/login"),
        "POST",
        r#"{"username":"a","password":"b"}"#,
        &[],
    );
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn websocket_upgrades_are_checked_and_each_call_against_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let issuer = Issuer::es256(dir.path());
    let key = format!(
        "--rpc-ws-authentication-jwt-public-key-file={}",
        issuer.public_key().display()
    );
    let node = start(
        &dir.path().join("node"),
        &[
            "--rpc-ws-authentication-enabled",
            "--rpc-ws-authentication-jwt-algorithm=ES256",
            &key,
            "--rpc-ws-api-methods-no-auth=eth_chainId",
        ],
    );
    let token = issuer.permitting(&["eth:blockNumber"]);
    let expired = issuer.token(json!({"permissions": ["*:*"], "exp": now() - 5}));

    // A bad token is refused at the upgrade; a good one or none is let in.
    assert_eq!(
        upgrade_status(&node.ws, &format!("Authorization: Bearer {expired}\r\n")),
        401
    );
    assert_eq!(
        upgrade_status(&format!("{}?token={expired}", node.ws), ""),
        401
    );
    assert_eq!(
        upgrade_status(&node.ws, &format!("Authorization: Bearer {token}\r\n")),
        101
    );

    // Over a connection with the token: what it permits, and nothing else.
    let ws = ProviderBuilder::new()
        .connect_ws(WsConnect::new(node.ws.clone()).with_auth(Authorization::bearer(&token)))
        .await
        .unwrap();
    assert!(ws.get_block_number().await.is_ok());
    let refused = ws
        .raw_request::<_, Value>("eth_gasPrice".into(), ())
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("-40100"), "{refused}");

    // The token in the query, as a browser has to send it.
    let ws = ProviderBuilder::new()
        .connect_ws(WsConnect::new(format!("{}/?token={token}", node.ws)))
        .await
        .unwrap();
    assert!(ws.get_block_number().await.is_ok());

    // No token: the no-auth methods only.
    let ws = ProviderBuilder::new()
        .connect_ws(WsConnect::new(node.ws.clone()))
        .await
        .unwrap();
    assert_eq!(ws.get_chain_id().await.unwrap(), 1337);
    let refused = ws.get_block_number().await.unwrap_err();
    assert!(refused.to_string().contains("-40100"), "{refused}");

    // HTTP has its own flags: authentication on WebSocket leaves it open.
    let r = rpc(&node.http, "eth_gasPrice", json!([]));
    assert!(r["result"].is_string(), "{r}");
}

#[test]
fn the_credentials_file_users_log_in_for_tokens_of_their_permissions() {
    let dir = tempfile::tempdir().unwrap();
    let hash = bcrypt::hash("s3cret", 4).unwrap();
    let credentials = dir.path().join("auth.toml");
    std::fs::write(
        &credentials,
        format!(
            "[Users.alice]\npassword = \"{hash}\"\npermissions = [\"net:*\", \"eth:blockNumber\"]\n\
             \n[Users.root]\npassword = \"{hash}\"\npermissions = [\"*:*\"]\n"
        ),
    )
    .unwrap();
    let file = format!(
        "--rpc-http-authentication-credentials-file={}",
        credentials.display()
    );
    let node = start(
        &dir.path().join("node"),
        &[
            "--rpc-http-authentication-enabled",
            &file,
            "--metrics-authentication-enabled",
        ],
    );
    let login = |body: &str| {
        let (status, _, text) =
            http_request_with(&format!("{}/login", node.http), "POST", body, &[]);
        (status, text)
    };

    let (status, text) = login(r#"{"username":"alice","password":"s3cret"}"#);
    assert_eq!(status, 200, "{text}");
    let token = serde_json::from_str::<Value>(&text).unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let url = &node.http;
    let (status, r) = call(url, Some(&token), &request(1, "eth_blockNumber", json!([])));
    assert_eq!(status, 200, "{r}");
    let (status, r) = call(url, Some(&token), &request(2, "net_listening", json!([])));
    assert_eq!(status, 200, "{r}");
    let (status, r) = call(url, Some(&token), &request(3, "eth_chainId", json!([])));
    assert_eq!((status, unauthorized(&r)), (401, true), "{r}");

    let (status, text) = login(r#"{"username":"root","password":"s3cret"}"#);
    assert_eq!(status, 200, "{text}");
    let root: Value = serde_json::from_str(&text).unwrap();
    let (status, r) = call(
        url,
        root["token"].as_str(),
        &request(4, "eth_chainId", json!([])),
    );
    assert_eq!(status, 200, "{r}");

    // Wrong password, unknown user, malformed body, wrong method: no token.
    for body in [
        r#"{"username":"alice","password":"wrong"}"#,
        r#"{"username":"mallory","password":"s3cret"}"#,
    ] {
        let (status, text) = login(body);
        assert_eq!(status, 401, "{body}: {text}");
        assert!(!text.contains("token"), "{text}");
    }
    assert_eq!(login("{not json").0, 400);
    let (status, _, _) = http_request_with(&format!("{url}/login"), "GET", "", &[]);
    assert_eq!(status, 405);
    assert_eq!(login(&format!("\"{}\"", "x".repeat(64 * 1024))).0, 413);

    // The metrics endpoint takes the same tokens, if they permit metrics:*.
    let metrics = node.metrics.clone().unwrap();
    let scrape = |token: Option<&str>| {
        let bearer = token.map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> = bearer
            .as_deref()
            .map(|b| vec![("Authorization", b)])
            .unwrap_or_default();
        let (status, _, body) = http_request_with(&metrics, "GET", "", &headers);
        (status, body)
    };
    let (status, body) = scrape(root["token"].as_str());
    assert_eq!(status, 200);
    assert!(body.contains("ethereum_blockchain_height"), "{body}");
    assert_eq!(scrape(Some(&token)).0, 401, "alice has no metrics:*");
    assert_eq!(scrape(None).0, 401);
    assert_eq!(scrape(Some("not.a.jwt")).0, 401);

    // Without a token nothing is open (no --rpc-http-api-methods-no-auth).
    let (status, r) = call(url, None, &request(5, "net_version", json!([])));
    assert_eq!((status, unauthorized(&r)), (401, true), "{r}");
}

/// A test CA, a server certificate for 127.0.0.1 it signed, and the server's keystores.
struct Pki {
    dir: PathBuf,
}

impl Pki {
    fn new(dir: &Path) -> Pki {
        let pki = Pki {
            dir: dir.to_path_buf(),
        };
        pki.self_signed("ca", "consort test CA");
        pki.signed("server", "127.0.0.1", "subjectAltName=IP:127.0.0.1\n");
        openssl(
            dir,
            &[
                "pkcs12",
                "-export",
                "-inkey",
                "server.key",
                "-in",
                "server.pem",
                "-certfile",
                "ca.pem",
                "-out",
                "server.p12",
                "-passout",
                "pass:keystore-pw",
            ],
            b"",
        );
        std::fs::write(dir.join("password.txt"), "keystore-pw\n").unwrap();
        let mut bundle = std::fs::read(dir.join("server.pem")).unwrap();
        bundle.extend(std::fs::read(dir.join("server.key")).unwrap());
        std::fs::write(dir.join("server-bundle.pem"), bundle).unwrap();
        pki
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    fn self_signed(&self, name: &str, cn: &str) {
        openssl(
            &self.dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.pem"),
                "-days",
                "2",
                "-subj",
                &format!("/CN={cn}"),
            ],
            b"",
        );
    }

    fn signed(&self, name: &str, cn: &str, extensions: &str) {
        openssl(
            &self.dir,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
                "-subj",
                &format!("/CN={cn}"),
            ],
            b"",
        );
        std::fs::write(self.dir.join(format!("{name}.ext")), extensions).unwrap();
        openssl(
            &self.dir,
            &[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &format!("{name}.pem"),
                "-days",
                "2",
                "-extfile",
                &format!("{name}.ext"),
            ],
            b"",
        );
    }

    /// `<listed> <SHA-256 fingerprint of name.pem>`, a line of Besu's known-clients file.
    fn known_client_line(&self, name: &str, listed: &str) -> String {
        let out = openssl(
            &self.dir,
            &[
                "x509",
                "-in",
                &format!("{name}.pem"),
                "-noout",
                "-fingerprint",
                "-sha256",
            ],
            b"",
        );
        let out = String::from_utf8(out).unwrap();
        let fingerprint = out.trim().split('=').nth(1).unwrap().to_string();
        format!("{listed} {fingerprint}")
    }
}

/// `eth_chainId` over HTTPS with curl, checking the server against `ca` and presenting the
/// client certificate `client` if given: the answer, or curl's error.
fn curl_chain_id(url: &str, ca: &str, client: Option<(&str, &str)>) -> Result<Value, String> {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "20", "--cacert", ca])
        .args(["-H", "Content-Type: application/json"])
        .args([
            "--data",
            r#"{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}"#,
        ]);
    if let Some((cert, key)) = client {
        cmd.args(["--cert", cert, "--key", key]);
    }
    let out = cmd.arg(url).output().expect("run curl");
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).to_string());
    }
    serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())
}

#[test]
fn https_from_a_pkcs12_or_pem_keystore_to_a_client_that_checks_the_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let ca = pki.path("ca.pem");
    for (keystore, password) in [
        (pki.path("server.p12"), Some(pki.path("password.txt"))),
        (pki.path("server-bundle.pem"), None),
    ] {
        let mut flags = vec![
            "--rpc-http-tls-enabled".to_string(),
            format!("--rpc-http-tls-keystore-file={keystore}"),
        ];
        if let Some(p) = password {
            flags.push(format!("--rpc-http-tls-keystore-password-file={p}"));
        }
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        let node = start(&dir.path().join(format!("node-{}", flags.len())), &flags);
        assert!(node.http.starts_with("https://"), "{}", node.http);
        let answer = curl_chain_id(&node.http, &ca, None).unwrap();
        assert_eq!(answer["result"], json!("0x539"), "{answer}");
        // Another CA's client does not trust it; plain HTTP gets no JSON-RPC answer.
        let other = dir.path().join("other");
        std::fs::create_dir_all(&other).unwrap();
        Pki { dir: other.clone() }.self_signed("ca", "another CA");
        let refused = curl_chain_id(
            &node.http,
            &other.join("ca.pem").display().to_string(),
            None,
        );
        assert!(refused.is_err(), "{refused:?}");
        let plain = node.http.replacen("https://", "http://", 1);
        let (status, _, _) = http_request_with(&plain, "POST", "{}", &[]);
        assert_ne!(status, 200);
    }
}

#[test]
fn client_certificates_by_known_clients_fingerprint_or_by_ca() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    pki.self_signed("known", "known-client");
    pki.self_signed("stranger", "known-client");
    pki.self_signed("impostor", "impostor");
    pki.signed("member", "member-client", "basicConstraints=CA:FALSE\n");
    let known_file = dir.path().join("known-clients.txt");
    // The impostor's fingerprint is listed, but under another name than its certificate's.
    std::fs::write(
        &known_file,
        format!(
            "# name and fingerprint\n{}\n{}\n",
            pki.known_client_line("known", "Known-Client"),
            pki.known_client_line("impostor", "known-client"),
        ),
    )
    .unwrap();
    let ca = pki.path("ca.pem");
    let client = |name: &str| {
        (
            pki.path(&format!("{name}.pem")),
            pki.path(&format!("{name}.key")),
        )
    };
    let tls = [
        "--rpc-http-tls-enabled".to_string(),
        format!("--rpc-http-tls-keystore-file={}", pki.path("server.p12")),
        format!(
            "--rpc-http-tls-keystore-password-file={}",
            pki.path("password.txt")
        ),
        "--rpc-http-tls-client-auth-enabled".to_string(),
    ];

    // Known clients only: the fingerprint and the name listed with it decide.
    let mut flags = tls.to_vec();
    flags.push(format!(
        "--rpc-http-tls-known-clients-file={}",
        known_file.display()
    ));
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let node = start(&dir.path().join("known-node"), &flags);
    let (cert, key) = client("known");
    assert!(curl_chain_id(&node.http, &ca, Some((&cert, &key))).is_ok());
    for name in ["stranger", "impostor"] {
        let (cert, key) = client(name);
        let answer = curl_chain_id(&node.http, &ca, Some((&cert, &key)));
        assert!(answer.is_err(), "{name}: {answer:?}");
    }
    let (cert, key) = client("member");
    assert!(curl_chain_id(&node.http, &ca, Some((&cert, &key))).is_err());
    assert!(curl_chain_id(&node.http, &ca, None).is_err());
    drop(node);

    // Known clients and the CA's.
    let mut flags = tls.to_vec();
    flags.push(format!(
        "--rpc-http-tls-known-clients-file={}",
        known_file.display()
    ));
    flags.push("--rpc-http-tls-ca-clients-enabled".into());
    flags.push(format!("--Xrpc-http-tls-ca-clients-file={ca}"));
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let node = start(&dir.path().join("ca-node"), &flags);
    for (name, accepted) in [
        ("known", true),
        ("member", true),
        ("stranger", false),
        ("impostor", false),
    ] {
        let (cert, key) = client(name);
        let answer = curl_chain_id(&node.http, &ca, Some((&cert, &key)));
        assert_eq!(answer.is_ok(), accepted, "{name}: {answer:?}");
    }
}

/// Runs the node with `args` and expects it to refuse to start: its stderr.
fn refused_start(dir: &Path, args: &[String]) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_consort"))
        .arg("--network=dev")
        .arg(format!("--data-path={}", dir.join("node").display()))
        .args([
            "--rpc-http-enabled",
            "--rpc-http-port=0",
            "--p2p-enabled=false",
        ])
        .args(args)
        .env_remove("CONSORT_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let exited = support::poll(Duration::from_secs(30), || child.try_wait().unwrap());
    if exited.is_none() {
        let _ = child.kill();
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        exited.is_some_and(|status| !status.success()),
        "started with {args:?}: {stderr}"
    );
    stderr
}

#[test]
fn wrong_security_files_stop_start_up_naming_their_flag() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    std::fs::write(dir.path().join("wrong-password.txt"), "nope\n").unwrap();
    std::fs::write(
        dir.path().join("plain.toml"),
        "[Users.bob]\npassword = \"bob\"\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("known.txt"), "client nothex\n").unwrap();
    std::fs::write(dir.path().join("garbage.pem"), "not a key\n").unwrap();
    let p = |name: &str| dir.path().join(name).display().to_string();
    let tls = |rest: &[String]| {
        let mut v = vec![
            "--rpc-http-tls-enabled".to_string(),
            format!("--rpc-http-tls-keystore-file={}", pki.path("server.p12")),
        ];
        v.extend_from_slice(rest);
        v
    };
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["--rpc-http-authentication-enabled".into()],
            "--rpc-http-authentication-credentials-file",
        ),
        (
            vec![
                "--rpc-http-authentication-enabled".into(),
                format!(
                    "--rpc-http-authentication-jwt-public-key-file={}",
                    p("missing.pem")
                ),
            ],
            "--rpc-http-authentication-jwt-public-key-file",
        ),
        (
            vec![
                "--rpc-http-authentication-enabled".into(),
                format!(
                    "--rpc-http-authentication-jwt-public-key-file={}",
                    p("garbage.pem")
                ),
            ],
            "not a PEM",
        ),
        (
            vec![
                "--rpc-http-authentication-enabled".into(),
                format!(
                    "--rpc-http-authentication-jwt-public-key-file={}",
                    p("ca.pem")
                ),
                "--rpc-http-authentication-jwt-algorithm=none".into(),
            ],
            "unsupported JWT algorithm",
        ),
        (
            vec![
                "--rpc-ws-enabled".into(),
                "--rpc-ws-authentication-enabled".into(),
                format!(
                    "--rpc-ws-authentication-credentials-file={}",
                    p("plain.toml")
                ),
            ],
            "--rpc-ws-authentication-credentials-file",
        ),
        (
            vec![
                "--metrics-enabled".into(),
                "--metrics-authentication-enabled".into(),
            ],
            "--metrics-authentication-enabled needs --rpc-http-authentication-enabled",
        ),
        (
            vec!["--rpc-http-tls-enabled".into()],
            "--rpc-http-tls-keystore-file",
        ),
        (
            tls(&[format!(
                "--rpc-http-tls-keystore-password-file={}",
                p("wrong-password.txt")
            )]),
            "--rpc-http-tls-keystore",
        ),
        (tls(&[]), "--rpc-http-tls-keystore-password-file"),
        (
            tls(&[
                format!(
                    "--rpc-http-tls-keystore-password-file={}",
                    p("password.txt")
                ),
                "--rpc-http-tls-client-auth-enabled".into(),
            ]),
            "--rpc-http-tls-known-clients-file",
        ),
        (
            tls(&[
                format!(
                    "--rpc-http-tls-keystore-password-file={}",
                    p("password.txt")
                ),
                "--rpc-http-tls-client-auth-enabled".into(),
                format!("--rpc-http-tls-known-clients-file={}", p("known.txt")),
            ]),
            "nothex",
        ),
    ];
    for (args, expected) in cases {
        let stderr = refused_start(dir.path(), &args);
        assert!(
            stderr.contains(expected),
            "{args:?}: expected '{expected}' in: {stderr}"
        );
    }
}
