//! The OTLP exporter's configuration, from the standard `OTEL_*` variables.

use crate::trace::{Root, Sampler};
use std::time::Duration;

/// How an endpoint is spoken to (`OTEL_EXPORTER_OTLP_PROTOCOL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// OTLP over gRPC (HTTP/2 without TLS); the default, as in Besu's Java SDK.
    Grpc,
    /// OTLP protobuf messages POSTed over HTTP/1.1.
    HttpProtobuf,
}

/// Where one signal goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The protocol.
    pub protocol: Protocol,
    /// `host:port`.
    pub authority: String,
    /// The request path.
    pub path: String,
    /// Extra request headers (`OTEL_EXPORTER_OTLP_HEADERS`).
    pub headers: Vec<(String, String)>,
}

/// The signals a node exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Metrics.
    Metrics,
    /// Traces.
    Traces,
}

impl Signal {
    fn env(self) -> &'static str {
        match self {
            Signal::Metrics => "METRICS",
            Signal::Traces => "TRACES",
        }
    }

    fn http_path(self) -> &'static str {
        match self {
            Signal::Metrics => "v1/metrics",
            Signal::Traces => "v1/traces",
        }
    }

    fn grpc_path(self) -> &'static str {
        match self {
            Signal::Metrics => "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
            Signal::Traces => "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
        }
    }
}

/// Everything the exporter needs.
#[derive(Debug, Clone)]
pub struct OtlpConfig {
    /// Where metrics go (`None`: `OTEL_METRICS_EXPORTER=none`).
    pub metrics: Option<Endpoint>,
    /// Where traces go (`None`: `OTEL_TRACES_EXPORTER=none`).
    pub traces: Option<Endpoint>,
    /// How long one export may take (`OTEL_EXPORTER_OTLP_TIMEOUT`).
    pub timeout: Duration,
    /// Time between metric exports (`OTEL_METRIC_EXPORT_INTERVAL`).
    pub metric_interval: Duration,
    /// The resource: `service.name` and the rest.
    pub resource: Vec<(String, String)>,
    /// Which traces are recorded.
    pub sampler: Sampler,
    /// Longest a finished span waits for export (`OTEL_BSP_SCHEDULE_DELAY`).
    pub span_delay: Duration,
    /// Most spans waiting (`OTEL_BSP_MAX_QUEUE_SIZE`).
    pub span_queue: usize,
    /// Most spans per export (`OTEL_BSP_MAX_EXPORT_BATCH_SIZE`).
    pub span_batch: usize,
}

fn millis(
    get: &dyn Fn(&str) -> Option<String>,
    name: &str,
    default: u64,
) -> Result<Duration, String> {
    match get(name) {
        None => Ok(Duration::from_millis(default)),
        Some(v) => v
            .trim()
            .parse::<u64>()
            .map(Duration::from_millis)
            .map_err(|_| format!("{name}={v:?} is not a number of milliseconds")),
    }
}

fn count(
    get: &dyn Fn(&str) -> Option<String>,
    name: &str,
    default: usize,
) -> Result<usize, String> {
    match get(name) {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("{name}={v:?} is not a positive number")),
    }
}

/// `%XX` escapes decoded, as the OTel spec asks of header and resource values.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let escaped = (b == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match escaped {
            Some(v) => {
                out.push(v);
                i += 3;
            }
            None => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `k=v,k2=v2` pairs.
fn pairs(name: &str, value: &str) -> Result<Vec<(String, String)>, String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => {
                Ok((k.trim().to_string(), percent_decode(v.trim())))
            }
            _ => Err(format!("{name}: {p:?} is not key=value")),
        })
        .collect()
}

