//! Finding the other nodes: the [`Discovery`] trait and the static provider.
//!
//! A provider answers the addresses (`host:port`) of the cluster's nodes, possibly including
//! this node's own, and publishes changes. Who is actually alive, and who each address is, the
//! cluster learns by probing (see `cluster`).

use async_trait::async_trait;
use tokio::sync::watch;

use crate::error::{Error, Result};

/// A source of peer addresses.
#[async_trait]
pub trait Discovery: Send + Sync + 'static {
    /// Starts the provider (connect, register this node). Called once before `peers`.
    async fn start(&self) -> Result<()>;

    /// Stops the provider (deregister, disconnect).
    async fn stop(&self) -> Result<()>;

    /// The addresses known now.
    async fn peers(&self) -> Result<Vec<String>>;

    /// The latest address list, updated whenever it changes.
    fn changes(&self) -> watch::Receiver<Vec<String>>;
}

/// A fixed list of addresses, ideal for tests, demos and small static clusters. The list may
/// be the same on every node, each node's own address included.
pub struct StaticDiscovery {
    addrs: watch::Sender<Vec<String>>,
}

impl StaticDiscovery {
    /// A provider that always answers `addrs` (blank entries dropped, duplicates removed).
    pub fn new<I, S>(addrs: I) -> Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut list: Vec<String> = Vec::new();
        for addr in addrs {
            let addr: String = addr.into().trim().to_owned();
            if addr.is_empty() {
                continue;
            }
            check_addr(&addr)?;
            if !list.contains(&addr) {
                list.push(addr);
            }
        }
        Ok(StaticDiscovery {
            addrs: watch::Sender::new(list),
        })
    }
}

/// Checks that `addr` looks like `host:port`.
pub(crate) fn check_addr(addr: &str) -> Result<()> {
    let bad = || {
        Error::InvalidConfig({
            let mut p = crate::error::Problems::new();
            p.push(
                "peers",
                format!("`{addr}` is not a host:port address (e.g. 10.0.0.5:3320)"),
            );
            p
        })
    };
    let (host, port) = addr.rsplit_once(':').ok_or_else(bad)?;
    if host.is_empty() || host.contains('/') || port.parse::<u16>().is_err() {
        return Err(bad());
    }
    Ok(())
}

#[async_trait]
impl Discovery for StaticDiscovery {
    async fn start(&self) -> Result<()> {
        Ok(())
    }

    async fn stop(&self) -> Result<()> {
        Ok(())
    }

    async fn peers(&self) -> Result<Vec<String>> {
        Ok(self.addrs.borrow().clone())
    }

    fn changes(&self) -> watch::Receiver<Vec<String>> {
        self.addrs.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The static list is cleaned and answered as given; bad addresses are refused by name.
    #[tokio::test]
    async fn static_list_is_checked_and_deduplicated() {
        let d = StaticDiscovery::new(["127.0.0.1:1", " ", "127.0.0.1:1", "host:2"]).expect("ok");
        d.start().await.expect("start");
        assert_eq!(d.peers().await.expect("peers"), ["127.0.0.1:1", "host:2"]);
        for bad in ["nohost", ":80", "h:port", "h:70000", "http://h:80"] {
            let err = StaticDiscovery::new([bad]).err().expect("refused");
            assert!(err.to_string().contains(bad), "{err}");
        }
    }
}
