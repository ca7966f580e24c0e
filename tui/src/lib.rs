//! distcache-tui: the live terminal dashboard of a distcache cluster.
//!
//! It polls every node's public HTTP API and draws the cluster, its keyspaces and their
//! counters with ratatui; the `distcache dashboard` command runs it.

#![deny(missing_docs)]
