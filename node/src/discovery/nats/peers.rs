//! What NATS discovery says and remembers: the JSON messages nodes exchange on the subject,
//! and the table of nodes heard from, with their last announcement, that expires silent ones.

use std::collections::HashMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

/// The version of the messages this node sends and understands.
pub(crate) const VERSION: u32 = 1;

/// Messages larger than this are not discovery messages.
pub(crate) const MAX_MESSAGE_BYTES: usize = 4096;

/// Node ids longer than this are refused.
const MAX_ID_BYTES: usize = 256;

/// What a message says about the node that sent it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Op {
    /// "I am here": sent at start-up answers and periodically.
    Announce,
    /// "I am here, who else is?": every node that hears it answers on the reply subject.
    Request,
    /// "I am leaving": sent on a clean stop.
    Leave,
}

/// One discovery message: `{"v":1,"op":"announce","id":"node-1","addr":"10.0.0.5:3320"}`.
/// Unknown fields are ignored, so a later version may add some.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Message {
    /// The message version ([`VERSION`]).
    pub v: u32,
    /// What the sender says.
    pub op: Op,
    /// The sender's node id.
    pub id: String,
    /// The sender's advertised `host:port`.
    pub addr: String,
}

impl Message {
    /// A message from node `id` at `addr`.
    pub fn new(op: Op, id: &str, addr: &str) -> Self {
        Message {
            v: VERSION,
            op,
            id: id.to_owned(),
            addr: addr.to_owned(),
        }
    }

    /// The JSON bytes sent.
    pub fn to_bytes(&self) -> bytes::Bytes {
        // A struct of strings and a number always serialises.
        serde_json::to_vec(self).unwrap_or_default().into()
    }

    /// Reads a message, or says why it is not one this node can use.
    pub fn parse(payload: &[u8]) -> Result<Message, String> {
        if payload.len() > MAX_MESSAGE_BYTES {
            return Err(format!(
                "{} bytes, over the limit of {MAX_MESSAGE_BYTES}",
                payload.len()
            ));
        }
        let message: Message =
            serde_json::from_slice(payload).map_err(|e| format!("not a message: {e}"))?;
        if message.v != VERSION {
            return Err(format!(
                "version {} (this node speaks {VERSION})",
                message.v
            ));
        }
        if message.id.is_empty() || message.id.len() > MAX_ID_BYTES {
            return Err(format!("node id of {} bytes", message.id.len()));
        }
        crate::discovery::check_addr(&message.addr)
            .map_err(|_| format!("`{}` is not a host:port address", message.addr))?;
        Ok(message)
    }
}

/// A node heard from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Seen {
    /// Its advertised address.
    pub addr: String,
    /// When it last announced itself (or answered).
    pub at: Instant,
}

/// This node and the nodes heard from, by node id.
#[derive(Debug)]
pub(crate) struct Table {
    my_id: String,
    my_addr: String,
    peers: HashMap<String, Seen>,
}

impl Table {
    /// A table knowing only this node.
    pub fn new(my_id: &str, my_addr: &str) -> Self {
        Table {
            my_id: my_id.to_owned(),
            my_addr: my_addr.to_owned(),
            peers: HashMap::new(),
        }
    }

    /// Records what `message` says at `now`. Messages from this node's own id are ignored.
    pub fn apply(&mut self, message: &Message, now: Instant) {
        if message.id == self.my_id {
            if message.addr != self.my_addr {
                tracing::warn!(
                    id = %message.id,
                    addr = %message.addr,
                    "another node announces this node's id; node ids must be unique"
                );
            }
            return;
        }
        match message.op {
            Op::Announce | Op::Request => {
                let old = self.peers.insert(
                    message.id.clone(),
                    Seen {
                        addr: message.addr.clone(),
                        at: now,
                    },
                );
                match old {
                    None => {
                        tracing::info!(peer = %message.id, addr = %message.addr, "nats discovery: node joined")
                    }
                    Some(old) if old.addr != message.addr => tracing::info!(
                        peer = %message.id, addr = %message.addr, was = %old.addr,
                        "nats discovery: node moved"
                    ),
                    Some(_) => {}
                }
            }
            Op::Leave => {
                if self.peers.remove(&message.id).is_some() {
                    tracing::info!(peer = %message.id, addr = %message.addr, "nats discovery: node left");
                }
            }
        }
    }

