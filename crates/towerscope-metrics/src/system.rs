//! Process and system collectors, read at scrape time (no background polling).

use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
#[cfg(not(unix))]
use sysinfo::Disks;
use sysinfo::{MemoryRefreshKind, Networks, Pid, ProcessRefreshKind, ProcessesToUpdate, System};

use crate::ConfigError;

fn encode_gauge(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    v: f64,
) -> std::fmt::Result {
    let g = ConstGauge::new(v);
    g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)
}

/// The standard Prometheus process metrics for this process, read when scraped:
/// `process_cpu_seconds_total`, `process_resident_memory_bytes`,
/// `process_virtual_memory_bytes`, `process_open_fds`, `process_max_fds`,
/// `process_start_time_seconds`. A value the platform cannot give is left out.
///
/// ```
/// let mut registry = prometheus_client::registry::Registry::default();
/// towerscope_metrics::ProcessCollector::register(&mut registry).unwrap();
/// ```
#[derive(Debug)]
pub struct ProcessCollector {
    pid: Pid,
    system: Mutex<System>,
}

impl ProcessCollector {
    /// Registers the collector for the current process.
    ///
    /// ```
    /// use towerscope_metrics::{Format, MetricsService, ProcessCollector};
    /// let mut registry = prometheus_client::registry::Registry::default();
    /// ProcessCollector::register(&mut registry).unwrap();
    /// let text = MetricsService::new(registry).encode(Format::Prometheus);
    /// # #[cfg(target_os = "linux")]
    /// assert!(text.contains("process_resident_memory_bytes "), "{text}");
    /// # #[cfg(target_os = "linux")]
    /// assert!(text.contains("process_cpu_seconds_total "), "{text}");
    /// ```
    pub fn register(registry: &mut Registry) -> Result<(), ConfigError> {
        let pid = sysinfo::get_current_pid().map_err(|e| ConfigError::System(e.to_string()))?;
        let system = System::new().map_err(|e| ConfigError::System(e.to_string()))?;
        registry.register_collector(Box::new(Self {
            pid,
            system: Mutex::new(system),
        }));
        Ok(())
    }
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> std::fmt::Result {
        let mut system = self.system.lock().unwrap_or_else(PoisonError::into_inner);
        system.refresh_processes_specifics(
            ProcessesToUpdate::Some(&[self.pid]),
            false,
            ProcessRefreshKind::nothing()
                .with_cpu()
                .with_memory()
                .without_tasks(),
        );
        let Some(p) = system.process(self.pid) else {
            return Ok(());
        };
        let cpu = ConstCounter::new(p.accumulated_cpu_time() as f64 / 1000.0);
        cpu.encode(encoder.encode_descriptor(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds.",
            None,
            cpu.metric_type(),
        )?)?;
        encode_gauge(
            &mut encoder,
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            p.memory() as f64,
        )?;
        encode_gauge(
            &mut encoder,
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes.",
            p.virtual_memory() as f64,
        )?;
        if let Some(fds) = p.open_files() {
            encode_gauge(
                &mut encoder,
                "process_open_fds",
                "Number of open file descriptors.",
                fds as f64,
            )?;
        }
        if let Some(max) = p.open_files_limit() {
            encode_gauge(
                &mut encoder,
                "process_max_fds",
                "Maximum number of open file descriptors.",
                max as f64,
            )?;
        }
        encode_gauge(
            &mut encoder,
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds.",
            p.start_time() as f64,
        )?;
        Ok(())
    }
}

/// Names of the system gauges.
///
/// ```
/// let names = towerscope_metrics::SystemNames::guide();
/// assert_eq!(names.cpu, "app_cpu_usage_percent");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SystemNames {
    /// CPU use of the whole machine, percent, averaged since the previous scrape.
    pub cpu: String,
    /// Memory in use, bytes.
    pub memory_used: String,
    /// Memory in use, percent of total.
    pub memory_percent: String,
    /// Disk space in use on the filesystem holding the configured path, percent.
    pub disk_percent: String,
    /// Bytes received and sent per network interface since it came up: a counter, written
    /// with `_total` after this name, labelled `network_interface_name` and
    /// `network_io_direction` (`receive`, `transmit`).
    pub network_io: String,
}

