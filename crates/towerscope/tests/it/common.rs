//! What the facade's tests share.

use std::sync::{Arc, Mutex};

use serde_json::Value;

/// Captures the log writer's output.
#[derive(Clone, Default)]
pub struct Lines(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Lines {
    /// Every complete line so far, each of which must be one JSON object. A line still being
    /// written (the writer may hand over a batch in more than one write) is left for later.
    pub fn json(&self) -> Vec<Value> {
        let bytes = self.0.lock().expect("lock").clone();
        let complete = bytes
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(&[][..], |end| &bytes[..=end]);
        String::from_utf8(complete.to_vec())
            .expect("utf-8")
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }
}
