//! Things that read a metric which has had no series since start.

use std::time::{Duration, Instant};

/// Which of a fixed list of things (alert rules, dashboard stats) read a metric that has
/// had no series since start, the way a misspelt name or label value leaves them: each is
/// reported once `after` has passed without one, and once more if one appears later. The
/// caller says what each reads and logs what it is told.
///
/// ```
/// use std::time::{Duration, Instant};
/// use towerscope_alert::{SeriesNews, SeriesWatch};
/// let mut watch = SeriesWatch::new(2, Duration::ZERO);
/// let mut news = Vec::new();
/// // Thing 0 reads its series; thing 1 finds none of `queue_depht`.
/// let missing = |i: usize| if i == 1 { vec!["queue_depht".to_owned()] } else { vec![] };
/// watch.check(Instant::now(), missing, |i, n| news.push((i, matches!(n, SeriesNews::Missing { .. }))));
/// watch.check(Instant::now(), missing, |i, n| news.push((i, matches!(n, SeriesNews::Missing { .. }))));
/// assert_eq!(news, [(1, true)]); // once
/// ```
#[derive(Debug)]
pub struct SeriesWatch {
    started: Instant,
    after: Duration,
    states: Vec<Watched>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Watched {
    Waiting,
    Reported,
    Seen,
}

/// What [`SeriesWatch::check`] has to say about one thing.
///
/// ```
/// use std::time::Duration;
/// let news = towerscope_alert::SeriesNews::Missing { series: &["queue_depht".to_owned()], waited: Duration::from_secs(300) };
/// # let _ = news;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeriesNews<'a> {
    /// None of these series (PromQL selectors) has been read since start, `waited` ago.
    Missing {
        /// The selectors not found.
        series: &'a [String],
        /// How long since the watch began.
        waited: Duration,
    },
    /// The series appeared, after they were reported missing.
    Appeared,
}

impl SeriesWatch {
    /// Watches `count` things from now; a thing is reported after `after` without its
    /// series.
    ///
    /// ```
    /// let watch = towerscope_alert::SeriesWatch::new(3, std::time::Duration::from_secs(300));
    /// # let _ = watch;
    /// ```
    pub fn new(count: usize, after: Duration) -> Self {
        Self {
            started: Instant::now(),
            after,
            states: vec![Watched::Waiting; count],
        }
    }

    /// Asks `missing(i)` which series thing `i` did not find in the last read (empty: it
    /// found them all; not asked again once it has), and tells `report` the news.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use towerscope_alert::{SeriesNews, SeriesWatch};
    /// let mut watch = SeriesWatch::new(1, Duration::ZERO);
    /// let mut told = Vec::new();
    /// watch.check(Instant::now(), |_| vec!["logins_total{outcome=\"failure\"}".to_owned()], |_, n| told.push(format!("{n:?}")));
    /// watch.check(Instant::now(), |_| Vec::new(), |_, n| told.push(format!("{n:?}"))); // the first failure
    /// assert!(told[0].starts_with("Missing"));
    /// assert_eq!(told[1], "Appeared");
    /// ```
    pub fn check(
        &mut self,
        now: Instant,
        mut missing: impl FnMut(usize) -> Vec<String>,
        mut report: impl FnMut(usize, SeriesNews<'_>),
    ) {
        let waited = now.saturating_duration_since(self.started);
        for (i, state) in self.states.iter_mut().enumerate() {
            if *state == Watched::Seen {
                continue;
            }
            let series = missing(i);
            if series.is_empty() {
                if *state == Watched::Reported {
                    report(i, SeriesNews::Appeared);
                }
                *state = Watched::Seen;
            } else if *state == Watched::Waiting && waited >= self.after {
                report(
                    i,
                    SeriesNews::Missing {
                        series: &series,
                        waited,
                    },
                );
                *state = Watched::Reported;
            }
        }
    }
}