impl SystemNames {
    /// `system_cpu_usage_percent`, `system_memory_used_bytes`,
    /// `system_memory_usage_percent`, `system_disk_usage_percent`,
    /// `system_network_io_bytes_total` (the default).
    ///
    /// ```
    /// let names = towerscope_metrics::SystemNames::system();
    /// assert_eq!(names, towerscope_metrics::SystemNames::default());
    /// assert_eq!(names.disk_percent, "system_disk_usage_percent");
    /// ```
    pub fn system() -> Self {
        Self {
            cpu: "system_cpu_usage_percent".into(),
            memory_used: "system_memory_used_bytes".into(),
            memory_percent: "system_memory_usage_percent".into(),
            disk_percent: "system_disk_usage_percent".into(),
            network_io: "system_network_io_bytes".into(),
        }
    }

    /// The guide's names: `app_cpu_usage_percent`, `app_memory_usage_bytes`,
    /// `app_memory_usage_percent`, `app_disk_usage_percent`, and (the guide names CPU,
    /// memory, disk and network as the system metrics, but gives no name for the last)
    /// `app_network_io_bytes_total`.
    ///
    /// ```
    /// let names = towerscope_metrics::SystemNames::guide();
    /// assert_eq!(names.memory_used, "app_memory_usage_bytes");
    /// assert_eq!(names.disk_percent, "app_disk_usage_percent");
    /// ```
    pub fn guide() -> Self {
        Self {
            cpu: "app_cpu_usage_percent".into(),
            memory_used: "app_memory_usage_bytes".into(),
            memory_percent: "app_memory_usage_percent".into(),
            disk_percent: "app_disk_usage_percent".into(),
            network_io: "app_network_io_bytes".into(),
        }
    }
}

impl Default for SystemNames {
    fn default() -> Self {
        Self::system()
    }
}

#[derive(Debug)]
struct SystemState {
    system: System,
    #[cfg(not(unix))]
    disks: Disks,
    networks: Option<Networks>,
    last_cpu_refresh: Instant,
}

/// At most this many network interfaces are reported (the first by name): a host with a
/// virtual interface per container can have hundreds.
///
/// ```
/// // At most this many `device` label values per network family.
/// assert_eq!(towerscope_metrics::MAX_NETWORK_INTERFACES, 32);
/// ```
pub const MAX_NETWORK_INTERFACES: usize = 32;

/// The guide's system metrics (CPU %, memory used, disk usage %, network I/O), read at
/// scrape time.
///
/// CPU use is the average between two scrapes, which is what a rate over the scrape
/// interval means; the first scrape reports the average since the collector was built.
/// Network I/O is a counter per interface and direction
/// (`system_network_io_bytes_total{network_interface_name="eth0",network_io_direction="receive"}`,
/// the OpenTelemetry `system.network.io` metric), for `rate()`; at most
/// [`MAX_NETWORK_INTERFACES`] interfaces, their names reduced to letters, digits, `_`, `-`,
/// `.` and `@`.
///
/// ```
/// use towerscope_metrics::{SystemCollector, SystemNames};
/// let mut registry = prometheus_client::registry::Registry::default();
/// SystemCollector::builder().names(SystemNames::guide()).disk_path("/").register(&mut registry).unwrap();
/// ```
#[derive(Debug)]
pub struct SystemCollector {
    names: SystemNames,
    disk_path: PathBuf,
    state: Mutex<SystemState>,
}

/// Builder for [`SystemCollector`].
///
/// ```
/// use towerscope_metrics::{SystemCollector, SystemNames};
/// let mut registry = prometheus_client::registry::Registry::default();
/// SystemCollector::builder()
///     .names(SystemNames::system()) // `system_cpu_usage_percent`, …
///     .disk_path("/")
///     .register(&mut registry)
///     .expect("valid metric names");
/// ```
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct SystemCollectorBuilder {
    names: SystemNames,
    disk_path: Option<PathBuf>,
    no_network: bool,
}

impl SystemCollectorBuilder {
    /// The metric names.
    ///
    /// ```
    /// use towerscope_metrics::{ConfigError, Format, MetricsService, SystemCollector, SystemNames};
    /// let mut registry = prometheus_client::registry::Registry::default();
    /// SystemCollector::builder().names(SystemNames::guide()).register(&mut registry).unwrap();
    /// let text = MetricsService::new(registry).encode(Format::Prometheus);
    /// assert!(text.contains("app_memory_usage_bytes "), "{text}");
    /// let mut bad = SystemNames::system();
    /// bad.cpu = "cpu %".into();
    /// let err = SystemCollector::builder().names(bad).register(&mut Default::default());
    /// assert!(matches!(err, Err(ConfigError::Name { field: "cpu", .. })));
    /// ```
    pub fn names(mut self, names: SystemNames) -> Self {
        self.names = names;
        self
    }

