//! Ports picked by the operating system, never fixed numbers: tests run in parallel.

use tokio::net::TcpListener;

/// A listener on a free loopback port, and its address.
pub async fn loopback_listener() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let addr = listener.local_addr().expect("bound address").to_string();
    (listener, addr)
}

/// A loopback address that was free a moment ago, for a process the test starts (which
/// binds it itself). Prefer [`loopback_listener`] in-process: nothing can take it meanwhile.
pub fn free_addr() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    listener.local_addr().expect("bound address").to_string()
}
