//! The Pantheon API client. So far: the wire types of every response the client reads
//! ([`wire`]), checked against recorded real responses.

pub mod wire;
