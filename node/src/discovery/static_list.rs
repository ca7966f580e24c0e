//! The static provider: a fixed list of addresses (`peers`, `--peers`).

use async_trait::async_trait;
use tokio::sync::watch;

use super::{Discovery, check_addr};
use crate::error::Result;

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

    fn describe(&self) -> String {
        "static".into()
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
