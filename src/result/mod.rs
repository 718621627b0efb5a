//! result (in progress)
