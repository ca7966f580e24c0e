//! [`TestDns`]: a real DNS server on loopback — hickory-server with one in-memory zone, on
//! UDP and TCP at one free port — whose records a test sets and changes while nodes resolve
//! them.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use hickory_server::Server;
use hickory_server::proto::rr::rdata::{A, AAAA, SOA, SRV};
use hickory_server::proto::rr::{LowerName, Name, RData, Record, RecordSet, RecordType, RrKey};
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, ZoneHandler, ZoneType};

/// A DNS server for one zone (`origin`, e.g. `distcache.test.`) on a free loopback port.
/// Dropping it stops it.
pub struct TestDns {
    addr: SocketAddr,
    origin: Name,
    zone: Arc<InMemoryZoneHandler>,
    serial: AtomicU32,
    _server: Server<Catalog>,
}

impl TestDns {
    /// Serves the zone `origin` (no records but its SOA yet).
    pub async fn start(origin: &str) -> TestDns {
        let origin = Name::from_str(origin).expect("a zone name");
        let zone = InMemoryZoneHandler::empty(origin.clone(), ZoneType::Primary, AxfrPolicy::Deny);
        let soa = SOA::new(
            Name::from_str("ns")
                .unwrap()
                .append_domain(&origin)
                .unwrap(),
            Name::from_str("admin")
                .unwrap()
                .append_domain(&origin)
                .unwrap(),
            1,
            60,
            60,
            600,
            0,
        );
        assert!(
            zone.upsert(Record::from_rdata(origin.clone(), 0, RData::SOA(soa)), 1)
                .await
        );
        let zone = Arc::new(zone);
        let mut catalog = Catalog::new();
        catalog.upsert(
            LowerName::new(&origin),
            vec![Arc::clone(&zone) as Arc<dyn ZoneHandler>],
        );
        let mut server = Server::new(catalog);
        let (udp, tcp) = bind_udp_and_tcp().await;
        let addr = udp.local_addr().unwrap();
        server.register_socket(udp);
        server.register_listener(tcp, Duration::from_secs(5), 64);
        TestDns {
            addr,
            origin,
            zone,
            serial: AtomicU32::new(1),
            _server: server,
        }
    }

    /// Where it answers (UDP and TCP), as `ip:port` for `--dns-server`.
    pub fn addr(&self) -> String {
        self.addr.to_string()
    }

    /// The fully qualified form of `name` in this zone (`peers` → `peers.distcache.test.`).
    pub fn name(&self, name: &str) -> String {
        self.fqdn(name).to_string()
    }

    fn fqdn(&self, name: &str) -> Name {
        let name = Name::from_str(name).expect("a DNS name");
        if name.is_fqdn() {
            name
        } else {
            name.append_domain(&self.origin)
                .expect("a name in the zone")
        }
    }

    /// Replaces the A and AAAA records of `name` with `ips` (none: the name has no address).
    pub async fn set_addresses(&self, name: &str, ips: &[IpAddr]) {
        let name = self.fqdn(name);
        let (v4, v6): (Vec<IpAddr>, Vec<IpAddr>) = ips.iter().partition(|ip| ip.is_ipv4());
        let a = v4.iter().map(|ip| match ip {
            IpAddr::V4(ip) => RData::A(A(*ip)),
            IpAddr::V6(_) => unreachable!(),
        });
        self.replace(&name, RecordType::A, a.collect()).await;
        let aaaa = v6.iter().map(|ip| match ip {
            IpAddr::V6(ip) => RData::AAAA(AAAA(*ip)),
            IpAddr::V4(_) => unreachable!(),
        });
        self.replace(&name, RecordType::AAAA, aaaa.collect()).await;
    }

    /// Replaces the SRV records of `name` with one per `(target, port)`.
    pub async fn set_srv(&self, name: &str, targets: &[(String, u16)]) {
        let name = self.fqdn(name);
        let records = targets
            .iter()
            .map(|(target, port)| RData::SRV(SRV::new(0, 10, *port, self.fqdn(target))))
            .collect();
        self.replace(&name, RecordType::SRV, records).await;
    }

    /// Publishes loopback `addrs` (`ip:port`) under the SRV name `name`: one target per
    /// address (`n-<port>` in the zone, with the address's IP), the SRV record carrying the
    /// port. What a test cluster of nodes on one IP and many ports needs.
    pub async fn publish_srv(&self, name: &str, addrs: &[String]) {
        let mut targets = Vec::new();
        for addr in addrs {
            let addr: SocketAddr = addr.parse().expect("an ip:port address");
            let target = format!("n-{}", addr.port());
            self.set_addresses(&target, &[addr.ip()]).await;
            targets.push((target, addr.port()));
        }
        self.set_srv(name, &targets).await;
    }

    /// Swaps the record set of `(name, kind)` in one step (no moment without records).
    async fn replace(&self, name: &Name, kind: RecordType, data: Vec<RData>) {
        let serial = self.serial.fetch_add(1, Ordering::Relaxed) + 1;
        let key = RrKey::new(LowerName::new(name), kind);
        let mut records = self.zone.records_mut().await;
        if data.is_empty() {
            records.remove(&key);
            return;
        }
        let mut set = RecordSet::new(name.clone(), kind, serial);
        for rdata in data {
            set.insert(Record::from_rdata(name.clone(), 0, rdata), serial);
        }
        records.insert(key, Arc::new(set));
    }
}

/// A UDP socket and a TCP listener on the same free loopback port.
async fn bind_udp_and_tcp() -> (tokio::net::UdpSocket, tokio::net::TcpListener) {
    for _ in 0..50 {
        let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let port = udp.local_addr().unwrap().port();
        if let Ok(tcp) = tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
            return (udp, tcp);
        }
    }
    panic!("no free port for both UDP and TCP on loopback");
}
