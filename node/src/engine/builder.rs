//! `EngineBuilder`: gathers configuration, keyspaces, overrides and data sources, and
//! validates all of it at once before an engine exists.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::{Engine, Inner};
use crate::catalog::{Catalog, LocalCatalog};
use crate::cluster::Cluster;
use crate::config::{EngineConfig, KeySpaceOverrides};
use crate::error::{Error, Problems, Result};
use crate::keyspace::KeySpace;
use crate::registry::SourceRegistry;
use crate::source::DataSource;
use crate::spec::{KeySpaceSpec, SourceSpec};

/// Builds an [`Engine`]. Nothing is checked until [`build`](Self::build), which reports every
/// problem of the configuration, the keyspaces and the overrides in one error.
#[must_use]
pub struct EngineBuilder {
    config: EngineConfig,
    specs: Vec<KeySpaceSpec>,
    keyspaces: Vec<Arc<dyn KeySpace>>,
    overrides: Vec<(String, KeySpaceOverrides)>,
    sources: Vec<(String, Arc<dyn DataSource>)>,
    catalog: Option<Arc<dyn Catalog>>,
    cluster: Option<Arc<Cluster>>,
    spans: crate::telemetry::Spans,
    meter: Option<opentelemetry::metrics::Meter>,
}

impl EngineBuilder {
    pub(super) fn new(config: EngineConfig) -> Self {
        EngineBuilder {
            config,
            specs: Vec::new(),
            keyspaces: Vec::new(),
            overrides: Vec::new(),
            sources: Vec::new(),
            catalog: None,
            cluster: None,
            spans: crate::telemetry::Spans::default(),
            meter: None,
        }
    }

    /// Replaces the engine configuration.
    pub fn config(mut self, config: EngineConfig) -> Self {
        self.config = config;
        self
    }

    /// Adds a keyspace defined in code. Its data source is registered under the keyspace's
    /// name and its `expires_at` becomes the keyspace's expiry policy.
    pub fn keyspace(mut self, keyspace: impl KeySpace) -> Self {
        self.keyspaces.push(Arc::new(keyspace));
        self
    }

    /// Adds a keyspace defined by a spec (from a file, say).
    pub fn keyspace_spec(mut self, spec: KeySpaceSpec) -> Self {
        self.specs.push(spec);
        self
    }

    /// Overrides fields of the keyspace `name` (given by [`keyspace`](Self::keyspace) or
    /// [`keyspace_spec`](Self::keyspace_spec)).
    pub fn override_keyspace(
        mut self,
        name: impl Into<String>,
        overrides: KeySpaceOverrides,
    ) -> Self {
        self.overrides.push((name.into(), overrides));
        self
    }

    /// Registers a data source that specs can name as `{"kind": "registered", "name": …}`.
    pub fn register_source(mut self, name: impl Into<String>, source: impl DataSource) -> Self {
        self.sources.push((name.into(), Arc::new(source)));
        self
    }

    /// Uses `catalog` for keyspace definitions instead of an in-memory one (the cluster's
    /// control store, for instance).
    pub fn catalog(mut self, catalog: Arc<dyn Catalog>) -> Self {
        self.catalog = Some(catalog);
        self
    }

    /// Makes OpenTelemetry spans with `provider`'s tracer (the seed's `WithTracing`):
    /// `distcache.<operation>` for every call, with the keyspace and the outcome, and children
    /// for the single-flight wait, the call to the owning peer and the data-source fetch.
    /// Without it the engine makes no spans and pays nothing for them.
    pub fn tracer_provider<P>(mut self, provider: &P) -> Self
    where
        P: opentelemetry::trace::TracerProvider + opentelemetry::global::ObjectSafeTracerProvider,
    {
        self.spans = crate::telemetry::Spans::from_provider(provider);
        self
    }

    /// Reports the engine's metrics through `provider`'s meter (the seed's `WithMetrics`):
    /// the same families a node serves at `GET /metrics`, under their OpenTelemetry names
    /// (`distcache.engine.requests`, `distcache.cache.hits`, `distcache.engine.duration`, …),
    /// read from the engine's own counters when the provider's reader collects. Recording
    /// costs the same with or without it; a collection costs a read of every counter and one
    /// `record` per duration observed since the last one (see `otel/metrics.rs`).
    pub fn meter_provider<P>(mut self, provider: &P) -> Self
    where
        P: opentelemetry::metrics::MeterProvider,
    {
        self.meter = Some(provider.meter("distcache"));
        self
    }

    /// Shares keys with the other members of `cluster`: each key is loaded by its owner.
    pub(crate) fn cluster(mut self, cluster: Arc<Cluster>) -> Self {
        self.cluster = Some(cluster);
        self
    }

    /// Validates everything and builds the engine (not yet started).
    pub fn build(self) -> Result<Engine> {
        let mut problems = self.config.problems();
        let mut registry = SourceRegistry::default();
        for (name, source) in self.sources {
            if !registry.register(&name, source) {
                problems.push(format!("sources[{name}]"), "registered twice".to_owned());
            }
        }

        let mut specs: BTreeMap<String, KeySpaceSpec> = BTreeMap::new();
        let mut expiries: HashMap<String, Arc<dyn KeySpace>> = HashMap::new();
        for keyspace in self.keyspaces {
            let name = keyspace.name().to_owned();
            if !registry.register(&name, keyspace.data_source()) {
                problems.push(
                    format!("keyspaces[{name}]"),
                    "its name is already used by a registered data source or another keyspace",
                );
                continue;
            }
            let mut spec =
                KeySpaceSpec::new(name.clone(), SourceSpec::Registered { name: name.clone() });
            spec.max_bytes = Some(keyspace.max_bytes());
            expiries.insert(name.clone(), keyspace);
            specs.insert(name, spec);
        }
        for spec in self.specs {
            if specs.contains_key(&spec.name) {
                problems.push(format!("keyspaces[{}]", spec.name), "defined twice");
                continue;
            }
            specs.insert(spec.name.clone(), spec);
        }
        for (name, overrides) in &self.overrides {
            match specs.get_mut(name) {
                Some(spec) => overrides.apply_to(spec),
                None => problems.push(
                    format!("overrides[{name}]"),
                    "overrides a keyspace that is not defined",
                ),
            }
        }
        for (name, spec) in &specs {
            let prefix = format!("keyspaces[{name}]");
            problems.extend_prefixed(&prefix, spec.problems(&self.config.limits));
            problems.extend_prefixed(&prefix, registry.problems(&spec.source));
        }
        problems_to_result(problems)?;

        let catalog = self
            .catalog
            .unwrap_or_else(|| Arc::new(LocalCatalog::new()));
        let engine = Engine {
            inner: Arc::new(Inner::new(
                self.config,
                catalog,
                registry,
                expiries,
                specs.into_values().collect(),
                self.cluster,
                self.spans,
            )),
        };
        if let Some(meter) = &self.meter {
            // A weak reference: the provider keeps the callbacks, not the engine.
            let inner = engine.downgrade();
            crate::otel::metrics::observe(
                meter,
                Box::new(move || inner.upgrade().map(|inner| inner.scrape_now())),
            );
        }
        Ok(engine)
    }
}

fn problems_to_result(problems: Problems) -> Result<()> {
    problems.into_result(Error::InvalidConfig)
}
