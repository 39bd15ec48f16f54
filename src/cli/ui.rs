//! `orcaops ui`: opens the dashboard in a browser, logged in by a one-time link.

use clap::Args;

use crate::client::{ApiClient, ClientError, exit};

pub const AFTER_HELP: &str = "\
The dashboard is served by `orcaops serve` (and `orcaops operator --api`) at /ui/.
This asks the server for a one-time login link (it needs the server admin key, which
the CLI finds by itself on the server's machine) and opens it with $BROWSER, xdg-open
or open. The link logs one browser in, once, within a day; the browser then keeps the
key in a cookie for 30 days.

Examples:
  orcaops ui                      open the dashboard of the local server
  orcaops ui --print              only print the link (for another machine's browser)
  orcaops ui --server http://10.0.0.5:7700 --token \"$KEY\"

Any key works by hand too: open http://127.0.0.1:7700/ui/ and paste it, or add
?token=KEY to any /ui/ URL (for scripts). See docs/dashboard.md.";

#[derive(Args, Debug)]
pub struct UiArgs {
    /// Print the login link instead of opening a browser.
    #[arg(long)]
    pub print: bool,
}

pub async fn ui(client: &ApiClient, args: UiArgs) -> Result<u8, ClientError> {
    let url = crate::client::ui::login_link(client).await?;
    if args.print {
        println!("{url}");
        return Ok(exit::OK);
    }
    match open(&url) {
        Some(opener) => eprintln!("opened the dashboard with {opener} (a one-time link)"),
        None => eprintln!(
            "no browser to open it with (set $BROWSER, or install xdg-open); open this one-time link:"
        ),
    }
    println!("{url}");
    Ok(exit::OK)
}

/// Opens `url` with the first opener that starts; the one used, or None.
fn open(url: &str) -> Option<String> {
    let mut openers: Vec<String> = std::env::var("BROWSER")
        .ok()
        .map(|b| {
            b.split(':')
                .map(str::to_string)
                .filter(|b| !b.is_empty())
                .collect()
        })
        .unwrap_or_default();
    openers.extend(["xdg-open".to_string(), "open".to_string()]);
    openers.into_iter().find(|opener| {
        std::process::Command::new(opener)
            .arg(url)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .is_ok()
    })
}
