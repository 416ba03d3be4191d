//! Where notices go in tests, all on loopback: an HTTP sink that takes what Slack,
//! Discord, Matrix and webhooks would, refusing what each refuses by its documented
//! limits (and can be down), a real SMTP server (aiosmtpd, delivering into a maildir)
//! and a real IRC server (ngircd) with a client that listens on a channel. `.ci/run` installs the servers from Debian's
//! packages (`python3-aiosmtpd`, `ngircd`); a test that needs one fails with the
//! package to install when it is missing.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::Router;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::daemon::free_address;

/// One request the sink took.
#[derive(Clone, Debug)]
pub struct Posted {
    pub method: Method,
    pub path: String,
    pub headers: HeaderMap,
    pub body: serde_json::Value,
    /// The body as sent, for checking a signature.
    pub raw: Vec<u8>,
}

#[derive(Default)]
struct SinkState {
    posted: Vec<Posted>,
    /// Answer this instead of 200 (a channel that is down).
    status: Option<u16>,
    /// Matrix room aliases the directory knows, and the room ids they name.
    aliases: std::collections::HashMap<String, String>,
}

/// An HTTP server on loopback that records every request as JSON.
#[derive(Clone)]
pub struct Sink {
    pub addr: SocketAddr,
    state: Arc<Mutex<SinkState>>,
}

