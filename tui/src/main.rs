//! `conjunction`: the command line for the conjunction daemon.

use clap::Parser;
use conjunction_tui::cli::{self, Cli};
use conjunction_tui::client::Client;
use conjunction_tui::config;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args = Cli::parse();
    let connection = match config::resolve(
        args.url,
        args.token,
        |k| std::env::var(k).ok(),
        config::config_file(),
    ) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    let client = Client::new(&connection.url, connection.token);
    if let Err(e) = cli::run(args.command, &client).await {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
