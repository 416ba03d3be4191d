//! Where email and IRC notices go in tests, all on loopback: a real SMTP server
//! (aiosmtpd, delivering into a maildir) and a real IRC server (ngircd) with a client
//! that listens on a channel. `.ci/run` installs the servers from Debian's packages
//! (`python3-aiosmtpd`, `ngircd`); a test that needs one fails with the package to
//! install when it is missing. The HTTP chats (Slack, Discord, Matrix, webhooks) are
//! simulated by `conjunction_sim::chat::Sink`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::daemon::free_address;

/// A child process killed when dropped.
struct Child(tokio::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.start_kill();
    }
}

fn needs(program: &str, package: &str) -> PathBuf {
    let path = PathBuf::from(program);
    assert!(
        path.exists(),
        "{program} is missing: install Debian's {package} package (`apt-get install -y {package}`; .ci/run does)"
    );
    path
}

/// Waits up to 20 s for `addr` to take connections: ngircd with TLS makes its DH
/// parameters first (about 0.3 s here), and a busy machine may take many times that.
async fn wait_for_port(addr: SocketAddr, what: &str) {
    for _ in 0..2_000 {
        if TcpStream::connect(addr).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{what} did not listen on {addr}");
}

/// A real SMTP server (aiosmtpd) on loopback, delivering into a maildir.
pub struct SmtpServer {
    pub addr: SocketAddr,
    maildir: tempfile::TempDir,
    _child: Child,
}

/// How a test SMTP server is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    None,
    /// STARTTLS, required of the client.
    Starttls,
    /// TLS from the first byte (SMTPS).
    Implicit,
}

impl SmtpServer {
    pub async fn start() -> Self {
        Self::start_secured(SmtpTls::None).await
    }

    /// The CA certificate that signed the server's certificate (for `localhost` and
    /// 127.0.0.1), when it has one.
    pub fn ca_file(&self) -> PathBuf {
        self.maildir.path().join("ca.pem")
    }

    pub async fn start_secured(tls: SmtpTls) -> Self {
        let python = needs("/usr/bin/python3", "python3-aiosmtpd");
        let maildir = tempfile::tempdir().unwrap();
        let addr = free_address();
        let mut command = tokio::process::Command::new(python);
        command
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(addr.to_string());
        if tls != SmtpTls::None {
            let (cert, key) = certificate(maildir.path());
            let (cert_flag, key_flag) = match tls {
                SmtpTls::Starttls => ("--tlscert", "--tlskey"),
                _ => ("--smtpscert", "--smtpskey"),
            };
            command.arg(cert_flag).arg(cert).arg(key_flag).arg(key);
        }
        let child = command
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(maildir.path().join("mail"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("aiosmtpd starts (install python3-aiosmtpd)");
        wait_for_port(addr, "aiosmtpd").await;
        Self {
            addr,
            maildir,
            _child: Child(child),
        }
    }

    /// Every mail delivered so far, as its raw text with quoted-printable undone.
    pub fn mails(&self) -> Vec<String> {
        let new = self.maildir.path().join("mail/new");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&new)
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        // In the order they came: a maildir name's microseconds are not zero-padded,
        // so names alone do not sort by time.
        files.sort_by_key(|f| {
            let modified = std::fs::metadata(f).and_then(|m| m.modified()).ok();
            (modified, f.clone())
        });
        files
            .iter()
            .filter_map(|f| std::fs::read(f).ok())
            .map(|raw| unquote(&String::from_utf8_lossy(&raw)))
            .collect()
    }
}

/// A CA (`ca.pem` in `dir`) and a server certificate it signed for `localhost` and
/// 127.0.0.1, made with the openssl command; returns the certificate and key files.
pub fn certificate(dir: &std::path::Path) -> (PathBuf, PathBuf) {
    let openssl = needs("/usr/bin/openssl", "openssl");
    let run = |args: &[&str]| {
        let out = std::process::Command::new(&openssl)
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl runs");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec![
        "req",
        "-x509",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=conjunction test CA",
    ];
    ca.extend(ec);
    run(&ca);
    let mut csr = vec![
        "req",
        "-keyout",
        "key.pem",
        "-out",
        "leaf.csr",
        "-subj",
        "/CN=localhost",
    ];
    csr.extend(ec);
    run(&csr);
    std::fs::write(
        dir.join("leaf.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "cert.pem",
        "-days",
        "2",
        "-extfile",
        "leaf.ext",
    ]);
    (dir.join("cert.pem"), dir.join("key.pem"))
}

/// Quoted-printable undone: soft line breaks joined, `=XX` decoded.
fn unquote(text: &str) -> String {
    let joined = text.replace("=\r\n", "").replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'=' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).replace("\r\n", "\n")
}

