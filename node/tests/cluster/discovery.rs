//! The DNS and Kubernetes discovery providers against real parts: a DNS server on loopback
//! whose records change, and a fake Kubernetes API (list, watch, 410 Gone) over HTTP.

use std::net::IpAddr;
use std::time::Duration;

use distcache::{Discovery, DnsConfig, DnsDiscovery, KubernetesConfig, KubernetesDiscovery};
use distcache_testkit::{FakeKubeApi, TestDns, wait_until};

const WITHIN: Duration = Duration::from_secs(10);

fn dns_config(dns: &TestDns, name: &str) -> DnsConfig {
    DnsConfig {
        name: dns.name(name),
        port: None,
        interval: Duration::from_millis(50),
        server: Some(dns.addr()),
    }
}

async fn wait_peers(d: &dyn Discovery, want: &[&str]) {
    let mut want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
    want.sort();
    let mut changes = d.changes();
    wait_until(WITHIN, &format!("discovery lists {want:?}"), || {
        let now = changes.borrow_and_update().clone();
        let want = want.clone();
        async move { now == want }
    })
    .await;
}

/// A and AAAA records give their addresses with the node's own port (or `port`); a record
/// change reaches `changes()` by the next interval.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_follows_a_records() {
    let dns = TestDns::start("distcache.test.").await;
    let ips: Vec<IpAddr> = vec!["127.0.0.1".parse().unwrap(), "::1".parse().unwrap()];
    dns.set_addresses("peers", &ips).await;
    let d = DnsDiscovery::new(&dns_config(&dns, "peers"), 3320).unwrap();
    d.start().await.unwrap();
    assert_eq!(d.peers().await.unwrap(), ["127.0.0.1:3320", "[::1]:3320"]);
    assert!(
        d.describe().contains("peers.distcache.test"),
        "{}",
        d.describe()
    );

    let with_port = DnsConfig {
        port: Some(4000),
        ..dns_config(&dns, "peers")
    };
    let fixed = DnsDiscovery::new(&with_port, 3320).unwrap();
    fixed.start().await.unwrap();
    assert_eq!(
        fixed.peers().await.unwrap(),
        ["127.0.0.1:4000", "[::1]:4000"]
    );
    fixed.stop().await.unwrap();

    dns.set_addresses("peers", &["127.0.0.2".parse().unwrap()])
        .await;
    wait_peers(&d, &["127.0.0.2:3320"]).await;
    d.stop().await.unwrap();
}

/// A `_`-prefixed name is looked up as SRV: each target's address with the record's port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_follows_srv_records() {
    let dns = TestDns::start("distcache.test.").await;
    let addrs = ["127.0.0.1:1111".to_owned(), "127.0.0.1:2222".to_owned()];
    dns.publish_srv("_distcache._tcp", &addrs).await;
    let d = DnsDiscovery::new(&dns_config(&dns, "_distcache._tcp"), 9).unwrap();
    d.start().await.unwrap();
    assert_eq!(d.peers().await.unwrap(), addrs);
    dns.publish_srv("_distcache._tcp", &addrs[..1]).await;
    wait_peers(&d, &["127.0.0.1:1111"]).await;
    d.stop().await.unwrap();
}

/// A name without records, or a server that stopped answering, keeps the last known list
/// (the refresh says why); nothing is published in between.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_keeps_the_last_known_list_on_failure() {
    let dns = TestDns::start("distcache.test.").await;
    dns.set_addresses("peers", &["127.0.0.1".parse().unwrap()])
        .await;
    let d = DnsDiscovery::new(&dns_config(&dns, "peers"), 3320).unwrap();
    d.refresh().await.unwrap();
    let mut changes = d.changes();
    changes.borrow_and_update();

    dns.set_addresses("peers", &[]).await;
    let err = d.refresh().await.expect_err("no records");
    assert!(err.to_string().contains("no records"), "{err}");
    assert_eq!(d.peers().await.unwrap(), ["127.0.0.1:3320"]);

    drop(dns);
    let err = d.refresh().await.expect_err("server gone");
    assert!(err.to_string().contains("peers.distcache.test"), "{err}");
    assert_eq!(d.peers().await.unwrap(), ["127.0.0.1:3320"]);
    assert!(!changes.has_changed().unwrap(), "nothing was published");
}

