//! IRC: a short-lived client for one notice. It connects (over TLS unless told not
//! to), registers, joins the channel (a channel may refuse messages from outside),
//! says the notice in a few lines spaced against flood limits, and quits. The
//! protocol subset is small enough that a client of its own is clearer than a
//! general IRC library. The lines are [`crate::notify::irc`]'s.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::{self, ClientConfig};
use tokio_rustls::TlsConnector;

use super::{trusted_roots, IrcConfig, Sent};
use crate::call::Failure;
use crate::notify::irc::lines;
use crate::notify::message::Message;

/// The pause between two lines, so that the server's flood control does not drop us.
const LINE_GAP: Duration = Duration::from_millis(300);

/// Says `m` to `target` (a channel or a nickname) on the configured server, once.
pub async fn send(config: &IrcConfig, timeout: Duration, target: &str, m: &Message) -> Sent {
    let server = format!("{}:{}", config.server, config.port());
    match tokio::time::timeout(timeout, connect_and_say(config, target, &lines(m))).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(Trouble::Refused(e))) => Err(Failure::Refused(format!("{server}: {e}"))),
        Ok(Err(Trouble::Transient(e))) => Err(Failure::Transient {
            error: format!("{server}: {e}"),
            retry_after: None,
        }),
        Err(_) => Err(Failure::Transient {
            error: format!("{server} did not finish in time"),
            retry_after: None,
        }),
    }
}

/// What went wrong in a session, before the server is named in it.
enum Trouble {
    Refused(String),
    Transient(String),
}

impl From<std::io::Error> for Trouble {
    fn from(e: std::io::Error) -> Self {
        Trouble::Transient(e.to_string())
    }
}