/// A real IRC server (ngircd) on loopback.
pub struct IrcServer {
    /// The plain port, where listeners connect.
    pub addr: SocketAddr,
    /// The TLS port, when the server was started with one.
    pub tls_addr: Option<SocketAddr>,
    dir: tempfile::TempDir,
    _child: Child,
}

impl IrcServer {
    pub async fn start() -> Self {
        Self::start_with(false).await
    }

    /// A server that also takes TLS, with a certificate for `localhost` and 127.0.0.1
    /// signed by the CA in [`IrcServer::ca_file`].
    pub async fn start_secured() -> Self {
        Self::start_with(true).await
    }

    /// The CA certificate that signed the server's certificate, when it has one.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    async fn start_with(tls: bool) -> Self {
        let ngircd = needs("/usr/sbin/ngircd", "ngircd");
        let dir = tempfile::tempdir().unwrap();
        let addr = free_address();
        let mut conf = format!(
            "[Global]\n\
             Name = irc.conjunction.test\n\
             Info = conjunction test server\n\
             Listen = 127.0.0.1\n\
             Ports = {}\n\
             PidFile = {}\n\
             MotdPhrase = test\n\
             [Limits]\n\
             MaxConnectionsIP = 0\n\
             [Options]\n\
             PAM = no\n\
             Ident = no\n\
             DNS = no\n",
            addr.port(),
            dir.path().join("ngircd.pid").display()
        );
        let tls_addr = tls.then(|| {
            let (cert, key) = certificate(dir.path());
            let tls_addr = free_address();
            conf.push_str(&format!(
                "[SSL]\nCertFile = {}\nKeyFile = {}\nPorts = {}\n",
                cert.display(),
                key.display(),
                tls_addr.port()
            ));
            tls_addr
        });
        let path = dir.path().join("ngircd.conf");
        std::fs::write(&path, conf).unwrap();
        let child = tokio::process::Command::new(ngircd)
            .arg("--nodaemon")
            .arg("--config")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("ngircd starts (install ngircd)");
        wait_for_port(addr, "ngircd").await;
        if let Some(tls_addr) = tls_addr {
            wait_for_port(tls_addr, "ngircd's TLS port").await;
        }
        Self {
            addr,
            tls_addr,
            dir,
            _child: Child(child),
        }
    }

    /// A client named `nick` in `channel` that hands over every PRIVMSG said there,
    /// as `(sender nick, text)`.
    pub async fn listen(
        &self,
        nick: &str,
        channel: &str,
    ) -> mpsc::UnboundedReceiver<(String, String)> {
        let stream = TcpStream::connect(self.addr).await.unwrap();
        let (read, mut write) = stream.into_split();
        let mut lines = BufReader::new(read).lines();
        write
            .write_all(format!("NICK {nick}\r\nUSER {nick} 0 * :listener\r\n").as_bytes())
            .await
            .unwrap();
        // Registered and in the channel before the test goes on.
        loop {
            let line = lines
                .next_line()
                .await
                .unwrap()
                .expect("the server answers");
            if line.starts_with("PING") {
                let pong = line.replacen("PING", "PONG", 1);
                write
                    .write_all(format!("{pong}\r\n").as_bytes())
                    .await
                    .unwrap();
            } else if line.split(' ').nth(1) == Some("001") {
                write
                    .write_all(format!("JOIN {channel}\r\n").as_bytes())
                    .await
                    .unwrap();
            } else if line.split(' ').nth(1) == Some("366") {
                break;
            }
        }
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                if line.starts_with("PING") {
                    let pong = line.replacen("PING", "PONG", 1);
                    let _ = write.write_all(format!("{pong}\r\n").as_bytes()).await;
                    continue;
                }
                // :nick!user@host PRIVMSG #channel :text
                let mut parts = line.splitn(4, ' ');
                let (Some(prefix), Some("PRIVMSG"), Some(_), Some(text)) =
                    (parts.next(), parts.next(), parts.next(), parts.next())
                else {
                    continue;
                };
                let from = prefix
                    .trim_start_matches(':')
                    .split('!')
                    .next()
                    .unwrap_or("");
                let _ = tx.send((from.to_owned(), text.trim_start_matches(':').to_owned()));
            }
        });
        rx
    }
}
