//! `webhooks`: the admin command line (see `webhooks --help` and docs/operating.md).

#[tokio::main]
async fn main() {
    let output = webhooks::run(std::env::args_os()).await;
    let printed =
        webhook_core::logging::write_output(&mut std::io::stdout().lock(), &output.stdout);
    let _ = webhook_core::logging::write_output(&mut std::io::stderr().lock(), &output.stderr);
    std::process::exit(if printed.is_ok() { output.code } else { 1 });
}
