//! systemd's protocol, as its manuals write it. Telling systemd how the daemon is
//! doing when systemd runs it (`Type=notify`): ready once it serves, what it is doing
//! (`systemctl status` shows it), that its writer still commits (the watchdog), and
//! that it is stopping; without `NOTIFY_SOCKET`, or for a daemon inside a test, every
//! call does nothing. And what systemd hands a service: a listening socket
//! (sd_listen_fds(3)) and a journal on stderr (systemd.exec(5)).

use std::time::Duration;

use sd_notify::NotifyState;

#[derive(Debug, Clone, Copy)]
pub struct ServiceManager {
    on: bool,
}

impl ServiceManager {
    /// Talks to systemd when `wanted` and systemd gave a notify socket.
    pub fn new(wanted: bool) -> Self {
        Self {
            on: wanted && std::env::var_os("NOTIFY_SOCKET").is_some(),
        }
    }

    fn send(&self, states: &[NotifyState<'_>]) {
        if !self.on {
            return;
        }
        if let Err(e) = sd_notify::notify(states) {
            tracing::warn!(error = %e, "cannot tell systemd how the daemon is doing");
        }
    }

    /// The database is open, the outboxes are loaded and the socket listens.
    pub fn ready(&self, status: &str) {
        self.send(&[NotifyState::Ready, NotifyState::Status(status)]);
    }

    pub fn status(&self, status: &str) {
        self.send(&[NotifyState::Status(status)]);
    }

    /// The writer just committed: the daemon is alive.
    pub fn watchdog(&self) {
        self.send(&[NotifyState::Watchdog]);
    }

    pub fn stopping(&self) {
        self.send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
    }

    /// How often systemd wants to hear from the watchdog, when it watches.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        if self.on {
            sd_notify::watchdog_enabled()
        } else {
            None
        }
    }
}

/// What came of the sockets systemd may have passed.
#[derive(Debug)]
pub enum Passed {
    /// `LISTEN_FDS` passed this listening socket to this process.
    Socket(std::net::TcpListener),
    /// `LISTEN_FDS` is set, but `LISTEN_PID` names another process (or none): the
    /// descriptors were meant for someone else, such as a parent that did not clear
    /// its environment, and are left alone.
    NotOurs { listen_pid: Option<String> },
    /// No socket was passed.
    Nothing,
}

/// The listening socket systemd passed, used only when `LISTEN_PID` is this
/// process's id, as sd_listen_fds(3) requires. The `LISTEN_*` variables are removed
/// either way, so that no process the daemon starts takes them for its own. Call it
/// before any thread starts: it changes the environment.
pub fn passed_socket() -> std::io::Result<Passed> {
    let fds = std::env::var_os("LISTEN_FDS");
    let pid = std::env::var("LISTEN_PID").ok();
    let ours =
        pid.as_deref().and_then(|p| p.trim().parse::<u32>().ok()) == Some(std::process::id());
    if fds.is_none() {
        return Ok(Passed::Nothing);
    }
    if !ours {
        for var in ["LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"] {
            std::env::remove_var(var);
        }
        return Ok(Passed::NotOurs { listen_pid: pid });
    }
    // LISTEN_PID is ours, so listenfd's own checks agree; it takes the variables out.
    Ok(match listenfd::ListenFd::from_env().take_tcp_listener(0)? {
        Some(socket) => Passed::Socket(socket),
        None => Passed::Nothing,
    })
}

/// Whether stderr is the journal: `JOURNAL_STREAM` (`<device>:<inode>`, in decimal)
/// names the file stderr is, as systemd.exec(5) says to check. A variable inherited
/// by a process whose stderr was redirected elsewhere names another file.
pub fn stderr_is_journal() -> bool {
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    let Some(stream) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let stat = std::io::stderr()
        .as_fd()
        .try_clone_to_owned()
        .map(std::fs::File::from)
        .and_then(|f| f.metadata());
    match (stream.to_str(), stat) {
        (Some(stream), Ok(stat)) => names_file(stream, stat.dev(), stat.ino()),
        _ => false,
    }
}

/// Whether a `JOURNAL_STREAM` value names the file with `device` and `inode`.
fn names_file(stream: &str, device: u64, inode: u64) -> bool {
    let Some((dev, ino)) = stream.trim().split_once(':') else {
        return false;
    };
    dev.parse() == Ok(device) && ino.parse() == Ok(inode)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_stream_must_name_stderrs_own_device_and_inode() {
        assert!(names_file("8:1234", 8, 1234));
        assert!(names_file(" 8:1234\n", 8, 1234));
        for other in [
            "8:1235", "9:1234", "8", "8:", ":1234", "x:y", "8:1234:5", "",
        ] {
            assert!(!names_file(other, 8, 1234), "{other:?}");
        }
    }
}
