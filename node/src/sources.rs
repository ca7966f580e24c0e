//! Built-in data sources for keyspaces defined by specs (nodes run from the CLI): `http`
//! now; the registry opens them by kind.

mod http;

pub(crate) use http::HttpSource;
