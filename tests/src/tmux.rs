//! Driving a terminal program in a detached tmux session, as a person would: send
//! keys, read the screen.

use std::process::Command;
use std::time::{Duration, Instant};

/// A detached tmux session on its own server, killed when dropped.
pub struct Tmux {
    socket: String,
}

impl Tmux {
    /// Starts `program` with `args` in a new `width` x `height` session.
    pub fn start(program: &std::path::Path, args: &[&str], width: u16, height: u16) -> Self {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let socket = format!("conjunction-test-{}-{n}", std::process::id());
        let mut cmd = Command::new("tmux");
        cmd.args(["-L", &socket, "-f", "/dev/null", "new-session", "-d"])
            .args(["-x", &width.to_string(), "-y", &height.to_string()])
            .args(["-s", "ui"])
            .arg(program);
        cmd.args(args)
            .env("TERM", "xterm-256color")
            .env_remove("CONJUNCTION_URL")
            .env_remove("CONJUNCTION_TOKEN")
            .env_remove("TMUX");
        let status = cmd.status().unwrap_or_else(|e| {
            panic!("tmux cannot be run ({e}); install it, e.g. `apt-get install -y tmux`")
        });
        assert!(status.success(), "tmux new-session failed: {status}");
        Self { socket }
    }

    fn tmux(&self) -> Command {
        let mut cmd = Command::new("tmux");
        cmd.args(["-L", &self.socket]);
        cmd
    }

    /// The screen's text as the terminal shows it now.
    pub fn screen(&self) -> String {
        let out = self
            .tmux()
            .args(["capture-pane", "-p", "-t", "ui"])
            .output()
            .expect("tmux capture-pane runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Sends keys by tmux name (`Enter`, `Tab`, `j`, ...), one at a time with a
    /// pause, so none is read as part of an escape sequence.
    pub async fn keys(&self, keys: &[&str]) {
        for key in keys {
            let status = self
                .tmux()
                .args(["send-keys", "-t", "ui", key])
                .status()
                .expect("tmux send-keys runs");
            assert!(status.success(), "sending {key}");
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }

    /// Polls the screen until `check` finds what it wants in it, or panics with the
    /// last screen after `within`.
    pub async fn wait_for<T>(
        &self,
        what: &str,
        within: Duration,
        mut check: impl FnMut(&str) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + within;
        loop {
            let screen = self.screen();
            if let Some(found) = check(&screen) {
                return found;
            }
            if Instant::now() > deadline {
                panic!("waited {within:?} for {what}; the screen shows:\n{screen}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.tmux().arg("kill-server").status();
    }
}
