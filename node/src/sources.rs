//! Built-in data sources for keyspaces defined by specs (nodes run from the CLI): `http`,
//! `sqlite` and `postgres`; the registry opens them by kind.

mod http;
mod postgres;
mod sqlite;

pub(crate) use http::HttpSource;
pub(crate) use postgres::PostgresSource;
pub(crate) use sqlite::SqliteSource;
