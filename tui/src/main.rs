//! `conjunction`: the terminal UI and command line for the conjunction daemon.

use clap::Parser;
use conjunction_tui::cli::{self, Cli};
use conjunction_tui::client::Client;
use conjunction_tui::config;

#[tokio::main]
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
    let result = match args.command {
        Some(command) => cli::run(command, &client).await,
        None => conjunction_tui::terminal::run(client)
            .await
            .map_err(anyhow::Error::from),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
