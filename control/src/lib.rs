//! distcache-control: the replicated control store of a distcache cluster.
//!
//! It keeps the catalog of keyspace definitions consistent across nodes with raft (openraft on
//! sled). It knows nothing about caching: the node crate hands it opaque, validated specs and
//! follows the committed catalog it publishes.

#![deny(missing_docs)]
