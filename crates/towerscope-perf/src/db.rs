//! The guide's database-query monitor.

use crate::PerfMonitor;

/// Records database query durations tagged by statement kind, and rows affected.
///
/// The kind is the statement's first keyword, one of `SELECT`, `INSERT`, `UPDATE`,
/// `DELETE`, `WITH`, `BEGIN`, `COMMIT`, `ROLLBACK`, `CREATE`, `ALTER`, `DROP`, or `OTHER`:
/// a bounded set, so query text never becomes a tag.
///
/// ```
/// use std::time::Duration;
/// use towerscope_perf::{DbMonitor, PerfMonitor};
/// let perf = PerfMonitor::new();
/// let db = DbMonitor::new(perf.clone());
/// db.log_query("select * from users where id = $1", Duration::from_millis(3), Some(1));
/// let s = perf.stats_tagged("db_query_duration", &[("query_type", "SELECT")], Duration::from_secs(60));
/// assert_eq!(s.unwrap().count, 1);
/// ```
#[derive(Debug, Clone)]
pub struct DbMonitor {
    perf: PerfMonitor,
}

const KINDS: [&str; 11] = [
    "SELECT", "INSERT", "UPDATE", "DELETE", "WITH", "BEGIN", "COMMIT", "ROLLBACK", "CREATE",
    "ALTER", "DROP",
];

/// The statement kind of `sql` (see [`DbMonitor`]).
///
/// ```
/// assert_eq!(towerscope_perf::statement_kind("  insert into t values (1)"), "INSERT");
/// assert_eq!(towerscope_perf::statement_kind("VACUUM"), "OTHER");
/// ```
pub fn statement_kind(sql: &str) -> &'static str {
    let word = sql
        .trim_start()
        .split(|c: char| !c.is_ascii_alphabetic())
        .next()
        .unwrap_or("");
    KINDS
        .iter()
        .find(|k| k.eq_ignore_ascii_case(word))
        .copied()
        .unwrap_or("OTHER")
}

impl DbMonitor {
    /// A monitor recording into `perf`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use towerscope_perf::{DbMonitor, PerfMonitor};
    /// let perf = PerfMonitor::new();
    /// let db = DbMonitor::new(perf.clone()); // records into the same monitor
    /// db.log_query("UPDATE carts SET total = $1", Duration::from_millis(4), None);
    /// assert!(perf.stats_tagged("db_query_duration", &[("query_type", "UPDATE")], Duration::from_secs(60)).is_some());
    /// ```
    pub fn new(perf: PerfMonitor) -> Self {
        Self { perf }
    }

    /// Records one query: `db_query_duration{query_type}` in seconds, and
    /// `db_rows_affected{query_type}` when given.
    ///
    /// ```
    /// use std::time::Duration;
    /// use towerscope_perf::{DbMonitor, PerfMonitor};
    /// let perf = PerfMonitor::new();
    /// let db = DbMonitor::new(perf.clone());
    /// db.log_query("delete from sessions where expires < now()", Duration::from_millis(12), Some(40));
    /// db.log_query("delete from carts where id = 7", Duration::from_millis(8), Some(1));
    /// let tags = [("query_type", "DELETE")];
    /// let window = Duration::from_secs(60);
    /// let took = perf.stats_tagged("db_query_duration", &tags, window).unwrap();
    /// assert_eq!(took.count, 2);
    /// assert!((took.max - 0.012).abs() < 0.012 * 0.01, "{took:?}"); // seconds, within the histogram's precision
    /// let rows = perf.stats_tagged("db_rows_affected", &tags, window).unwrap();
    /// assert!((rows.max - 40.0).abs() < 40.0 * 0.01, "{rows:?}");
    /// // The query text is never a tag: only its statement kind is.
    /// assert!(perf.stats_tagged("db_query_duration", &[("query_type", "delete from carts where id = 7")], window).is_none());
    /// ```
    pub fn log_query(&self, sql: &str, duration: std::time::Duration, rows_affected: Option<u64>) {
        let kind = statement_kind(sql);
        let tags = [("query_type", kind)];
        self.perf
            .record("db_query_duration", duration.as_secs_f64(), &tags);
        if let Some(rows) = rows_affected {
            self.perf.record("db_rows_affected", rows as f64, &tags);
        }
    }
}
