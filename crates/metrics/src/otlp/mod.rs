//! OpenTelemetry export (`--metrics-protocol=OPENTELEMETRY`): the registry's metrics every
//! `OTEL_METRIC_EXPORT_INTERVAL`, and the spans of [`crate::trace`] in batches, over OTLP
//! (gRPC or HTTP protobuf) to the collector the `OTEL_*` variables name.

mod client;
mod config;
mod convert;

pub use client::{export, ExportError};
pub use config::{Endpoint, OtlpConfig, Protocol, Signal};

use crate::trace::{self, Tracer};
use crate::Registry;
use prost::Message;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::task::JoinHandle;

/// The running exporter.
#[derive(Debug)]
pub struct OtlpExporter {
    tasks: Vec<JoinHandle<()>>,
    tracer: Option<Arc<Tracer>>,
    config: OtlpConfig,
    registry: Registry,
    start: u64,
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// Starts exporting `registry` and, when traces are exported, installs the process's tracer.
pub fn start_otlp(registry: Registry, config: OtlpConfig) -> OtlpExporter {
    let start = now_ns();
    let resource = convert::resource(&config.resource);
    let mut tasks = Vec::new();
    if let Some(endpoint) = config.metrics.clone() {
        let (registry, resource, config) = (registry.clone(), resource.clone(), config.clone());
        tasks.push(tokio::spawn(async move {
            let mut ticks = tokio::time::interval(config.metric_interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                export_metrics(&registry, &resource, &endpoint, &config, start).await;
            }
        }));
    }
    let tracer = config.traces.clone().map(|endpoint| {
        let tracer = trace::install(Arc::new(Tracer::new(
            config.sampler,
            config.span_queue,
            config.span_batch,
        )));
        let (exporting, resource, config) = (tracer.clone(), resource.clone(), config.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = tokio::time::sleep(config.span_delay) => {}
                    () = exporting.ready.notified() => {}
                }
                export_spans(&exporting, &resource, &endpoint, &config).await;
            }
        }));
        tracer
    });
    OtlpExporter {
        tasks,
        tracer,
        config,
        registry,
        start,
    }
}

async fn export_metrics(
    registry: &Registry,
    resource: &opentelemetry_proto::tonic::resource::v1::Resource,
    endpoint: &Endpoint,
    config: &OtlpConfig,
    start: u64,
) {
    let times = convert::Times {
        start,
        now: now_ns(),
    };
    let request = convert::metrics_request(&registry.gather(), resource, times);
    if let Err(e) = export(endpoint, request.encode_to_vec(), config.timeout).await {
        tracing::warn!("OTLP metrics export failed: {e}");
    }
}

/// Exports every waiting span, batch by batch.
async fn export_spans(
    tracer: &Tracer,
    resource: &opentelemetry_proto::tonic::resource::v1::Resource,
    endpoint: &Endpoint,
    config: &OtlpConfig,
) {
    loop {
        let batch = tracer.take_batch();
        if batch.is_empty() {
            return;
        }
        let request = convert::traces_request(batch, resource);
        if let Err(e) = export(endpoint, request.encode_to_vec(), config.timeout).await {
            tracing::warn!("OTLP trace export failed: {e}");
            return;
        }
    }
}

impl OtlpExporter {
    /// Stops the periodic exports after a last export of the metrics and the waiting spans.
    pub async fn shutdown(self) {
        for task in &self.tasks {
            task.abort();
        }
        let resource = convert::resource(&self.config.resource);
        if let (Some(tracer), Some(endpoint)) = (&self.tracer, &self.config.traces) {
            export_spans(tracer, &resource, endpoint, &self.config).await;
        }
        if let Some(endpoint) = &self.config.metrics {
            export_metrics(
                &self.registry,
                &resource,
                endpoint,
                &self.config,
                self.start,
            )
            .await;
        }
    }
}
