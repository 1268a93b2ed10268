//! The process metrics Besu exports (client_java's names), read from `/proc` at each scrape.
//! CPU time keeps its fractions of a second, so `rate()` over a short window is meaningful.

use crate::{metrics, Registry, Result};

metrics! {
    /// The node's process.
    struct Process {
        /// Total user and system CPU time spent in seconds
        cpu: Counter = "process_cpu_seconds_total",
        /// Number of open file descriptors
        open_fds: IntGauge = "process_open_fds",
        /// Maximum number of open file descriptors
        max_fds: IntGauge = "process_max_fds",
        /// Virtual memory size in bytes
        virtual_memory: IntGauge = "process_virtual_memory_bytes",
        /// Resident memory size in bytes
        resident_memory: IntGauge = "process_resident_memory_bytes",
        /// Start time of the process since unix epoch in seconds
        start_time: Gauge = "process_start_time_seconds",
        /// Number of OS threads in the process
        threads: IntGauge = "process_threads",
    }
}

/// Registers the process metrics, sampled before each scrape of `registry`.
pub(crate) fn register(registry: &Registry) -> Result<()> {
    let process = Process::new(registry)?;
    let ticks = procfs::ticks_per_second().max(1) as f64;
    let page = procfs::page_size() as i64;
    if let (Ok(me), Ok(boot)) = (procfs::process::Process::myself(), procfs::boot_time_secs()) {
        if let Ok(stat) = me.stat() {
            process
                .start_time
                .set(boot as f64 + stat.starttime as f64 / ticks);
        }
    }
    registry.on_scrape(Box::new(move || {
        let Ok(me) = procfs::process::Process::myself() else {
            return;
        };
        if let Ok(n) = me.fd_count() {
            process.open_fds.set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        if let Ok(limits) = me.limits() {
            if let procfs::process::LimitValue::Value(max) = limits.max_open_files.soft_limit {
                process.max_fds.set(i64::try_from(max).unwrap_or(i64::MAX));
            }
        }
        if let Ok(stat) = me.stat() {
            process
                .virtual_memory
                .set(i64::try_from(stat.vsize).unwrap_or(i64::MAX));
            process.resident_memory.set(stat.rss as i64 * page);
            process.threads.set(stat.num_threads);
            let cpu = (stat.utime + stat.stime) as f64 / ticks;
            let delta = cpu - process.cpu.get();
            if delta > 0.0 {
                process.cpu.inc_by(delta);
            }
        }
    }));
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::Registry;

    #[test]
    fn cpu_time_keeps_its_fractions() {
        let registry = Registry::new("test").unwrap();
        let mut spin = 0u64;
        let start = std::time::Instant::now();
        while start.elapsed() < std::time::Duration::from_millis(50) {
            spin = spin.wrapping_add(1);
        }
        assert!(spin > 0);
        let text = registry.render();
        let cpu: f64 = text
            .lines()
            .find_map(|l| l.strip_prefix("process_cpu_seconds_total "))
            .unwrap()
            .parse()
            .unwrap();
        assert!(cpu > 0.0 && cpu.fract() != 0.0, "{cpu}");
        for name in [
            "process_open_fds",
            "process_resident_memory_bytes",
            "process_start_time_seconds",
        ] {
            assert!(text.contains(name), "{name} missing");
        }
    }
}