async fn connect_and_say(
    config: &IrcConfig,
    target: &str,
    lines: &[String],
) -> Result<(), Trouble> {
    let tcp = TcpStream::connect((config.server.as_str(), config.port()))
        .await
        .map_err(|e| Trouble::Transient(format!("could not connect: {e}")))?;
    if !config.tls {
        return session(tcp, config, target, lines).await;
    }
    let roots = trusted_roots(config.ca_pem.as_deref()).map_err(Trouble::Refused)?;
    let tls =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| Trouble::Refused(format!("TLS cannot be set up: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
    let name = ServerName::try_from(config.server.clone()).map_err(|e| {
        Trouble::Refused(format!(
            "{:?} is not a name a certificate can be checked against: {e}",
            config.server
        ))
    })?;
    let stream = TlsConnector::from(Arc::new(tls))
        .connect(name, tcp)
        .await
        .map_err(|e| {
            // A certificate the roots do not vouch for stays so until someone changes
            // the server or `ca_file`: trying again soon would not help.
            let untrusted = e
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
                .is_some_and(|inner| matches!(inner, rustls::Error::InvalidCertificate(_)));
            let reason = format!("TLS handshake failed: {e}");
            if untrusted {
                Trouble::Refused(reason)
            } else {
                Trouble::Transient(reason)
            }
        })?;
    session(stream, config, target, lines).await
}

/// Writes `line` and flushes it, so that a TLS stream sends its record now.
async fn say<W: AsyncWrite + Unpin>(write: &mut W, line: &str) -> std::io::Result<()> {
    write.write_all(line.as_bytes()).await?;
    write.flush().await
}

async fn session<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    config: &IrcConfig,
    target: &str,
    lines: &[String],
) -> Result<(), Trouble> {
    let (read, mut write) = tokio::io::split(stream);
    let mut read = BufReader::new(read).lines();
    let mut nick = config.nick.clone();
    let mut renames = 0;
    if let Some(password) = &config.password {
        say(&mut write, &format!("PASS {password}\r\n")).await?;
    }
    say(
        &mut write,
        &format!("NICK {nick}\r\nUSER {nick} 0 * :conjunction notifications\r\n"),
    )
    .await?;
    let joins = target.starts_with(['#', '&', '+', '!']);
    let mut joined = !joins;
    let mut registered = false;
    loop {
        let Some(line) = read.next_line().await? else {
            return Err(Trouble::Transient(
                "the server closed the connection".into(),
            ));
        };
        let (command, rest) = command_of(&line);
        match command {
            "PING" => say(&mut write, &format!("PONG {rest}\r\n")).await?,
            "001" => {
                registered = true;
                if joins {
                    say(&mut write, &format!("JOIN {target}\r\n")).await?;
                }
            }
            // The nickname is taken, or too long for this server (RFC 2812 allows
            // nine characters, many servers more): try another, a few times.
            "432" | "433" if !registered => {
                renames += 1;
                nick = next_nick(&nick, command == "432")
                    .filter(|_| renames <= 5)
                    .ok_or_else(|| {
                        Trouble::Refused(format!(
                            "the server takes no nickname like {:?}: {rest}",
                            config.nick
                        ))
                    })?;
                say(&mut write, &format!("NICK {nick}\r\n")).await?;
            }
            // End of the channel's names: we are in.
            "366" => joined = true,
            "403" | "405" | "471" | "473" | "474" | "475" | "477" => {
                return Err(Trouble::Refused(format!("cannot join {target}: {rest}")));
            }
            "ERROR" => return Err(Trouble::Transient(format!("the server said {rest}"))),
            "464" | "465" => return Err(Trouble::Refused(format!("refused: {rest}"))),
            _ => {}
        }
        if registered && joined {
            break;
        }
    }
    for (i, text) in lines.iter().enumerate() {
        if i > 0 {
            tokio::time::sleep(LINE_GAP).await;
        }
        say(&mut write, &format!("PRIVMSG {target} :{text}\r\n")).await?;
    }
    say(&mut write, "QUIT :notified\r\n").await?;
    // The server answers QUIT with ERROR and closes; what it says before then may be
    // a refusal of the messages.
    while let Ok(Ok(Some(line))) =
        tokio::time::timeout(Duration::from_secs(5), read.next_line()).await
    {
        let (command, rest) = command_of(&line);
        match command {
            "401" | "404" => {
                return Err(Trouble::Refused(format!("cannot send to {target}: {rest}")))
            }
            "ERROR" => break,
            _ => {}
        }
    }
    Ok(())
}

/// The nickname to try after `nick` was refused: cut to RFC 2812's nine characters
/// when the server found it erroneous (too long), or ending in the next digit when
/// it is taken.
fn next_nick(nick: &str, erroneous: bool) -> Option<String> {
    const RFC_NICKLEN: usize = 9;
    if erroneous {
        return (nick.len() > RFC_NICKLEN).then(|| nick[..RFC_NICKLEN].to_owned());
    }
    let mut next = nick.to_owned();
    match next.pop() {
        Some(d @ '0'..='8') => next.push((d as u8 + 1) as char),
        Some(c) if nick.len() < RFC_NICKLEN => {
            next.push(c);
            next.push('1');
        }
        _ => next.push('1'),
    }
    Some(next)
}

/// A line's command (or numeric) and what follows it, without the prefix.
fn command_of(line: &str) -> (&str, &str) {
    let line = match line.strip_prefix(':') {
        Some(rest) => rest.split_once(' ').map_or("", |(_, r)| r),
        None => line,
    };
    line.split_once(' ').unwrap_or((line, ""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_nickname_is_cut_to_nine_or_numbered() {
        assert_eq!(next_nick("conjunction", true).as_deref(), Some("conjuncti"));
        assert_eq!(next_nick("conj", true), None);
        assert_eq!(next_nick("conj", false).as_deref(), Some("conj1"));
        assert_eq!(next_nick("conj1", false).as_deref(), Some("conj2"));
        assert_eq!(next_nick("conjuncti", false).as_deref(), Some("conjunct1"));
    }

    #[test]
    fn tls_is_the_default_and_picks_the_port() {
        let tls: IrcConfig = toml::from_str(r#"server = "irc.example.org""#).unwrap();
        assert!(tls.tls);
        assert_eq!(tls.port(), 6697);
        let plain: IrcConfig = toml::from_str("server = \"irc.lan\"\ntls = false").unwrap();
        assert_eq!(plain.port(), 6667);
        let chosen: IrcConfig = toml::from_str("server = \"irc.lan\"\nport = 7000").unwrap();
        assert_eq!(chosen.port(), 7000);
    }

    #[test]
    fn commands_are_read_with_or_without_a_prefix() {
        assert_eq!(command_of("PING :irc.test"), ("PING", ":irc.test"));
        assert_eq!(
            command_of(":irc.test 001 conjunction :Welcome"),
            ("001", "conjunction :Welcome")
        );
    }
}
