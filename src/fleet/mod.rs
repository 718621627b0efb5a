//! fleet (in progress)
