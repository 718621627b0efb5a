//! load (in progress)
