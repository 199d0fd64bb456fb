//! The background writer: log lines leave the request's thread as a copy into one shared
//! buffer, and a thread of their own writes them out in large writes.
//!
//! tracing-appender's non-blocking writer (used here before) sends every line through a
//! channel as a `Vec` of its own: one allocation per line, freed on the writer thread, and
//! under load one futex wake-up of the writer thread per line, paid by the request thread.
//! Measured on the demo under wrk, that path was a tenth of the process's CPU. Here a line
//! is appended to a buffer under a mutex (held for the copy only); the writer thread swaps
//! the buffer out, writes it, and waits [`LINGER`] for more before it parks. A line written
//! while the writer is parked wakes it at once, so an idle process's lines are never held
//! back; under load the writer wakes about once per [`LINGER`] instead of once per line.

use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread::{JoinHandle, ThreadId};
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

/// How long the writer waits for more lines after a write before it parks.
const LINGER: Duration = Duration::from_millis(1);

/// Most bytes buffered whatever the line limit says (lines past it are dropped and counted).
const MAX_BYTES: usize = 64 * 1024 * 1024;

/// Capacity the writer keeps between writes; a burst's larger buffer is given back.
const KEEP_CAPACITY: usize = 1024 * 1024;

/// Lines the writer lost, by why; read at scrape time.
#[derive(Debug, Default)]
pub(crate) struct Lost {
    /// Dropped because the buffer was full.
    pub(crate) full: AtomicU64,
    /// Not written because the output failed (closed pipe, full disk, ...).
    pub(crate) failed: AtomicU64,
}

#[derive(Debug, Default)]
struct State {
    buf: Vec<u8>,
    lines: usize,
    /// The writer thread is waiting for a wake-up (not lingering, not writing).
    parked: bool,
    closed: bool,
    /// Lines taken into the buffer so far, and how many of them the writer has written.
    pushed: u64,
    written: u64,
    /// `written` when a [`Shared::flush`] last gave up waiting: while it has not moved, the
    /// writer is stuck (a blocked output) and nobody waits for it again.
    gave_up_at: Option<u64>,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    wake: Condvar,
    /// Signalled after each write, for [`Shared::flush`].
    written: Condvar,
    /// The writer thread, which must not wait for itself.
    thread: OnceLock<ThreadId>,
    max_lines: usize,
    lost: Arc<Lost>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves a valid buffer behind: keep logging.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn push(&self, line: &[u8]) {
        let mut state = self.lock();
        if state.closed || state.lines >= self.max_lines || state.buf.len() + line.len() > MAX_BYTES
        {
            drop(state);
            self.lost.full.fetch_add(1, Ordering::Relaxed);
            return;
        }
        state.buf.extend_from_slice(line);
        state.lines += 1;
        state.pushed += 1;
        let wake = std::mem::take(&mut state.parked);
        drop(state);
        if wake {
            self.wake.notify_one();
        }
    }

