//! Persistence of borderlens (in progress).