    /// A path on the filesystem whose usage to report (default `/`).
    ///
    /// ```
    /// use towerscope_metrics::{Format, MetricsService, SystemCollector};
    /// let mut registry = prometheus_client::registry::Registry::default();
    /// // The filesystem that holds the temporary directory.
    /// SystemCollector::builder().disk_path(std::env::temp_dir()).register(&mut registry).unwrap();
    /// let text = MetricsService::new(registry).encode(Format::Prometheus);
    /// # #[cfg(target_os = "linux")]
    /// assert!(text.contains("system_disk_usage_percent "), "{text}");
    /// ```
    pub fn disk_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.disk_path = Some(path.into());
        self
    }

    /// Whether to report network I/O per interface (default on).
    ///
    /// ```
    /// use towerscope_metrics::{Format, MetricsService, SystemCollector};
    /// let mut registry = prometheus_client::registry::Registry::default();
    /// SystemCollector::builder().network(false).register(&mut registry).unwrap();
    /// let text = MetricsService::new(registry).encode(Format::Prometheus);
    /// assert!(!text.contains("system_network_io_bytes_total"), "{text}");
    /// ```
    pub fn network(mut self, on: bool) -> Self {
        self.no_network = !on;
        self
    }

    /// Registers the collector.
    ///
    /// ```
    /// use towerscope_metrics::{Format, MetricsService, SystemCollector};
    /// let mut registry = prometheus_client::registry::Registry::default();
    /// SystemCollector::builder().register(&mut registry).unwrap();
    /// // Read at scrape time: CPU use averaged since the collector was built.
    /// let text = MetricsService::new(registry).encode(Format::Prometheus);
    /// assert!(text.contains("# TYPE system_cpu_usage_percent gauge"), "{text}");
    /// assert!(text.contains("system_memory_used_bytes "), "{text}");
    /// ```
    pub fn register(self, registry: &mut Registry) -> Result<(), ConfigError> {
        for (field, name) in [
            ("cpu", &self.names.cpu),
            ("memory_used", &self.names.memory_used),
            ("memory_percent", &self.names.memory_percent),
            ("disk_percent", &self.names.disk_percent),
            ("network_io", &self.names.network_io),
        ] {
            crate::names::check_metric_name(field, name)?;
        }
        let mut system = System::new().map_err(|e| ConfigError::System(e.to_string()))?;
        system.refresh_cpu_usage();
        #[cfg(not(unix))]
        let disks =
            Disks::new_with_refreshed_list().map_err(|e| ConfigError::System(e.to_string()))?;
        let networks = if self.no_network {
            None
        } else {
            Some(
                Networks::new_with_refreshed_list()
                    .map_err(|e| ConfigError::System(e.to_string()))?,
            )
        };
        registry.register_collector(Box::new(SystemCollector {
            names: self.names,
            disk_path: self.disk_path.unwrap_or_else(|| PathBuf::from("/")),
            state: Mutex::new(SystemState {
                system,
                #[cfg(not(unix))]
                disks,
                networks,
                last_cpu_refresh: Instant::now(),
            }),
        }));
        Ok(())
    }
}

impl SystemCollector {
    /// A builder.
    ///
    /// ```
    /// let mut registry = prometheus_client::registry::Registry::default();
    /// towerscope_metrics::SystemCollector::builder().register(&mut registry).unwrap(); // the defaults
    /// ```
    pub fn builder() -> SystemCollectorBuilder {
        SystemCollectorBuilder::default()
    }
}

/// Space in use on the filesystem that holds `path`, percent of its size, as
/// node_exporter's dashboards compute it (`1 - avail / size`): blocks only root may use
/// count as used. One `statvfs` of that filesystem: no other mount is touched, so a hung
/// network mount elsewhere cannot hold the scrape.
#[cfg(unix)]
fn disk_usage_percent(path: &Path) -> Option<f64> {
    let fs = rustix::fs::statvfs(path).ok()?;
    (fs.f_blocks > 0).then(|| {
        let used = fs.f_blocks.saturating_sub(fs.f_bavail);
        used as f64 * 100.0 / fs.f_blocks as f64
    })
}

