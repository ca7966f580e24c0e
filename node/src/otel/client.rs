//! The HTTP client of OTLP/HTTP exports: reqwest with the TLS settings of `[otel.tls]`
//! (rustls, as every distcache client), each request sent on the tokio runtime the pipeline
//! started in.
//!
//! The SDK exports from threads of its own, outside any runtime, where reqwest's async client
//! cannot run; its blocking client would bring a runtime thread of its own. So the request is
//! spawned on the node's runtime and its answer awaited from the export thread. If that
//! runtime is gone, the export fails at once.

use std::time::Duration;

use async_trait::async_trait;
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use tokio::runtime::Handle;

use super::OtelError;
use crate::net::tls::ClientTls;

/// Sends export requests on `runtime` (see the module docs).
#[derive(Debug)]
pub(crate) struct RuntimeClient {
    client: reqwest::Client,
    runtime: Handle,
}

impl RuntimeClient {
    /// A client whose requests end after `timeout`, answer included, with `tls` for
    /// `https://` collectors.
    pub(crate) fn new(
        timeout: Duration,
        tls: &ClientTls,
        runtime: Handle,
    ) -> Result<Self, OtelError> {
        let bad = |message: String| OtelError::Exporter {
            signal: "http",
            message,
        };
        let client = crate::net::client_builder_with(tls)
            .map_err(|e| bad(e.to_string()))?
            .timeout(timeout)
            .build()
            .map_err(|e| OtelError::Exporter {
                signal: "http",
                message: crate::error::with_causes(&e),
            })?;
        Ok(RuntimeClient { client, runtime })
    }
}

#[async_trait]
impl HttpClient for RuntimeClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let client = self.client.clone();
        self.runtime
            .spawn(async move { client.send_bytes(request).await })
            .await
            .map_err(|e| Box::new(e) as HttpError)?
    }
}
