//! The registry protocol as a pulling client speaks it: references, manifests
//! and indexes, auth challenges and tokens, and blob GETs with Range. The
//! naming grammar ([`name`]) is shared with the embedded registry.

pub mod auth;
pub mod manifest;
pub mod name;
pub mod push;
pub mod push_rules;
pub mod reference;
pub mod request;
pub mod session;
pub mod storage;

pub use reference::Reference;
pub use session::Session;