/// A configuration without a name, or with a server that is not ip:port, is refused naming
/// the field; so is a Kubernetes one without a selector.
#[test]
fn dns_and_kubernetes_settings_are_checked() {
    let no_selector = KubernetesConfig {
        selector: String::new(),
        ..KubernetesConfig::default()
    };
    let err = KubernetesDiscovery::new(no_selector)
        .err()
        .expect("refused");
    assert!(
        err.to_string().contains("discovery.kubernetes.selector"),
        "{err}"
    );

    let bad = DnsConfig {
        server: Some("resolver.local:53".into()),
        ..DnsConfig::default()
    };
    let err = DnsDiscovery::new(&bad, 3320).err().expect("refused");
    let text = err.to_string();
    assert!(
        text.contains("discovery.dns.name") && text.contains("discovery.dns.server"),
        "{text}"
    );
}

fn k8s_config(api: &FakeKubeApi) -> KubernetesConfig {
    KubernetesConfig {
        kubeconfig: Some(api.kubeconfig().to_path_buf()),
        ..KubernetesConfig::default()
    }
}

/// Pods are listed, then watched: only Running and Ready pods count, a pod turning unready
/// or deleted drops out, a new ready pod comes in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubernetes_lists_then_watches_ready_pods() {
    let api = FakeKubeApi::start().await;
    api.set_pod("a", "127.0.0.1:1001", true);
    api.set_pod("b", "127.0.0.1:1002", true);
    api.set_pod("c", "127.0.0.1:1003", false);
    api.set_pod_with("d", "127.0.0.1:1004", "Pending", false);
    let d = KubernetesDiscovery::new(k8s_config(&api)).unwrap();
    d.start().await.unwrap();
    assert_eq!(
        d.peers().await.unwrap(),
        ["127.0.0.1:1001", "127.0.0.1:1002"]
    );
    assert!(
        d.describe().contains("app=distcache in distcache"),
        "{}",
        d.describe()
    );
    assert_eq!(api.lists(), 1);

    api.set_pod("b", "127.0.0.1:1002", false);
    wait_peers(&d, &["127.0.0.1:1001"]).await;
    api.set_pod("c", "127.0.0.1:1003", true);
    wait_peers(&d, &["127.0.0.1:1001", "127.0.0.1:1003"]).await;
    api.delete_pod("a");
    wait_peers(&d, &["127.0.0.1:1003"]).await;
    d.stop().await.unwrap();
}

/// A watch ended by 410 Gone lists again, and follows the changes made after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubernetes_relists_after_410_gone() {
    let api = FakeKubeApi::start().await;
    api.set_pod("a", "127.0.0.1:1001", true);
    let d = KubernetesDiscovery::new(k8s_config(&api)).unwrap();
    d.start().await.unwrap();
    wait_until(WITHIN, "a watch is open", || {
        let w = api.watches();
        async move { w >= 1 }
    })
    .await;
    api.expire();
    wait_until(WITHIN, "the provider listed again", || {
        let l = api.lists();
        async move { l >= 2 }
    })
    .await;
    api.set_pod("b", "127.0.0.1:1002", true);
    wait_peers(&d, &["127.0.0.1:1001", "127.0.0.1:1002"]).await;
    d.stop().await.unwrap();
}

/// `include_not_ready` counts running pods that are not ready yet (nodes forming a cluster).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubernetes_can_count_pods_not_ready_yet() {
    let api = FakeKubeApi::start().await;
    api.set_pod("a", "127.0.0.1:1001", false);
    let d = KubernetesDiscovery::new(KubernetesConfig {
        include_not_ready: true,
        ..k8s_config(&api)
    })
    .unwrap();
    d.start().await.unwrap();
    assert_eq!(d.peers().await.unwrap(), ["127.0.0.1:1001"]);
    d.stop().await.unwrap();
}

/// An API that cannot be reached fails the start, naming the source: a node that cannot
/// see its cluster must not form one alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubernetes_start_fails_when_the_api_is_unreachable() {
    let api = FakeKubeApi::start().await;
    let config = k8s_config(&api);
    let kubeconfig = std::fs::read_to_string(api.kubeconfig()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let dead = dir.path().join("kubeconfig");
    let refused = distcache_testkit::free_addr();
    std::fs::write(
        &dead,
        kubeconfig.replace(api.url(), &format!("http://{refused}")),
    )
    .unwrap();
    let d = KubernetesDiscovery::new(KubernetesConfig {
        kubeconfig: Some(dead),
        namespace: Some("cache".into()),
        ..config
    })
    .unwrap();
    let err = d.start().await.expect_err("unreachable");
    let text = err.to_string();
    assert!(
        text.contains("listing pods failed") && text.contains("in cache"),
        "{text}"
    );
}
