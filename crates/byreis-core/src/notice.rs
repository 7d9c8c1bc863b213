//! What the core has to tell the user beyond its result (a warning that a
//! branch could not be removed, a note on a record): queued here, never
//! printed by the core. The cli prints the queue ([`take`]) after each
//! verb's core call and before it exits.
//!
//! A queue rather than a field of every outcome is a step (issue 15): the
//! target is that each outcome carries its own notices.

use std::sync::Mutex;

static QUEUE: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Queues one line for the user (without the `byreis: ` prefix).
pub fn push(line: impl Into<String>) {
    QUEUE
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(line.into());
}

/// Everything queued so far, in order; the queue is left empty.
pub fn take() -> Vec<String> {
    std::mem::take(&mut *QUEUE.lock().unwrap_or_else(|p| p.into_inner()))
}
