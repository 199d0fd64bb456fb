//! A fixed number of recent values, for per-thread caches.

/// A thread's last `N` answers of one kind, replaced round robin: a few comparisons in
/// front of a shared table or an allocation, bounded by `N`. Meant for a `thread_local!`
/// `RefCell` (its constructor is `const`). A ring of size 0 does not compile.
///
/// ```compile_fail
/// let empty = towerscope_core::Ring::<u8, 0>::new();
/// ```
///
/// ```
/// use towerscope_core::Ring;
/// let mut recent: Ring<u32, 2> = Ring::new();
/// recent.push(1);
/// recent.push(2);
/// recent.push(3); // replaces the oldest, 1
/// assert_eq!(recent.find(|&v| v == 1), None);
/// assert_eq!(recent.find(|&v| v > 2), Some(&3));
/// ```
#[derive(Debug, Clone)]
pub struct Ring<T, const N: usize> {
    slots: [Option<T>; N],
    next: usize,
}

impl<T, const N: usize> Ring<T, N> {
    /// An empty ring.
    ///
    /// ```
    /// thread_local! {
    ///     static RECENT: std::cell::RefCell<towerscope_core::Ring<String, 4>> =
    ///         const { std::cell::RefCell::new(towerscope_core::Ring::new()) };
    /// }
    /// RECENT.with(|r| assert!(r.borrow().find(|_| true).is_none()));
    /// ```
    pub const fn new() -> Self {
        const { assert!(N > 0, "a Ring holds at least one value") };
        Self {
            slots: [const { None }; N],
            next: 0,
        }
    }

    /// The first value `hit` accepts, most recent or not.
    ///
    /// ```
    /// let mut recent = towerscope_core::Ring::<&str, 4>::new();
    /// recent.push("/users/{id}");
    /// assert_eq!(recent.find(|r| r.starts_with("/users")), Some(&"/users/{id}"));
    /// ```
    pub fn find(&self, hit: impl Fn(&T) -> bool) -> Option<&T> {
        self.slots.iter().flatten().find(|t| hit(t))
    }

    /// How many values it holds (at most `N`).
    ///
    /// ```
    /// let mut recent = towerscope_core::Ring::<u8, 2>::new();
    /// assert!(recent.is_empty());
    /// (0..5).for_each(|v| recent.push(v));
    /// assert_eq!(recent.len(), 2);
    /// ```
    pub fn len(&self) -> usize {
        self.slots.iter().flatten().count()
    }

    /// Whether it holds no value.
    ///
    /// ```
    /// assert!(towerscope_core::Ring::<u8, 2>::new().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.slots.iter().all(Option::is_none)
    }

    /// Keeps `value`, in place of the oldest when the ring is full.
    ///
    /// ```
    /// let mut recent = towerscope_core::Ring::<u8, 1>::new();
    /// recent.push(1);
    /// recent.push(2);
    /// assert_eq!(recent.find(|_| true), Some(&2));
    /// ```
    pub fn push(&mut self, value: T) {
        self.slots[self.next] = Some(value);
        self.next = (self.next + 1) % N;
    }
}

impl<T, const N: usize> Default for Ring<T, N> {
    fn default() -> Self {
        Self::new()
    }
}
