//! Built-in checks: TCP connect, disk space, memory, databases (HTTP: `http_check`).

use crate::check::{CheckFuture, HealthCheck};

/// Passes when a TCP connection to the address opens.
///
/// ```
/// let check = towerscope_health::TcpCheck::new("127.0.0.1:6379");
/// # let _ = check;
/// ```
#[derive(Debug, Clone)]
pub struct TcpCheck {
    addr: String,
}

impl TcpCheck {
    /// A check of `addr` (`host:port`).
    ///
    /// ```
    /// use towerscope_health::{CheckOptions, Health, Status};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    /// let addr = listener.local_addr().unwrap().to_string();
    /// let health = Health::builder("1")
    ///     .check("redis", towerscope_health::TcpCheck::new(addr), CheckOptions::default())
    ///     .build();
    /// assert_eq!(health.readiness().await.status, Status::Healthy); // it accepts connections
    /// # });
    /// ```
    pub fn new(addr: impl Into<String>) -> Self {
        Self { addr: addr.into() }
    }
}

impl HealthCheck for TcpCheck {
    fn check(&self) -> CheckFuture<'_> {
        Box::pin(async move {
            tokio::net::TcpStream::connect(&self.addr)
                .await
                .map(drop)
                .map_err(|e| format!("connect {}: {e}", self.addr))
        })
    }
}

/// Passes while the filesystem holding `path` has at least `min_free_percent` free.
///
/// ```
/// let check = towerscope_health::DiskSpaceCheck::new("/", 10.0);
/// # let _ = check;
/// ```
#[cfg(feature = "system")]
#[derive(Debug, Clone)]
pub struct DiskSpaceCheck {
    path: std::path::PathBuf,
    min_free_percent: f64,
}

#[cfg(feature = "system")]
impl DiskSpaceCheck {
    /// A check of the filesystem holding `path`.
    ///
    /// ```
    /// use towerscope_health::{CheckOptions, Health, Status};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let check = towerscope_health::DiskSpaceCheck::new("/", 0.0); // any free space will do
    /// let health = Health::builder("1").check("disk", check, CheckOptions::default()).build();
    /// assert_eq!(health.readiness().await.status, Status::Healthy);
    /// # });
    /// ```
    pub fn new(path: impl Into<std::path::PathBuf>, min_free_percent: f64) -> Self {
        Self {
            path: path.into(),
            min_free_percent,
        }
    }
}

#[cfg(feature = "system")]
impl HealthCheck for DiskSpaceCheck {
    fn check(&self) -> CheckFuture<'_> {
        Box::pin(async move {
            let path = self.path.clone();
            let min = self.min_free_percent;
            tokio::task::spawn_blocking(move || {
                let disks = sysinfo::Disks::new_with_refreshed_list().map_err(|e| e.to_string())?;
                let disk = disks
                    .iter()
                    .filter(|d| path.starts_with(d.mount_point()))
                    .max_by_key(|d| d.mount_point().as_os_str().len())
                    .ok_or_else(|| format!("no filesystem holds {}", path.display()))?;
                if disk.total_space() == 0 {
                    return Err(format!("{} reports no size", disk.mount_point().display()));
                }
                let free = disk.available_space() as f64 * 100.0 / disk.total_space() as f64;
                if free >= min {
                    Ok(())
                } else {
                    Err(format!(
                        "{:.1}% free on {}, below {min}%",
                        free,
                        disk.mount_point().display()
                    ))
                }
            })
            .await
            .map_err(|e| e.to_string())?
        })
    }
}

/// Passes while used memory stays at or below `max_used_percent` of the machine's total.
///
/// ```
/// let check = towerscope_health::MemoryCheck::new(90.0);
/// # let _ = check;
/// ```
#[cfg(feature = "system")]
#[derive(Debug, Clone)]
pub struct MemoryCheck {
    max_used_percent: f64,
}

#[cfg(feature = "system")]
impl MemoryCheck {
    /// A check with the given ceiling.
    ///
    /// ```
    /// use towerscope_health::{CheckOptions, Health, Status};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let check = towerscope_health::MemoryCheck::new(100.0); // never above 100 %
    /// let health = Health::builder("1").check("memory", check, CheckOptions::default()).build();
    /// assert_eq!(health.readiness().await.status, Status::Healthy);
    /// # });
    /// ```
    pub fn new(max_used_percent: f64) -> Self {
        Self { max_used_percent }
    }
}