/// Splits `http://host:port/path` into authority and path; https is refused.
fn split_url(name: &str, url: &str) -> Result<(String, String), String> {
    let url = url.trim();
    let rest = if let Some(rest) = url.strip_prefix("http://") {
        rest
    } else if url.starts_with("https://") {
        return Err(format!(
            "{name}={url}: TLS is not supported by the OTLP exporter; send to a collector \
             over http:// (for example one on the same host)"
        ));
    } else {
        return Err(format!("{name}={url} is not an http:// URL"));
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if authority.is_empty() {
        return Err(format!("{name}={url} has no host"));
    }
    let authority = if authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    Ok((authority, path.to_string()))
}

fn endpoint(
    get: &dyn Fn(&str) -> Option<String>,
    signal: Signal,
) -> Result<Option<Endpoint>, String> {
    let exporter_var = format!("OTEL_{}_EXPORTER", signal.env());
    match get(&exporter_var).as_deref().map(str::trim) {
        None | Some("otlp") => {}
        Some("none") => return Ok(None),
        Some(other) => {
            return Err(format!(
                "{exporter_var}={other}: only otlp and none are supported"
            ))
        }
    }
    let protocol_var = format!("OTEL_EXPORTER_OTLP_{}_PROTOCOL", signal.env());
    let protocol = match get(&protocol_var)
        .or_else(|| get("OTEL_EXPORTER_OTLP_PROTOCOL"))
        .as_deref()
        .map(str::trim)
    {
        None | Some("grpc") => Protocol::Grpc,
        Some("http/protobuf") => Protocol::HttpProtobuf,
        Some(other) => {
            return Err(format!(
                "OTEL_EXPORTER_OTLP_PROTOCOL={other}: grpc and http/protobuf are supported"
            ))
        }
    };
    let signal_var = format!("OTEL_EXPORTER_OTLP_{}_ENDPOINT", signal.env());
    let (authority, path) = if let Some(url) = get(&signal_var) {
        let (authority, path) = split_url(&signal_var, &url)?;
        let path = match protocol {
            Protocol::Grpc => signal.grpc_path().to_string(),
            Protocol::HttpProtobuf if path.is_empty() => "/".to_string(),
            Protocol::HttpProtobuf => path,
        };
        (authority, path)
    } else {
        let default = match protocol {
            Protocol::Grpc => "http://localhost:4317",
            Protocol::HttpProtobuf => "http://localhost:4318",
        };
        let url = get("OTEL_EXPORTER_OTLP_ENDPOINT").unwrap_or_else(|| default.to_string());
        let (authority, base) = split_url("OTEL_EXPORTER_OTLP_ENDPOINT", &url)?;
        let path = match protocol {
            Protocol::Grpc => signal.grpc_path().to_string(),
            Protocol::HttpProtobuf => {
                format!("{}/{}", base.trim_end_matches('/'), signal.http_path())
            }
        };
        (authority, path)
    };
    let mut headers = match get("OTEL_EXPORTER_OTLP_HEADERS") {
        Some(v) => pairs("OTEL_EXPORTER_OTLP_HEADERS", &v)?,
        None => Vec::new(),
    };
    let headers_var = format!("OTEL_EXPORTER_OTLP_{}_HEADERS", signal.env());
    if let Some(v) = get(&headers_var) {
        headers.extend(pairs(&headers_var, &v)?);
    }
    Ok(Some(Endpoint {
        protocol,
        authority,
        path,
        headers,
    }))
}

fn sampler(get: &dyn Fn(&str) -> Option<String>) -> Result<Sampler, String> {
    let ratio = || -> Result<f64, String> {
        match get("OTEL_TRACES_SAMPLER_ARG") {
            None => Ok(1.0),
            Some(v) => v
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|r| (0.0..=1.0).contains(r))
                .ok_or_else(|| format!("OTEL_TRACES_SAMPLER_ARG={v:?} is not between 0 and 1")),
        }
    };
    Ok(match get("OTEL_TRACES_SAMPLER").as_deref().map(str::trim) {
        None | Some("parentbased_always_on") => Sampler::ParentBased(Root::AlwaysOn),
        Some("parentbased_always_off") => Sampler::ParentBased(Root::AlwaysOff),
        Some("parentbased_traceidratio") => Sampler::ParentBased(Root::Ratio(ratio()?)),
        Some("always_on") => Sampler::AlwaysOn,
        Some("always_off") => Sampler::AlwaysOff,
        Some("traceidratio") => Sampler::Ratio(ratio()?),
        Some(other) => return Err(format!("OTEL_TRACES_SAMPLER={other} is not supported")),
    })
}

