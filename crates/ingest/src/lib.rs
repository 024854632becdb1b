//! Import of trade data (in progress).
