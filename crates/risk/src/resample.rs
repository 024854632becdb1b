//! Resampling (in progress).
