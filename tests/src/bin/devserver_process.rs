//! The dev server as an operating-system process of its own, for tests that kill it
//! (`tests/tests/suite/devserver_kill.rs`): `devserver-process <config> <data>` serves on free
//! loopback ports, writes its log lines to standard output as the `devserver` binary does,
//! prints `<webhook address> <admin address>` on one line to standard error once it is ready,
//! and runs until it is killed or its standard input closes (the test that started it is gone).

use std::time::Duration;

#[tokio::main]
async fn main() {
    let mut args = std::env::args_os().skip(1);
    let (Some(config), Some(data)) = (args.next(), args.next()) else {
        eprintln!("usage: devserver-process <config> <data>");
        std::process::exit(2);
    };
    webhook_core::logging::init_readable();
    let server = devserver::start(devserver::Options {
        listen: "127.0.0.1:0".parse().unwrap(),
        admin_listen: "127.0.0.1:0".parse().unwrap(),
        config: config.into(),
        data: data.into(),
        workers: 2,
        visibility: Duration::from_secs(1),
        poll_interval: Duration::from_millis(20),
        sweep_interval: Duration::from_millis(200),
        ..devserver::Options::default()
    })
    .await
    .unwrap_or_else(|error| {
        eprintln!("devserver-process: {error}");
        std::process::exit(1);
    });
    eprintln!("{} {}", server.addr, server.admin_addr);
    tokio::task::spawn_blocking(|| std::io::copy(&mut std::io::stdin(), &mut std::io::sink()))
        .await
        .ok();
    server.shutdown().await;
}
