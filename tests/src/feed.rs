//! A websocket client of the daemon's live feed, for tests.

use std::time::Duration;

use conjunction_protocol::ws::{ClientMessage, ServerMessage};
use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// The upgrade request for `ws_url` with an operator token.
fn request(
    ws_url: &str,
    token: &str,
) -> Result<
    tokio_tungstenite::tungstenite::handshake::client::Request,
    tokio_tungstenite::tungstenite::Error,
> {
    let mut request = ws_url.into_client_request()?;
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {token}")
            .parse()
            .expect("token is a valid header value"),
    );
    Ok(request)
}

pub struct Feed {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Feed {
    /// Connects to `ws_url` with an operator token.
    pub async fn connect(
        ws_url: &str,
        token: &str,
    ) -> Result<Self, tokio_tungstenite::tungstenite::Error> {
        let (socket, _) = tokio_tungstenite::connect_async(request(ws_url, token)?).await?;
        Ok(Self { socket })
    }

    /// Connects like [`Feed::connect`] over a socket whose receive buffer is as
    /// small as the kernel allows, so that a client that stops reading stops the
    /// daemon's sends after a little data rather than after what loopback's
    /// buffers hold (tens of megabytes on some machines).
    pub async fn connect_narrow(
        ws_url: &str,
        token: &str,
    ) -> Result<Self, tokio_tungstenite::tungstenite::Error> {
        let request = request(ws_url, token)?;
        let uri = request.uri();
        let host = uri.host().unwrap_or("127.0.0.1").to_owned();
        let port = uri.port_u16().unwrap_or(80);
        let addr = tokio::net::lookup_host((host.as_str(), port))
            .await?
            .next()
            .ok_or_else(|| std::io::Error::other(format!("{host} has no address")))?;
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.set_recv_buffer_size(4096)?;
        let stream = socket.connect(addr).await?;
        let (socket, _) =
            tokio_tungstenite::client_async(request, MaybeTlsStream::Plain(stream)).await?;
        Ok(Self { socket })
    }

    /// The next message, or a panic after `within`.
    pub async fn next(&mut self, within: Duration) -> ServerMessage {
        loop {
            let msg = tokio::time::timeout(within, self.socket.next())
                .await
                .expect("a feed message arrives in time")
                .expect("the feed is open")
                .expect("the feed message is readable");
            match msg {
                Message::Text(text) => {
                    return serde_json::from_str(&text)
                        .unwrap_or_else(|e| panic!("unreadable message {text}: {e}"))
                }
                Message::Close(frame) => panic!("the feed closed: {frame:?}"),
                _ => continue,
            }
        }
    }

    /// The next message, or `None` once the daemon has closed the connection.
    pub async fn next_or_end(&mut self, within: Duration) -> Option<ServerMessage> {
        loop {
            let msg = tokio::time::timeout(within, self.socket.next())
                .await
                .expect("a feed message or the end arrives in time");
            match msg {
                Some(Ok(Message::Text(text))) => {
                    return Some(
                        serde_json::from_str(&text)
                            .unwrap_or_else(|e| panic!("unreadable message {text}: {e}")),
                    )
                }
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return None,
                Some(Ok(_)) => continue,
            }
        }
    }

    pub async fn send(&mut self, message: &ClientMessage) {
        let text = serde_json::to_string(message).expect("client messages serialize");
        self.socket
            .send(Message::Text(text.into()))
            .await
            .expect("send to the feed");
    }

    pub async fn send_text(&mut self, text: &str) {
        self.socket
            .send(Message::Text(text.to_owned().into()))
            .await
            .expect("send to the feed");
    }

    /// Sends `text`, saying whether the send went through.
    pub async fn try_send_text(&mut self, text: String) -> bool {
        self.socket.send(Message::Text(text.into())).await.is_ok()
    }

    /// Reads until the daemon closes the connection: the code of its close frame, or
    /// `None` when it ended without one.
    pub async fn close_code(&mut self, within: Duration) -> Option<u16> {
        loop {
            let msg = tokio::time::timeout(within, self.socket.next())
                .await
                .expect("the feed closes in time");
            match msg {
                Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return None,
            }
        }
    }

    pub async fn close(mut self) {
        let _ = self.socket.close(None).await;
    }
}