impl OtlpConfig {
    /// Reads the `OTEL_*` variables through `get`. `service` is the `service.name` when neither
    /// `OTEL_SERVICE_NAME` nor `OTEL_RESOURCE_ATTRIBUTES` names one (Besu uses
    /// `--metrics-push-prometheus-job`); `version` becomes `service.version`. `None` when
    /// `OTEL_SDK_DISABLED=true`.
    pub fn from_env(
        get: impl Fn(&str) -> Option<String>,
        service: &str,
        version: &str,
    ) -> Result<Option<OtlpConfig>, String> {
        let get: &dyn Fn(&str) -> Option<String> =
            &|name| get(name).filter(|v| !v.trim().is_empty());
        if get("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true")) {
            return Ok(None);
        }
        let mut resource = match get("OTEL_RESOURCE_ATTRIBUTES") {
            Some(v) => pairs("OTEL_RESOURCE_ATTRIBUTES", &v)?,
            None => Vec::new(),
        };
        let named = get("OTEL_SERVICE_NAME")
            .or_else(|| {
                resource
                    .iter()
                    .find(|(k, _)| k == "service.name")
                    .map(|(_, v)| v.clone())
            })
            .unwrap_or_else(|| service.to_string());
        resource.retain(|(k, _)| k != "service.name");
        resource.insert(0, ("service.name".into(), named));
        for (k, v) in [
            ("service.version", version),
            ("telemetry.sdk.name", "consort"),
            ("telemetry.sdk.language", "rust"),
        ] {
            if !resource.iter().any(|(key, _)| key == k) {
                resource.push((k.into(), v.into()));
            }
        }
        Ok(Some(OtlpConfig {
            metrics: endpoint(get, Signal::Metrics)?,
            traces: endpoint(get, Signal::Traces)?,
            timeout: millis(get, "OTEL_EXPORTER_OTLP_TIMEOUT", 10_000)?,
            metric_interval: millis(get, "OTEL_METRIC_EXPORT_INTERVAL", 60_000)?
                .max(Duration::from_millis(100)),
            resource,
            sampler: sampler(get)?,
            span_delay: millis(get, "OTEL_BSP_SCHEDULE_DELAY", 5_000)?
                .max(Duration::from_millis(10)),
            span_queue: count(get, "OTEL_BSP_MAX_QUEUE_SIZE", 2048)?,
            span_batch: count(get, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512)?,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Option<OtlpConfig>, String> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        OtlpConfig::from_env(|k| vars.get(k).cloned(), "besu-client", "v1")
    }

    #[test]
    fn defaults_are_grpc_to_localhost_with_the_job_as_service_name() {
        let c = config(&[]).unwrap().unwrap();
        let m = c.metrics.unwrap();
        assert_eq!(m.protocol, Protocol::Grpc);
        assert_eq!(m.authority, "localhost:4317");
        assert_eq!(
            m.path,
            "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"
        );
        assert_eq!(c.resource[0], ("service.name".into(), "besu-client".into()));
        assert_eq!(c.metric_interval, Duration::from_secs(60));
        assert_eq!(c.sampler, Sampler::ParentBased(Root::AlwaysOn));
    }

    #[test]
    fn the_standard_variables_set_endpoints_headers_resource_and_intervals() {
        let c = config(&[
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/base/"),
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "http://tracer:9999/spans",
            ),
            ("OTEL_EXPORTER_OTLP_HEADERS", "api-key=a%20b, x=1"),
            ("OTEL_SERVICE_NAME", "validator-3"),
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "service.name=ignored,deployment.environment=prod",
            ),
            ("OTEL_METRIC_EXPORT_INTERVAL", "1000"),
            ("OTEL_TRACES_SAMPLER", "always_on"),
        ])
        .unwrap()
        .unwrap();
        let m = c.metrics.unwrap();
        assert_eq!(
            (m.authority.as_str(), m.path.as_str()),
            ("collector:4318", "/base/v1/metrics")
        );
        assert_eq!(
            m.headers,
            vec![("api-key".into(), "a b".into()), ("x".into(), "1".into())]
        );
        let t = c.traces.unwrap();
        assert_eq!(
            (t.authority.as_str(), t.path.as_str()),
            ("tracer:9999", "/spans")
        );
        assert_eq!(c.resource[0], ("service.name".into(), "validator-3".into()));
        assert!(c
            .resource
            .contains(&("deployment.environment".into(), "prod".into())));
        assert_eq!(c.metric_interval, Duration::from_secs(1));
        assert_eq!(c.sampler, Sampler::AlwaysOn);
    }

    #[test]
    fn bad_values_are_named_and_none_turns_a_signal_off() {
        for (vars, needle) in [
            (
                vec![("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")],
                "http/json",
            ),
            (
                vec![("OTEL_EXPORTER_OTLP_ENDPOINT", "https://c:4317")],
                "TLS",
            ),
            (
                vec![("OTEL_EXPORTER_OTLP_ENDPOINT", "c:4317")],
                "not an http://",
            ),
            (
                vec![("OTEL_METRIC_EXPORT_INTERVAL", "soon")],
                "OTEL_METRIC_EXPORT_INTERVAL",
            ),
            (
                vec![("OTEL_TRACES_SAMPLER", "jaeger_remote")],
                "jaeger_remote",
            ),
            (vec![("OTEL_EXPORTER_OTLP_HEADERS", "novalue")], "key=value"),
        ] {
            let err = config(&vars).unwrap_err();
            assert!(err.contains(needle), "{err}");
        }
        let c = config(&[("OTEL_TRACES_EXPORTER", "none")])
            .unwrap()
            .unwrap();
        assert!(c.traces.is_none() && c.metrics.is_some());
        assert!(config(&[("OTEL_SDK_DISABLED", "true")]).unwrap().is_none());
    }
}