    /// The writer thread's loop: runs until closed and drained.
    fn run(&self, mut out: impl Write) {
        let mut spare = Vec::new();
        let mut reported = false;
        let mut state = self.lock();
        loop {
            if !state.buf.is_empty() {
                std::mem::swap(&mut state.buf, &mut spare);
                let lines = std::mem::take(&mut state.lines);
                let upto = state.pushed;
                drop(state);
                if let Err((error, unwritten)) = write_batch(&mut out, &spare, lines) {
                    // The lines are lost, as with any logger whose output is gone: count
                    // them, and say so once where it may still be seen.
                    self.lost.failed.fetch_add(unwritten, Ordering::Relaxed);
                    if !std::mem::replace(&mut reported, true) {
                        let _ = writeln!(
                            io::stderr(),
                            "towerscope-log: writing log lines failed ({error}); lines are \
                             lost and counted in towerscope_log_dropped_lines_total\
                             {{reason=\"write_failed\"}}"
                        );
                    }
                }
                spare.clear();
                spare.shrink_to(KEEP_CAPACITY);
                state = self.lock();
                state.written = upto;
                self.written.notify_all();
                if state.buf.is_empty() && !state.closed {
                    state = self
                        .wake
                        .wait_timeout(state, LINGER)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
                continue;
            }
            if state.closed {
                return;
            }
            state.parked = true;
            state = self
                .wake
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Waits until every line taken so far has been written, at most `timeout`; returns
    /// whether they were. It returns `false` at once when the writer takes no more lines
    /// (its guard was dropped: the caller's last line was dropped too), on the writer thread
    /// itself, and while the writer has made no progress since a wait last gave up: a stuck
    /// output stalls one caller for `timeout`, not every caller in turn.
    fn flush(&self, timeout: Duration) -> bool {
        let mut state = self.lock();
        if state.closed {
            return false;
        }
        let target = state.pushed;
        if state.written >= target {
            return true;
        }
        if self.thread.get() == Some(&std::thread::current().id())
            || state.gave_up_at == Some(state.written)
        {
            return false;
        }
        // Do not let it linger: write now.
        self.wake.notify_one();
        let deadline = std::time::Instant::now() + timeout;
        // Lines taken before the guard closed the writer are still written: it drains them.
        while state.written < target {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                state.gave_up_at = Some(state.written);
                return false;
            }
            state = self
                .written
                .wait_timeout(state, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        true
    }
}

/// Writes one batch of `lines` lines and flushes; on failure, the error and how many of
/// the lines were not written whole (a line cut short counts as lost).
fn write_batch(out: &mut impl Write, batch: &[u8], lines: usize) -> Result<(), (io::Error, u64)> {
    let lines = u64::try_from(lines).unwrap_or(u64::MAX);
    let mut rest = batch;
    while !rest.is_empty() {
        let error = match out.write(rest) {
            Ok(0) => io::Error::from(io::ErrorKind::WriteZero),
            Ok(n) => {
                rest = &rest[n..];
                continue;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => e,
        };
        // A batch is whole lines, each ending in a newline: those left are the lines lost
        // (at least one, the write failed inside the batch).
        let ends = rest.iter().filter(|&&b| b == b'\n').count();
        let cut = u64::try_from(ends)
            .unwrap_or(u64::MAX)
            .clamp(1, lines.max(1));
        return Err((error, cut));
    }
    // What a buffering output still held is beyond counting; the error is still reported.
    out.flush().map_err(|e| (e, 0))
}

/// The `MakeWriter` the log layers write through: each write is one line, appended to the
/// shared buffer, or dropped and counted when the buffer is full.
#[derive(Debug, Clone)]
pub(crate) struct BackgroundWriter {
    shared: Arc<Shared>,
}

/// A handle that waits for the writer to catch up: the panic hook's, so that the line of
/// a panic that ends the process is written before it ends.
#[derive(Debug, Clone)]
pub(crate) struct Flusher(Arc<Shared>);

impl Flusher {
    /// See [`Shared::flush`].
    pub(crate) fn flush(&self, timeout: Duration) -> bool {
        self.0.flush(timeout)
    }
}

impl WriterGuard {
    /// A handle that flushes this writer.
    pub(crate) fn flusher(&self) -> Flusher {
        Flusher(self.shared.clone())
    }
}

/// Stops the writer thread when dropped, after it has written every buffered line.
#[derive(Debug)]
pub(crate) struct WriterGuard {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for WriterGuard {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.wake.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Starts the writer thread writing to `out`; at most `max_lines` lines wait at any time.
pub(crate) fn background(
    out: impl Write + Send + 'static,
    max_lines: usize,
    lost: Arc<Lost>,
) -> io::Result<(BackgroundWriter, WriterGuard)> {
    let shared = Arc::new(Shared {
        state: Mutex::new(State::default()),
        wake: Condvar::new(),
        written: Condvar::new(),
        thread: OnceLock::new(),
        max_lines: max_lines.max(1),
        lost,
    });
    let worker = shared.clone();
    let thread = std::thread::Builder::new()
        .name("towerscope-log".into())
        .spawn(move || worker.run(out))?;
    let _ = shared.thread.set(thread.thread().id());
    Ok((
        BackgroundWriter {
            shared: shared.clone(),
        },
        WriterGuard {
            shared,
            thread: Some(thread),
        },
    ))
}

/// One line's writer.
#[derive(Debug)]
pub(crate) struct LineWriter<'a>(&'a Shared);

impl Write for LineWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.push(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for BackgroundWriter {
    type Writer = LineWriter<'a>;
    fn make_writer(&'a self) -> LineWriter<'a> {
        LineWriter(&self.shared)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Collects what the writer thread writes, and how many writes it took.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<(Vec<u8>, usize)>>);

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let mut s = self.0.lock().expect("sink");
            s.0.extend_from_slice(buf);
            s.1 += 1;
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_line_arrives_in_order_and_the_guard_drains() {
        let sink = Sink::default();
        let lost = Arc::new(Lost::default());
        let (writer, guard) = background(sink.clone(), 1_000_000, lost.clone()).expect("thread");
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let writer = writer.clone();
                std::thread::spawn(move || {
                    for i in 0..10_000 {
                        let line = format!("{t} {i}\n");
                        writer
                            .make_writer()
                            .write_all(line.as_bytes())
                            .expect("write");
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("thread");
        }
        drop(guard);
        let (bytes, writes) = std::mem::take(&mut *sink.0.lock().expect("sink"));
        let text = String::from_utf8(bytes).expect("utf8");
        let mut next = [0usize; 4];
        for line in text.lines() {
            let (t, i) = line.split_once(' ').expect("line");
            let (t, i): (usize, usize) = (t.parse().expect("t"), i.parse().expect("i"));
            assert_eq!(i, next[t], "thread {t}'s lines out of order or lost");
            next[t] += 1;
        }
        assert_eq!(next, [10_000; 4]);
        assert_eq!(lost.full.load(Ordering::Relaxed), 0);
        assert_eq!(lost.failed.load(Ordering::Relaxed), 0);
        assert!(writes < 40_000, "one write per line: {writes}");
    }

    #[test]
    fn an_idle_writer_writes_a_line_at_once() {
        let sink = Sink::default();
        let (writer, _guard) = background(sink.clone(), 16, Arc::default()).expect("thread");
        std::thread::sleep(Duration::from_millis(20)); // parked by now
        writer.make_writer().write_all(b"one\n").expect("write");
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while sink.0.lock().expect("sink").0 != b"one\n" {
            assert!(
                std::time::Instant::now() < deadline,
                "the line was held back"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn flush_waits_for_the_writer_and_a_stuck_one_stalls_one_caller_only() {
        let release = Arc::new((Mutex::new(false), Condvar::new()));
        let (writer, guard) =
            background(Stuck(release.clone()), 16, Arc::default()).expect("thread");
        // Dropped before `guard` (which joins the writer), also when an assertion fails.
        let _release = Release(release.clone());
        let shared = guard.flusher();
        assert!(shared.flush(Duration::from_secs(1)), "nothing to wait for");
        writer.make_writer().write_all(b"one\n").expect("write");
        let waited = std::time::Instant::now();
        assert!(
            !shared.flush(Duration::from_millis(100)),
            "the output is stuck"
        );
        assert!(waited.elapsed() >= Duration::from_millis(100));
        // No progress since: the next caller is not held up (a generous bound: it does not
        // wait for its 30 s at all).
        let again = std::time::Instant::now();
        assert!(!shared.flush(Duration::from_secs(30)));
        assert!(again.elapsed() < Duration::from_secs(10));
        // Unstuck: every line written, and waiting works again.
        release_stuck(&release);
        writer.make_writer().write_all(b"two\n").expect("write");
        // Once the writer has moved on, callers wait for it again.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !shared.flush(Duration::from_secs(30)) {
            assert!(std::time::Instant::now() < deadline, "never written");
            std::thread::sleep(Duration::from_millis(5));
        }
        drop(guard);
    }

    /// A writer that blocks until released.
    struct Stuck(Arc<(Mutex<bool>, Condvar)>);

    fn release_stuck(release: &(Mutex<bool>, Condvar)) {
        *release.0.lock().unwrap_or_else(PoisonError::into_inner) = true;
        release.1.notify_all();
    }

    /// Releases a [`Stuck`] writer when dropped.
    struct Release(Arc<(Mutex<bool>, Condvar)>);

    impl Drop for Release {
        fn drop(&mut self) {
            release_stuck(&self.0);
        }
    }

    impl Write for Stuck {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let (lock, cond) = &*self.0;
            let mut done = lock.lock().expect("lock");
            while !*done {
                done = cond.wait(done).expect("wait");
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_full_buffer_drops_and_counts_without_blocking() {
        let release = Arc::new((Mutex::new(false), Condvar::new()));
        let lost = Arc::new(Lost::default());
        let (writer, guard) = background(Stuck(release.clone()), 8, lost.clone()).expect("thread");
        for _ in 0..100 {
            writer.make_writer().write_all(b"line\n").expect("write");
        }
        // At most 8 wait in the buffer, and at most 8 more are in the stuck write.
        let dropped = lost.full.load(Ordering::Relaxed);
        assert!((84..=92).contains(&dropped), "dropped {dropped}");
        *release.0.lock().expect("lock") = true;
        release.1.notify_all();
        drop(guard);
    }

    /// Takes `budget` bytes (the last write cut short), then fails as a closed pipe does.
    struct Closing(Arc<Mutex<(Vec<u8>, usize)>>);

    impl Write for Closing {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let mut s = self.0.lock().expect("closing");
            if s.1 == 0 {
                return Err(io::ErrorKind::BrokenPipe.into());
            }
            let n = buf.len().min(s.1);
            s.0.extend_from_slice(&buf[..n]);
            s.1 -= n;
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_a_failed_output_did_not_take_are_counted_whatever_the_batches() {
        // Thirty lines and three bytes of the next get out; the other 70 are lost. Lines
        // go out in one batch or many (the writer thread takes what it finds), and each
        // way the count is the same.
        for pause in [false, true] {
            let out = Arc::new(Mutex::new((Vec::new(), 30 * 8 + 3)));
            let lost = Arc::new(Lost::default());
            let (writer, guard) =
                background(Closing(out.clone()), 1_000, lost.clone()).expect("thread");
            for i in 0..100 {
                let line = format!("line {i:02}\n");
                writer
                    .make_writer()
                    .write_all(line.as_bytes())
                    .expect("write");
                if pause && i % 10 == 0 {
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
            drop(guard);
            let written = out.lock().expect("closing").0.clone();
            assert_eq!(written.len(), 243);
            assert!(written.starts_with(b"line 00\nline 01\n"));
            assert_eq!(lost.failed.load(Ordering::Relaxed), 70, "pause {pause}");
            assert_eq!(lost.full.load(Ordering::Relaxed), 0);
        }
    }
}
