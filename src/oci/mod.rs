//! The registry protocol as a pulling client speaks it: references, manifests
//! and indexes, auth challenges and tokens, and blob GETs with Range.

pub mod auth;
pub mod manifest;
pub mod push;
pub mod reference;
pub mod session;

pub use reference::Reference;
pub use session::Session;
