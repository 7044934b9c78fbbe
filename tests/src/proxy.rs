//! A TCP proxy on a loopback port that forwards to a real endpoint — or, on command, drops
//! every connection (open ones included), as a failing network or a stopped service would.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

#[derive(Clone)]
pub struct Proxy {
    pub url: String,
    dropping: Arc<watch::Sender<bool>>,
}

impl Proxy {
    pub async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (dropping, _) = watch::channel(false);
        let dropping = Arc::new(dropping);
        let state = Arc::clone(&dropping);
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                let mut watching = state.subscribe();
                if *watching.borrow() {
                    drop(inbound);
                    continue;
                }
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = watching.wait_for(|dropping| *dropping) => {}
                    }
                });
            }
        });
        Proxy { url, dropping }
    }

    /// Drops every open and every new connection until [`Proxy::restore`].
    pub fn drop_connections(&self) {
        self.dropping.send_replace(true);
    }

    pub fn restore(&self) {
        self.dropping.send_replace(false);
    }
}

/// The address of the local AWS endpoint (`AWS_ENDPOINT_URL`).
pub fn local_aws_address() -> SocketAddr {
    let url = std::env::var("AWS_ENDPOINT_URL").expect("AWS_ENDPOINT_URL");
    url.trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .expect("AWS_ENDPOINT_URL is http://<ip>:<port>")
}
