//! Scenarios against real Consul 1.8.7 agents on loopback. Each asserts the root-cause code,
//! the skipped dependents and the exit code.

#[path = "../common/mod.rs"]
mod common;

mod acl;
mod connection;
mod definitions;
mod discovery;
mod field;
mod mesh;
mod probe;
mod prune;
mod readme;
mod scan;
mod service;
mod terminal;
mod tls;
mod wait;