    /// Drops the nodes not heard from within `timeout` before `now`.
    pub fn expire(&mut self, now: Instant, timeout: Duration) {
        self.peers.retain(|id, seen| {
            let alive = now.saturating_duration_since(seen.at) < timeout;
            if !alive {
                tracing::info!(peer = %id, addr = %seen.addr, "nats discovery: node expired");
            }
            alive
        });
    }

    /// When the next node expires, if none is heard from meanwhile.
    pub fn next_expiry(&self, timeout: Duration) -> Option<Instant> {
        self.peers.values().map(|s| s.at + timeout).min()
    }

    /// Counts every node as just heard from: after a time without NATS, each gets a whole
    /// `peer_timeout` to announce itself again.
    pub fn refresh(&mut self, now: Instant) {
        for seen in self.peers.values_mut() {
            seen.at = now;
        }
    }

    /// Forgets every other node.
    pub fn clear(&mut self) {
        self.peers.clear();
    }

    /// The nodes heard from, by id.
    pub fn peers(&self) -> &HashMap<String, Seen> {
        &self.peers
    }

    /// Every address known, this node's included, sorted and without duplicates.
    pub fn addrs(&self) -> Vec<String> {
        let mut addrs: Vec<String> = self.peers.values().map(|s| s.addr.clone()).collect();
        addrs.push(self.my_addr.clone());
        addrs.sort();
        addrs.dedup();
        addrs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A message round-trips; every kind of garbage is refused with a reason.
    #[test]
    fn messages_are_checked() {
        let m = Message::new(Op::Request, "n1", "127.0.0.1:3320");
        assert_eq!(Message::parse(&m.to_bytes()), Ok(m));
        let extra = br#"{"v":1,"op":"leave","id":"n1","addr":"h:1","zone":"a"}"#;
        assert_eq!(Message::parse(extra).map(|m| m.op), Ok(Op::Leave));
        let long_id = format!(
            r#"{{"v":1,"op":"announce","id":"{}","addr":"h:1"}}"#,
            "x".repeat(300)
        );
        let big = vec![b' '; MAX_MESSAGE_BYTES + 1];
        for bad in [
            &b"not json"[..],
            b"",
            b"{}",
            br#"{"v":2,"op":"announce","id":"n1","addr":"h:1"}"#,
            br#"{"v":1,"op":"shout","id":"n1","addr":"h:1"}"#,
            br#"{"v":1,"op":"announce","id":"","addr":"h:1"}"#,
            br#"{"v":1,"op":"announce","id":"n1","addr":"nohost"}"#,
            br#"{"v":1,"op":"announce","id":"n1","addr":"h:99999"}"#,
            br#"[1,2,3]"#,
            long_id.as_bytes(),
            &big,
        ] {
            assert!(
                Message::parse(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    /// Announcements add and move nodes, leaving removes at once, silence expires.
    #[test]
    fn the_table_follows_announcements() {
        let t0 = Instant::now();
        let timeout = Duration::from_secs(10);
        let mut t = Table::new("me", "h:3");
        t.apply(&Message::new(Op::Announce, "me", "h:3"), t0);
        assert_eq!(t.addrs(), ["h:3"]);
        t.apply(&Message::new(Op::Announce, "a", "h:1"), t0);
        t.apply(
            &Message::new(Op::Request, "b", "h:2"),
            t0 + Duration::from_secs(5),
        );
        assert_eq!(t.addrs(), ["h:1", "h:2", "h:3"]);
        assert_eq!(t.next_expiry(timeout), Some(t0 + timeout));
        t.apply(&Message::new(Op::Announce, "a", "h:4"), t0);
        assert_eq!(t.addrs(), ["h:2", "h:3", "h:4"]);
        t.expire(t0 + Duration::from_secs(12), timeout);
        assert_eq!(t.addrs(), ["h:2", "h:3"]);
        t.refresh(t0 + Duration::from_secs(20));
        t.expire(t0 + Duration::from_secs(25), timeout);
        assert_eq!(t.addrs(), ["h:2", "h:3"]);
        t.apply(&Message::new(Op::Leave, "b", "h:2"), t0);
        assert_eq!(t.addrs(), ["h:3"]);
        assert_eq!(t.next_expiry(timeout), None);
    }
}
