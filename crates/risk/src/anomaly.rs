//! Isolation forest (in progress).
