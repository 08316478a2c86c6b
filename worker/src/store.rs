//! The worker's content-addressed blob store.
