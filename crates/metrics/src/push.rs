//! Pushing to a Prometheus Pushgateway (`--metrics-push-*`): every interval, the whole
//! registry replaces the node's group (`PUT /metrics/job/<job>`); on shutdown the group is
//! deleted, as Besu does.

use crate::Registry;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

/// How long one push may take, connection included.
const PUSH_TIMEOUT: Duration = Duration::from_secs(10);
/// Most bytes of a Pushgateway answer read.
const MAX_ANSWER_BYTES: u64 = 64 * 1024;

/// Where and how often to push.
#[derive(Debug, Clone)]
pub struct PushConfig {
    /// The Pushgateway's host.
    pub host: String,
    /// Its port.
    pub port: u16,
    /// Time between pushes; the first comes after half of it.
    pub interval: Duration,
    /// The job the metrics are grouped under.
    pub job: String,
}

impl PushConfig {
    fn path(&self) -> String {
        format!("/metrics/job/{}", escape(&self.job))
    }
}

/// A running pusher.
#[derive(Debug)]
pub struct Pusher {
    config: PushConfig,
    task: JoinHandle<()>,
}

/// Starts pushing `registry` as `config` says.
pub fn start_push(registry: Registry, config: PushConfig) -> Pusher {
    let task = {
        let config = config.clone();
        tokio::spawn(async move {
            tokio::time::sleep(config.interval / 2).await;
            let mut ticks = tokio::time::interval(config.interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let body = registry.render();
                if let Err(e) = request(&config, "PUT", &body).await {
                    tracing::warn!(
                        "could not push metrics to {}:{}: {e}",
                        config.host,
                        config.port
                    );
                }
            }
        })
    };
    Pusher { config, task }
}

impl Pusher {
    /// Stops pushing and deletes the node's group from the Pushgateway.
    pub async fn stop(self) {
        self.task.abort();
        if let Err(e) = request(&self.config, "DELETE", "").await {
            tracing::warn!(
                "could not delete the metrics group from {}:{}: {e}",
                self.config.host,
                self.config.port
            );
        }
    }
}

/// Sends one request and checks for a 2xx answer.
async fn request(config: &PushConfig, method: &str, body: &str) -> std::io::Result<()> {
    let exchange = async {
        let mut stream = TcpStream::connect((config.host.as_str(), config.port)).await?;
        let head = format!(
            "{method} {} HTTP/1.1\r\nHost: {}:{}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            config.path(),
            config.host,
            config.port,
            body.len()
        );
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body.as_bytes()).await?;
        let mut answer = Vec::new();
        stream
            .take(MAX_ANSWER_BYTES)
            .read_to_end(&mut answer)
            .await?;
        let status_line = answer
            .split(|&b| b == b'\n')
            .next()
            .map(|l| String::from_utf8_lossy(l).trim().to_string())
            .unwrap_or_default();
        let code = status_line.split(' ').nth(1).unwrap_or_default();
        if code.starts_with('2') {
            Ok(())
        } else {
            Err(std::io::Error::other(format!(
                "the Pushgateway answered {status_line:?}"
            )))
        }
    };
    tokio::time::timeout(PUSH_TIMEOUT, exchange)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "push timed out"))?
}

/// `segment` percent-encoded for a URL path.
fn escape(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// A Pushgateway stand-in: answers 200 and hands back each request it got.
    async fn gateway() -> (u16, tokio::sync::mpsc::Receiver<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        tokio::spawn(async move {
            loop {
                let (mut stream, _) = listener.accept().await.unwrap();
                let mut got = Vec::new();
                let mut buf = [0u8; 4096];
                loop {
                    let n = stream.read(&mut buf).await.unwrap();
                    got.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&got).to_string();
                    if let Some((head, body)) = text.split_once("\r\n\r\n") {
                        let len: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("Content-Length: "))
                            .and_then(|v| v.trim().parse().ok())
                            .unwrap_or(0);
                        if body.len() >= len {
                            break;
                        }
                    }
                    if n == 0 {
                        break;
                    }
                }
                stream
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                    .await
                    .unwrap();
                tx.send(String::from_utf8_lossy(&got).to_string())
                    .await
                    .unwrap();
            }
        });
        (port, rx)
    }

    #[tokio::test]
    async fn pushes_the_registry_under_the_job_and_deletes_the_group_on_stop() {
        let (port, mut got) = gateway().await;
        let registry = Registry::new("consort/test").unwrap();
        let pusher = start_push(
            registry,
            PushConfig {
                host: "127.0.0.1".into(),
                port,
                interval: Duration::from_millis(200),
                job: "besu client/1".into(),
            },
        );
        let first = got.recv().await.unwrap();
        assert!(
            first.starts_with("PUT /metrics/job/besu%20client%2F1 HTTP/1.1\r\n"),
            "{first}"
        );
        assert!(
            first.contains("process_release{version=\"consort/test\"} 1"),
            "{first}"
        );
        pusher.stop().await;
        let mut last = got.recv().await.unwrap();
        while last.starts_with("PUT") {
            last = got.recv().await.unwrap();
        }
        assert!(
            last.starts_with("DELETE /metrics/job/besu%20client%2F1 HTTP/1.1\r\n"),
            "{last}"
        );
    }

    #[tokio::test]
    async fn a_refusing_gateway_is_an_error_not_a_panic() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = stream.read(&mut buf).await;
            let _ = stream
                .write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                .await;
        });
        let config = PushConfig {
            host: "127.0.0.1".into(),
            port,
            interval: Duration::from_secs(1),
            job: "j".into(),
        };
        let err = request(&config, "PUT", "x 1\n").await.unwrap_err();
        assert!(err.to_string().contains("400"), "{err}");
    }
}
