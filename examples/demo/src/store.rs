//! The shop's data, in SQLite through sqlx, every query timed by the performance monitor's
//! database-query monitor.

use std::future::Future;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::Serialize;
use sqlx::ConnectOptions as _;
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqlitePoolOptions};
use towerscope_perf::{DbMonitor, PerfMonitor};

/// At most this many users and orders are kept (oldest dropped first).
const MAX_RECORDS: i64 = 10_000;

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub(crate) struct User {
    pub(crate) id: i64,
    pub(crate) name: String,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub(crate) struct Order {
    pub(crate) id: i64,
    pub(crate) user_id: i64,
    pub(crate) amount: f64,
}

#[derive(Debug, Clone)]
pub(crate) struct Store {
    pool: SqlitePool,
    queries: DbMonitor,
    /// For an in-memory database: a connection that is never used, held so the database
    /// outlives the pool's connection (see [`Store::open`]).
    _keeper: Option<Arc<Mutex<SqliteConnection>>>,
}

impl Store {
    /// Opens (or creates) the database at `url` and its tables, with three users.
    ///
    /// An in-memory database (`sqlite::memory:`, named and shared by sqlx) lives only while a
    /// connection to it is open. sqlx closes a pooled connection whose query was cancelled
    /// (a client gone mid-request) and opens a new one; without another connection open, that
    /// new one would find an empty database and every later query would fail. The store
    /// therefore holds one more connection to it, unused, for its whole life.
    pub(crate) async fn open(url: &str, perf: &PerfMonitor) -> Result<Self, sqlx::Error> {
        let memory = url.contains(":memory:") || url.contains("mode=memory");
        let options = SqliteConnectOptions::from_str(url)?.create_if_missing(true);
        let keeper = if memory {
            Some(Arc::new(Mutex::new(options.connect().await?)))
        } else {
            None
        };
        let pool = if memory {
            SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
                .connect_with(options)
                .await?
        } else {
            SqlitePoolOptions::new()
                .max_connections(4)
                .connect_with(options)
                .await?
        };
        let store = Self {
            pool,
            queries: DbMonitor::new(perf.clone()),
            _keeper: keeper,
        };
        for sql in [
            "CREATE TABLE IF NOT EXISTS users (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL)",
            "CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY AUTOINCREMENT, \
             user_id INTEGER NOT NULL, amount REAL NOT NULL)",
            "INSERT OR IGNORE INTO users (id, name) VALUES (1, 'ada'), (2, 'grace'), (3, 'linus')",
        ] {
            store
                .timed(sql, sqlx::query(sql).execute(&store.pool))
                .await?;
        }
        Ok(store)
    }

    pub(crate) fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Runs one query, recording its duration (and rows affected, for writes).
    async fn timed<T: Rows>(
        &self,
        sql: &str,
        query: impl Future<Output = Result<T, sqlx::Error>>,
    ) -> Result<T, sqlx::Error> {
        let start = Instant::now();
        let result = query.await;
        self.queries.log_query(
            sql,
            start.elapsed(),
            result.as_ref().ok().and_then(Rows::rows),
        );
        result
    }

    pub(crate) async fn user(&self, id: i64) -> Result<Option<User>, sqlx::Error> {
        let sql = "SELECT id, name FROM users WHERE id = ?";
        self.timed(
            sql,
            sqlx::query_as::<_, User>(sql)
                .bind(id)
                .fetch_optional(&self.pool),
        )
        .await
    }

    pub(crate) async fn add_user(&self, name: &str) -> Result<User, sqlx::Error> {
        let sql = "INSERT INTO users (name) VALUES (?) RETURNING id, name";
        let user = self
            .timed(
                sql,
                sqlx::query_as::<_, User>(sql)
                    .bind(name)
                    .fetch_one(&self.pool),
            )
            .await?;
        let trim = "DELETE FROM users WHERE id <= ?";
        self.timed(
            trim,
            sqlx::query(trim)
                .bind(user.id - MAX_RECORDS)
                .execute(&self.pool),
        )
        .await?;
        Ok(user)
    }

    /// Places an order; `None` when the user does not exist.
    pub(crate) async fn add_order(
        &self,
        user_id: i64,
        amount: f64,
    ) -> Result<Option<Order>, sqlx::Error> {
        if self.user(user_id).await?.is_none() {
            return Ok(None);
        }
        let sql =
            "INSERT INTO orders (user_id, amount) VALUES (?, ?) RETURNING id, user_id, amount";
        let order = self
            .timed(
                sql,
                sqlx::query_as::<_, Order>(sql)
                    .bind(user_id)
                    .bind(amount)
                    .fetch_one(&self.pool),
            )
            .await?;
        let trim = "DELETE FROM orders WHERE id <= ?";
        self.timed(
            trim,
            sqlx::query(trim)
                .bind(order.id - MAX_RECORDS)
                .execute(&self.pool),
        )
        .await?;
        Ok(Some(order))
    }

    pub(crate) async fn recent_orders(&self, limit: i64) -> Result<Vec<Order>, sqlx::Error> {
        let sql = "SELECT id, user_id, amount FROM orders ORDER BY id DESC LIMIT ?";
        self.timed(
            sql,
            sqlx::query_as::<_, Order>(sql)
                .bind(limit)
                .fetch_all(&self.pool),
        )
        .await
    }
}

/// Rows affected by a query's result, where it says.
trait Rows {
    fn rows(&self) -> Option<u64>;
}

impl Rows for sqlx::sqlite::SqliteQueryResult {
    fn rows(&self) -> Option<u64> {
        Some(self.rows_affected())
    }
}

impl<T> Rows for Option<T> {
    fn rows(&self) -> Option<u64> {
        None
    }
}

impl<T> Rows for Vec<T> {
    fn rows(&self) -> Option<u64> {
        None
    }
}

impl Rows for User {
    fn rows(&self) -> Option<u64> {
        Some(1)
    }
}

impl Rows for Order {
    fn rows(&self) -> Option<u64> {
        Some(1)
    }
}

#[cfg(test)]
mod tests {
    use sqlx::Connection as _;

    use super::*;

    /// The soak found it: after a cancelled query sqlx replaced the pool's only connection,
    /// and the in-memory database (with its tables) went with the old one.
    #[tokio::test]
    async fn an_in_memory_store_survives_its_connection_being_replaced() {
        let store = Store::open("sqlite::memory:", &PerfMonitor::default())
            .await
            .expect("store");
        for _ in 0..3 {
            let conn = store.pool().acquire().await.expect("connection").detach();
            conn.close().await.expect("close");
            let user = store.user(1).await.expect("query after a new connection");
            assert_eq!(user.map(|u| u.name), Some("ada".to_owned()));
        }
    }
}
