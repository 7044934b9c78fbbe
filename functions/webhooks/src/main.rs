//! `webhooks`: the admin command line (see `webhooks --help` and the README's "Operating it").

#[tokio::main]
async fn main() {
    let output = webhooks::run(std::env::args_os()).await;
    print!("{}", output.stdout);
    eprint!("{}", output.stderr);
    std::process::exit(output.code);
}
