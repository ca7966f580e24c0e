//! Integration tests of the single-node engine, one module per concern.

#![allow(clippy::unwrap_used)]

mod support;

mod expiry;
mod keyspaces;
mod operations;
mod postgres;
mod protection;
mod single_flight;
mod sources;
mod stats;
mod warmup;