#[cfg(feature = "system")]
impl HealthCheck for MemoryCheck {
    fn check(&self) -> CheckFuture<'_> {
        Box::pin(async move {
            let max = self.max_used_percent;
            tokio::task::spawn_blocking(move || {
                let mut sys = sysinfo::System::new().map_err(|e| e.to_string())?;
                sys.refresh_memory();
                let total = sys.total_memory();
                if total == 0 {
                    return Err("total memory unknown".to_owned());
                }
                let used = sys.used_memory() as f64 * 100.0 / total as f64;
                if used <= max {
                    Ok(())
                } else {
                    Err(format!("{used:.1}% memory used, above {max}%"))
                }
            })
            .await
            .map_err(|e| e.to_string())?
        })
    }
}

/// Passes when a connection from the sqlx pool answers a ping. The pool's own acquire
/// timeout applies; the check's timeout bounds the whole run.
///
/// ```no_run
/// # async fn run() -> Result<(), sqlx::Error> {
/// let pool = sqlx::SqlitePool::connect("sqlite::memory:").await?;
/// let check = towerscope_health::SqlxCheck::new(pool);
/// # let _ = check;
/// # Ok(()) }
/// ```
#[cfg(feature = "sqlx")]
#[derive(Debug, Clone)]
pub struct SqlxCheck<DB: sqlx::Database> {
    pool: sqlx::Pool<DB>,
}

#[cfg(feature = "sqlx")]
impl<DB: sqlx::Database> SqlxCheck<DB> {
    /// A check of `pool`.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), sqlx::Error> {
    /// let pool = sqlx::SqlitePool::connect("sqlite::memory:").await?;
    /// let health = towerscope_health::Health::builder("1")
    ///     .check("db", towerscope_health::SqlxCheck::new(pool), towerscope_health::CheckOptions::default())
    ///     .build();
    /// # let _ = health; Ok(()) }
    /// ```
    pub fn new(pool: sqlx::Pool<DB>) -> Self {
        Self { pool }
    }
}

#[cfg(feature = "sqlx")]
impl<DB: sqlx::Database> HealthCheck for SqlxCheck<DB> {
    fn check(&self) -> CheckFuture<'_> {
        Box::pin(async move {
            use sqlx::Connection;
            let mut conn = self
                .pool
                .acquire()
                .await
                .map_err(|e| format!("acquire: {e}"))?;
            conn.ping().await.map_err(|e| format!("ping: {e}"))
        })
    }
}

/// Passes when Redis answers `PING` with `PONG`. Each run opens a connection (a probe
/// should see what a new client would), bounded by the check's timeout.
///
/// ```no_run
/// let client = redis::Client::open("redis://127.0.0.1:6379/").unwrap();
/// let check = towerscope_health::RedisCheck::new(client);
/// # let _ = check;
/// ```
#[cfg(feature = "redis")]
#[derive(Debug, Clone)]
pub struct RedisCheck {
    client: redis::Client,
}

#[cfg(feature = "redis")]
impl RedisCheck {
    /// A check of the server `client` points at.
    ///
    /// ```no_run
    /// # fn run() -> redis::RedisResult<()> {
    /// let client = redis::Client::open("redis://127.0.0.1:6379")?;
    /// let health = towerscope_health::Health::builder("1")
    ///     .check("redis", towerscope_health::RedisCheck::new(client), towerscope_health::CheckOptions::default())
    ///     .build();
    /// # let _ = health; Ok(()) }
    /// ```
    pub fn new(client: redis::Client) -> Self {
        Self { client }
    }
}

#[cfg(feature = "redis")]
impl HealthCheck for RedisCheck {
    fn check(&self) -> CheckFuture<'_> {
        Box::pin(async move {
            let mut conn = self
                .client
                .get_multiplexed_async_connection()
                .await
                .map_err(|e| format!("connect: {e}"))?;
            let reply: String = redis::cmd("PING")
                .query_async(&mut conn)
                .await
                .map_err(|e| format!("PING: {e}"))?;
            if reply == "PONG" {
                Ok(())
            } else {
                Err(format!("PING answered {reply:?}"))
            }
        })
    }
}
