//! What the health tests share.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use towerscope_health::{CheckOptions, Health, check_fn};

/// A health with one check, `db`, that passes while the returned flag is set (it starts set).
pub fn toggled_db(options: CheckOptions) -> (Health, Arc<AtomicBool>) {
    let up = Arc::new(AtomicBool::new(true));
    let flag = up.clone();
    let health = Health::builder("1")
        .check(
            "db",
            check_fn(move || {
                let ok = flag.load(Ordering::SeqCst);
                async move { if ok { Ok(()) } else { Err("down") } }
            }),
            options,
        )
        .build();
    (health, up)
}