impl Sink {
    pub async fn start() -> Self {
        let state = Arc::new(Mutex::new(SinkState::default()));
        let app = Router::new().fallback(take).with_state(state.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { addr, state }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Answers every later request with `status`.
    pub fn answer(&self, status: u16) {
        self.state.lock().unwrap().status = Some(status);
    }

    /// The Matrix room directory maps `alias` to `room_id` from now on.
    pub fn alias(&self, alias: &str, room_id: &str) {
        self.state
            .lock()
            .unwrap()
            .aliases
            .insert(alias.into(), room_id.into());
    }

    pub fn posted(&self) -> Vec<Posted> {
        self.state.lock().unwrap().posted.clone()
    }

    /// What was posted to `path`.
    pub fn posted_to(&self, path: &str) -> Vec<Posted> {
        self.posted()
            .into_iter()
            .filter(|p| p.path == path)
            .collect()
    }
}

async fn take(
    State(state): State<Arc<Mutex<SinkState>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let mut s = state.lock().unwrap();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    s.posted.push(Posted {
        method: method.clone(),
        path: uri.path().to_owned(),
        headers: headers.clone(),
        body: json.clone(),
        raw: body.to_vec(),
    });
    if let Some(status) = s.status {
        return (StatusCode::from_u16(status).unwrap(), String::new());
    }
    let path = uri.path();
    let refused = if let Some(alias) = path.strip_prefix("/_matrix/client/v3/directory/room/") {
        let alias = decode(alias);
        return match s.aliases.get(&alias) {
            Some(id) => (
                StatusCode::OK,
                serde_json::json!({"room_id": id, "servers": ["conjunction.test"]}).to_string(),
            ),
            None => (
                StatusCode::NOT_FOUND,
                serde_json::json!({"errcode": "M_NOT_FOUND", "error": format!("Room alias {alias} not found")})
                    .to_string(),
            ),
        };
    } else if let Some(rest) = path.strip_prefix("/_matrix/client/v3/rooms/") {
        matrix_send(&method, &headers, rest, body.len())
    } else if path.starts_with("/api/webhooks/") {
        discord(&json)
    } else if json.get("blocks").is_some() {
        slack(&json)
    } else {
        None
    };
    refused.unwrap_or((StatusCode::OK, "ok".into()))
}

fn decode(segment: &str) -> String {
    urlencoding::decode(segment).map_or_else(|_| segment.to_owned(), |s| s.into_owned())
}

fn chars(v: &serde_json::Value) -> usize {
    v.as_str().map_or(0, |s| s.chars().count())
}

/// Slack's incoming webhook: `400 invalid_blocks` for blocks past Block Kit's limits
/// (docs.slack.dev Block Kit reference: at most 50 blocks; a section's text 1 to
/// 3,000 characters and at most 10 fields of 2,000; a context block 1 to 10
/// elements, each text at most 3,000).
fn slack(body: &serde_json::Value) -> Option<(StatusCode, String)> {
    let invalid = || Some((StatusCode::BAD_REQUEST, "invalid_blocks".to_owned()));
    let blocks = body["blocks"].as_array()?;
    if blocks.len() > 50 {
        return invalid();
    }
    for block in blocks {
        match block["type"].as_str() {
            Some("section") => {
                let text = chars(&block["text"]["text"]);
                if block.get("text").is_some() && !(1..=3000).contains(&text) {
                    return invalid();
                }
                if let Some(fields) = block["fields"].as_array() {
                    if fields.len() > 10 || fields.iter().any(|f| chars(&f["text"]) > 2000) {
                        return invalid();
                    }
                }
            }
            Some("context") => {
                let elements = block["elements"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                if elements.is_empty()
                    || elements.len() > 10
                    || elements.iter().any(|e| {
                        e.get("text").is_some() && !(1..=3000).contains(&chars(&e["text"]))
                    })
                {
                    return invalid();
                }
            }
            Some("header") if chars(&block["text"]["text"]) > 150 => return invalid(),
            Some("divider" | "header" | "image" | "actions") => {}
            _ => return invalid(),
        }
    }
    None
}

/// Discord's Execute Webhook: `400` with code 50035 for a message past its limits
/// (content 2,000 characters; 10 embeds; an embed's title 256, description 4,096, 25
/// fields of 256 and 1,024, footer 2,048, author 256; all embeds together 6,000).
fn discord(body: &serde_json::Value) -> Option<(StatusCode, String)> {
    let invalid = |errors: &str| {
        Some((
            StatusCode::BAD_REQUEST,
            serde_json::json!({"code": 50035, "message": "Invalid Form Body", "errors": errors})
                .to_string(),
        ))
    };
    let embeds = body["embeds"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    if chars(&body["content"]) == 0 && embeds.is_empty() {
        return Some((
            StatusCode::BAD_REQUEST,
            serde_json::json!({"code": 50006, "message": "Cannot send an empty message"})
                .to_string(),
        ));
    }
    if chars(&body["content"]) > 2000 {
        return invalid("content: Must be 2000 or fewer in length.");
    }
    if embeds.len() > 10 {
        return invalid("embeds: Must be 10 or fewer in length.");
    }
    let mut total = 0;
    for e in embeds {
        let fields = e["fields"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        if chars(&e["title"]) > 256
            || chars(&e["description"]) > 4096
            || fields.len() > 25
            || chars(&e["footer"]["text"]) > 2048
            || chars(&e["author"]["name"]) > 256
            || fields
                .iter()
                .any(|f| chars(&f["name"]) > 256 || chars(&f["value"]) > 1024)
        {
            return invalid("embeds.0: a field is over its limit");
        }
        total += chars(&e["title"])
            + chars(&e["description"])
            + chars(&e["footer"]["text"])
            + chars(&e["author"]["name"])
            + fields
                .iter()
                .map(|f| chars(&f["name"]) + chars(&f["value"]))
                .sum::<usize>();
    }
    if total > 6000 {
        return invalid("embeds: Embed size exceeds maximum size of 6000");
    }
    None
}

/// The Matrix client-server API's send endpoint,
/// `PUT /_matrix/client/v3/rooms/{roomId}/send/{eventType}/{txnId}`: it takes a room id,
/// never an alias (Synapse: `400 M_INVALID_PARAM "Expected RoomID string to start with
/// '!'"`), needs an access token, and takes an event of at most 65,536 bytes.
fn matrix_send(
    method: &Method,
    headers: &HeaderMap,
    rest: &str,
    size: usize,
) -> Option<(StatusCode, String)> {
    let error = |status: StatusCode, code: &str, text: &str| {
        Some((
            status,
            serde_json::json!({"errcode": code, "error": text}).to_string(),
        ))
    };
    let parts: Vec<&str> = rest.split('/').collect();
    let [room, "send", _event_type, _txn] = parts.as_slice() else {
        return error(
            StatusCode::NOT_FOUND,
            "M_UNRECOGNIZED",
            "Unrecognized request",
        );
    };
    if method != Method::PUT {
        return error(
            StatusCode::METHOD_NOT_ALLOWED,
            "M_UNRECOGNIZED",
            "Unrecognized request",
        );
    }
    if !headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("Bearer "))
    {
        return error(
            StatusCode::UNAUTHORIZED,
            "M_MISSING_TOKEN",
            "Missing access token",
        );
    }
    if !decode(room).starts_with('!') {
        return error(
            StatusCode::BAD_REQUEST,
            "M_INVALID_PARAM",
            "Expected RoomID string to start with '!'",
        );
    }
    if size > 65_536 {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "M_TOO_LARGE",
            "event too large",
        );
    }
    Some((
        StatusCode::OK,
        serde_json::json!({"event_id": "$event:conjunction.test"}).to_string(),
    ))
}

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
fn certificate(dir: &std::path::Path) -> (PathBuf, PathBuf) {
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