/// The disk whose mount point is the longest prefix of `path`, as
/// [the Unix one](disk_usage_percent) computes it.
#[cfg(not(unix))]
fn disk_usage_percent_of(disks: &Disks, path: &Path) -> Option<f64> {
    disks
        .iter()
        .filter(|d| path.starts_with(d.mount_point()))
        .max_by_key(|d| d.mount_point().as_os_str().len())
        .filter(|d| d.total_space() > 0)
        .map(|d| {
            let used = d.total_space().saturating_sub(d.available_space());
            used as f64 * 100.0 / d.total_space() as f64
        })
}

/// An interface name as a label value: the characters Linux, macOS and Windows use in
/// interface names kept, any other one replaced by `_`.
fn interface_label(name: &std::ffi::OsStr) -> String {
    name.to_string_lossy()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '@') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The interfaces to report: `(label, received, transmitted)`, the first
/// [`MAX_NETWORK_INTERFACES`] by name.
fn network_rows<'a>(
    interfaces: impl Iterator<Item = (&'a std::ffi::OsStr, u64, u64)>,
) -> Vec<(String, u64, u64)> {
    let mut rows: Vec<(String, u64, u64)> = interfaces
        .map(|(name, received, transmitted)| (interface_label(name), received, transmitted))
        .collect();
    rows.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    rows.truncate(MAX_NETWORK_INTERFACES);
    rows
}

/// Bytes received and sent per interface, as one counter family.
fn encode_network_io(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    networks: &Networks,
) -> std::fmt::Result {
    let rows = network_rows(networks.iter().map(|(name, data)| {
        (
            name.as_os_str(),
            data.total_received(),
            data.total_transmitted(),
        )
    }));
    if rows.is_empty() {
        return Ok(());
    }
    let mut family = encoder.encode_descriptor(
        name,
        "Bytes received and sent by the network interface since it came up.",
        None,
        prometheus_client::metrics::MetricType::Counter,
    )?;
    for (interface, received, transmitted) in &rows {
        for (direction, bytes) in [("receive", received), ("transmit", transmitted)] {
            let labels = [
                ("network_interface_name", interface.as_str()),
                ("network_io_direction", direction),
            ];
            ConstCounter::new(*bytes).encode(family.encode_family(&labels)?)?;
        }
    }
    Ok(())
}

