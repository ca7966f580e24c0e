//! Asking every member at once (`client::Fleet`) against real nodes, one of them stopped.

use std::time::Duration;

use distcache::Error;
use distcache::client::Fleet;

use distcache_testkit::TestCluster;

/// With one member stopped, a fan-out still answers: the stopped member's answer is an error
/// naming it, the others answer, and the totals sum exactly theirs.
#[tokio::test]
async fn fan_out_reports_a_stopped_member_and_merges_the_rest() {
    let mut cluster = TestCluster::start(3).await;
    let client = cluster.client(0);
    for i in 0..12 {
        client.get("ks", &format!("key-{i}")).await.unwrap();
    }
    cluster.stop_node(2).await;

    let mut fleet = Fleet::new(None, Duration::from_secs(2));
    fleet.refresh(&client).await.unwrap();
    let mut addrs: Vec<&str> = fleet.members().map(|m| m.addr.as_str()).collect();
    addrs.sort_unstable();
    let mut expected: Vec<&str> = cluster.addrs.iter().map(String::as_str).collect();
    expected.sort_unstable();
    assert_eq!(addrs, expected, "the stopped member is still a member");

    let answers = fleet.stats().await;
    assert_eq!(answers.len(), 3);
    let failed: Vec<_> = answers.failed().collect();
    assert_eq!(failed.len(), 1, "{answers:?}");
    let (member, error) = failed[0];
    assert_eq!(member.addr, cluster.addrs[2]);
    assert_eq!(member.name(), cluster.ids[2]);
    assert!(matches!(error, Error::Unavailable(_)), "{error}");
    assert!(error.to_string().contains(&cluster.addrs[2]), "{error}");

    let mut answered: Vec<&str> = answers.answered().map(|(m, _)| m.name()).collect();
    answered.sort_unstable();
    assert_eq!(answered, [cluster.ids[0].as_str(), cluster.ids[1].as_str()]);
    let gets: u64 = answers
        .answered()
        .flat_map(|(_, keyspaces)| keyspaces)
        .filter(|k| k.name == "ks")
        .map(|k| k.stats.gets)
        .sum();
    let totals = answers.totals();
    assert_eq!(totals["ks"].nodes, 2);
    assert_eq!(totals["ks"].stats.gets, gets);
    assert!(gets >= 12, "the reads were counted: {gets}");
    cluster.shutdown().await;
}
