//! Work spread over every core, with an optional progress line.
//!
//! std's scoped threads and an atomic work counter: items are taken one by
//! one, so a slow item does not hold up a whole chunk.

use std::io::{IsTerminal as _, Write as _};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A progress line on stderr, shown only when stderr is a terminal.
pub struct Progress {
    label: String,
    total: usize,
    done: AtomicUsize,
    last: Mutex<Instant>,
    enabled: bool,
    finished: std::sync::atomic::AtomicBool,
}

impl Progress {
    pub fn new(label: &str, total: usize) -> Progress {
        Progress {
            label: label.to_string(),
            total,
            done: AtomicUsize::new(0),
            last: Mutex::new(Instant::now()),
            enabled: std::io::stderr().is_terminal() && total > 1,
            finished: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn tick(&self) {
        let done = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        if !self.enabled {
            return;
        }
        let Ok(mut last) = self.last.try_lock() else {
            return;
        };
        if done == self.total || last.elapsed() > Duration::from_millis(100) {
            *last = Instant::now();
            let width = 30;
            let filled = done * width / self.total.max(1);
            let _ = write!(
                std::io::stderr(),
                "\r{} [{}{}] {done}/{}",
                self.label,
                "#".repeat(filled),
                " ".repeat(width - filled),
                self.total
            );
        }
    }

    /// Ends the line once every item is done (one progress may span
    /// several [`map`] calls).
    pub fn finish(&self) {
        if self.enabled
            && self.done.load(Ordering::Relaxed) >= self.total
            && !self.finished.swap(true, Ordering::Relaxed)
        {
            let _ = writeln!(std::io::stderr());
        }
    }
}

/// Applies `f` to every item on all cores; results keep the items' order.
pub fn map<T: Sync, R: Send>(
    items: &[T],
    progress: Option<&Progress>,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    map_init(items, progress, || (), |_, item| f(item))
}

/// [`map`] where each worker thread first makes its own state with `init`
/// (for example its own handle on a repository).
pub fn map_init<T: Sync, R: Send, S>(
    items: &[T],
    progress: Option<&Progress>,
    init: impl Fn() -> S + Sync,
    f: impl Fn(&mut S, &T) -> R + Sync,
) -> Vec<R> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(items.len().max(1));
    let next = AtomicUsize::new(0);
    let slots: Vec<Mutex<Option<R>>> = items.iter().map(|_| Mutex::new(None)).collect();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                let mut state = init();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(i) else {
                        break;
                    };
                    let r = f(&mut state, item);
                    *slots[i].lock().expect("no panics while holding a slot") = Some(r);
                    if let Some(p) = progress {
                        p.tick();
                    }
                }
            });
        }
    });
    if let Some(p) = progress {
        p.finish();
    }
    slots
        .into_iter()
        .map(|m| {
            m.into_inner()
                .expect("no panics while holding a slot")
                .expect("every item was processed")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn keeps_order() {
        let items: Vec<u32> = (0..1000).collect();
        let out = super::map(&items, None, |x| x * 2);
        assert_eq!(out, items.iter().map(|x| x * 2).collect::<Vec<_>>());
        assert!(super::map(&Vec::<u32>::new(), None, |x| *x).is_empty());
    }
}