impl Collector for SystemCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> std::fmt::Result {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let state = &mut *state;
        // Two CPU readings closer than sysinfo's minimum interval give noise; keep the last
        // average then.
        if state.last_cpu_refresh.elapsed() >= sysinfo::MINIMUM_CPU_UPDATE_INTERVAL {
            state.system.refresh_cpu_usage();
            state.last_cpu_refresh = Instant::now();
        }
        state
            .system
            .refresh_memory_specifics(MemoryRefreshKind::nothing().with_ram());
        #[cfg(not(unix))]
        state.disks.refresh(true);
        let n = &self.names;
        encode_gauge(
            &mut encoder,
            &n.cpu,
            "CPU use of the machine, percent, since the previous scrape.",
            f64::from(state.system.global_cpu_usage()),
        )?;
        let used = state.system.used_memory();
        let total = state.system.total_memory();
        encode_gauge(
            &mut encoder,
            &n.memory_used,
            "Memory in use, bytes.",
            used as f64,
        )?;
        if total > 0 {
            encode_gauge(
                &mut encoder,
                &n.memory_percent,
                "Memory in use, percent of total.",
                used as f64 * 100.0 / total as f64,
            )?;
        }
        #[cfg(unix)]
        let disk = disk_usage_percent(&self.disk_path);
        #[cfg(not(unix))]
        let disk = disk_usage_percent_of(&state.disks, &self.disk_path);
        if let Some(p) = disk {
            encode_gauge(
                &mut encoder,
                &n.disk_percent,
                "Disk space in use, percent.",
                p,
            )?;
        }
        if let Some(networks) = &mut state.networks {
            // Interfaces that went away are dropped; new ones are listed.
            networks.refresh(true);
            encode_network_io(&mut encoder, &n.network_io, networks)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;
    use std::io::{Read as _, Write as _};

    #[test]
    fn interface_names_become_safe_label_values() {
        assert_eq!(interface_label(OsStr::new("eth0")), "eth0");
        assert_eq!(interface_label(OsStr::new("veth1@if7")), "veth1@if7");
        assert_eq!(interface_label(OsStr::new("br-4f.10")), "br-4f.10");
        assert_eq!(interface_label(OsStr::new("we\"ird\\n\nx")), "we_ird_n_x");
        assert_eq!(interface_label(OsStr::new("Ethernet 2")), "Ethernet_2");
    }

    #[test]
    fn at_most_the_cap_of_interfaces_the_first_by_name() {
        let names: Vec<String> = (0..100).rev().map(|i| format!("veth{i:03}")).collect();
        let rows = network_rows(names.iter().map(|n| (OsStr::new(n.as_str()), 1, 2)));
        assert_eq!(rows.len(), MAX_NETWORK_INTERFACES);
        assert_eq!(rows[0].0, "veth000");
        assert_eq!(
            rows[MAX_NETWORK_INTERFACES - 1].0,
            format!("veth{:03}", MAX_NETWORK_INTERFACES - 1)
        );
    }

    /// The loopback interface's received bytes, from the exposition.
    fn loopback_received(svc: &crate::MetricsService) -> Option<u64> {
        let text = svc.encode(crate::Format::Prometheus);
        text.lines()
            .find(|l| {
                l.starts_with(
                    "system_network_io_bytes_total{network_interface_name=\"lo\",network_io_direction=\"receive\"} ",
                )
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }

    /// The disk gauge agrees with `df` (POSIX output, 1 KiB blocks): `1 - avail / size` of
    /// the filesystem that holds the path, for `/` and for the temporary directory.
    #[cfg(unix)]
    #[test]
    fn disk_usage_agrees_with_df() {
        for path in [PathBuf::from("/"), std::env::temp_dir()] {
            let mut registry = Registry::default();
            SystemCollector::builder()
                .disk_path(&path)
                .register(&mut registry)
                .expect("valid names");
            let text = crate::MetricsService::new(registry).encode(crate::Format::Prometheus);
            let ours: f64 = text
                .lines()
                .find_map(|l| l.strip_prefix("system_disk_usage_percent "))
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{text}"));
            let df = std::process::Command::new("df")
                .args(["-P", "-k"])
                .arg(&path)
                .output()
                .expect("df");
            let out = String::from_utf8_lossy(&df.stdout);
            // `Filesystem 1024-blocks Used Available Capacity Mounted-on`, then the row.
            let row: Vec<&str> = out
                .lines()
                .nth(1)
                .expect("a row")
                .split_whitespace()
                .collect();
            let (size, avail): (f64, f64) = (
                row[1].parse().expect("size"),
                row[3].parse().expect("available"),
            );
            let expected = (size - avail) * 100.0 / size;
            // Files come and go on a shared machine between the two readings.
            assert!(
                (ours - expected).abs() < 0.5,
                "{}: ours {ours}, df's size and available give {expected} ({out})",
                path.display()
            );
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn network_io_counts_the_bytes_that_cross_an_interface() {
        let mut registry = Registry::default();
        SystemCollector::builder()
            .register(&mut registry)
            .expect("valid names");
        let svc = crate::MetricsService::new(registry);
        let before = loopback_received(&svc).expect("Linux always has `lo`");

        // One MiB through the loopback interface.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let reader = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().expect("accept");
            let mut sink = Vec::new();
            conn.read_to_end(&mut sink).expect("read");
            sink.len()
        });
        let mut conn = std::net::TcpStream::connect(addr).expect("connect");
        conn.write_all(&vec![7u8; 1 << 20]).expect("write");
        drop(conn);
        assert_eq!(reader.join().expect("reader"), 1 << 20);

        let after = loopback_received(&svc).expect("still there");
        assert!(
            after >= before + (1 << 20),
            "lo received {before} bytes before and {after} after a 1 MiB transfer"
        );
        let text = svc.encode(crate::Format::Prometheus);
        assert!(
            text.contains("# TYPE system_network_io_bytes_total counter\n"),
            "{text}"
        );
        assert!(
            text.contains("system_network_io_bytes_total{network_interface_name=\"lo\",network_io_direction=\"transmit\"} "),
            "{text}"
        );
    }
}
