//! [`Lane`]: one kept-alive HTTP/1.1 connection to a bank, for a caller that sends many `POST`s
//! one after another (each of `bank bench`'s clients). [`Client`] builds every request through
//! reqwest's pool, URL, redirect and retry layers and keeps the whole answer; a lane makes its
//! headers once, writes each request straight onto its own connection under a key of its own
//! sequence, and reads the answer into the typed value only. Measured per request, that is about
//! half the load generator's work (see BENCHMARKS.md), which on a two-core machine is taken from
//! the bank being measured. An `https` bank's lane speaks TLS (tokio-rustls under hyper), with
//! its client's [`crate::Trust`].

use crate::{Client, ClientError, REQUEST_TIMEOUT_DEFAULT, chain, error_from_answer};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST, HeaderValue};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// One connection to one bank, opened on first use and again after it fails.
pub struct Lane {
    /// `host:port`, to connect to.
    address: String,
    /// For an `https` bank: the name its certificate must carry, and what checks it.
    tls: Option<(
        rustls::pki_types::ServerName<'static>,
        tokio_rustls::TlsConnector,
    )>,
    host: HeaderValue,
    /// The API's path under the base URL, with its trailing slash (`/api/v1/`).
    prefix: String,
    bearer: Option<HeaderValue>,
    base_url: String,
    sender: Option<SendRequest<Full<Bytes>>>,
    keys: Keys,
}

/// A lane's `Idempotency-Key`s: v7 UUIDs (the time first, as [`crate::new_idempotency_key`]'s)
/// whose other 74 bits are the lane's own random nonce and a count of its keys, so a key costs
/// no system call. [`crate::new_idempotency_key`] asks the kernel for fresh random bits each
/// time, which was about one `getrandom` per request of `bank bench` (see BENCHMARKS.md).
struct Keys {
    nonce: [u8; 6],
    made: u32,
}

impl Keys {
    fn new() -> Keys {
        let mut nonce = [0; 6];
        nonce.copy_from_slice(&uuid::Uuid::new_v4().as_bytes()[..6]);
        Keys { nonce, made: 0 }
    }

    /// A key no other call of this lane has had: the count makes keys of the same millisecond
    /// differ, and the nonce keys of different lanes.
    fn next(&mut self) -> String {
        self.made = self.made.wrapping_add(1);
        let mut rest = [0; 10];
        rest[..6].copy_from_slice(&self.nonce);
        rest[6..].copy_from_slice(&self.made.to_be_bytes());
        let millis = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_millis() as u64);
        uuid::Builder::from_unix_timestamp_millis(millis, &rest)
            .into_uuid()
            .to_string()
    }
}

impl Lane {
    /// A lane to `client`'s bank, with its bearer token; over TLS for an `https` bank, trusting
    /// what `client` trusts.
    pub fn new(client: &Client) -> Result<Lane, ClientError> {
        let invalid = |reason: &str| ClientError::InvalidUrl {
            url: client.base_url(),
            reason: reason.to_string(),
        };
        let host = client.base.host_str().ok_or_else(|| invalid("no host"))?;
        let tls = match client.base.scheme() {
            "http" => None,
            "https" => {
                // `host_str` keeps an IPv6 address's brackets, which a server name has not.
                let name = host.trim_start_matches('[').trim_end_matches(']');
                let name = rustls::pki_types::ServerName::try_from(name.to_string())
                    .map_err(|_| invalid("the host is not a name TLS can check"))?;
                let connector = tokio_rustls::TlsConnector::from(client.trust.tls.clone());
                Some((name, connector))
            }
            _ => return Err(invalid("a lane speaks http or https only")),
        };
        let port = client.base.port_or_known_default().unwrap_or(80);
        let address = format!("{host}:{port}");
        let bearer = match &client.token {
            Some(token) => Some(
                HeaderValue::try_from(format!("Bearer {token}"))
                    .map_err(|_| invalid("the token is not a header value"))?,
            ),
            None => None,
        };
        Ok(Lane {
            host: HeaderValue::try_from(address.as_str()).map_err(|_| invalid("bad host"))?,
            address,
            tls,
            prefix: format!("{}/", client.api(&[]).path()),
            bearer,
            base_url: client.base_url(),
            sender: None,
            keys: Keys::new(),
        })
    }

    /// `POST /api/v1/{path}` with `body` and a fresh `Idempotency-Key`; the answer as `T`, or
    /// the same errors as [`Client`]'s. `path` is used as it is (no percent-encoding).
    pub async fn post<T: DeserializeOwned>(
        &mut self,
        path: &str,
        body: &impl Serialize,
    ) -> Result<T, ClientError> {
        let body = serde_json::to_vec(body).expect("wire types always serialise");
        let mut request = hyper::Request::post(format!("{}{path}", self.prefix))
            .header(HOST, self.host.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .header("idempotency-key", self.keys.next());
        if let Some(bearer) = &self.bearer {
            request = request.header(AUTHORIZATION, bearer.clone());
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .expect("the parts are valid");
        let answer =
            match tokio::time::timeout(REQUEST_TIMEOUT_DEFAULT, self.exchange(request)).await {
                Ok(answer) => answer,
                Err(_) => Err("no answer in time".to_string()),
            };
        let (parts, bytes) = answer.map_err(|reason| {
            // The connection may be in any state: the next call opens a new one.
            self.sender = None;
            ClientError::Unavailable {
                url: self.base_url.clone(),
                reason,
            }
        })?;
        let status = parts.status.as_u16();
        let clock = crate::header(&parts.headers, "x-clock");
        if !parts.status.is_success() {
            return Err(error_from_answer(status, &parts.headers, &bytes, clock));
        }
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Unexpected {
            status,
            body: format!("{e}: {}", crate::snippet(&bytes)),
            clock,
        })
    }

    async fn exchange(
        &mut self,
        request: hyper::Request<Full<Bytes>>,
    ) -> Result<(hyper::http::response::Parts, Bytes), String> {
        let sender = match &mut self.sender {
            Some(sender) => sender,
            None => self.sender.insert(self.connect().await?),
        };
        sender.ready().await.map_err(|e| chain(&e))?;
        let response = sender.send_request(request).await.map_err(|e| chain(&e))?;
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await.map_err(|e| chain(&e))?.to_bytes();
        Ok((parts, bytes))
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, String> {
        let stream = tokio::net::TcpStream::connect(&self.address)
            .await
            .map_err(|e| format!("cannot connect to {}: {e}", self.address))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let Some((name, connector)) = &self.tls else {
            return handshake(stream).await;
        };
        let stream = connector
            .connect(name.clone(), stream)
            .await
            .map_err(|e| format!("TLS with {}: {}", self.address, chain(&e)))?;
        handshake(stream).await
    }
}

/// HTTP/1.1 over `stream` (a socket, or TLS over one).
async fn handshake<I>(stream: I) -> Result<SendRequest<Full<Bytes>>, String>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| chain(&e))?;
    // The connection's own task; it ends when the sender is dropped or the bank hangs up.
    tokio::spawn(connection);
    Ok(sender)
}

#[cfg(test)]
mod tests {
    use super::Keys;

    /// Every key is a v7 UUID, the keys of one lane all differ and rise with time, and two lanes
    /// do not share keys.
    #[test]
    fn a_lane_never_repeats_a_key() {
        let mut one = Keys::new();
        let mut other = Keys::new();
        let keys: Vec<String> = (0..1_000).map(|_| one.next()).collect();
        for key in &keys {
            let parsed = uuid::Uuid::parse_str(key).unwrap();
            assert_eq!(parsed.get_version_num(), 7, "{key}");
        }
        let distinct: std::collections::HashSet<&String> = keys.iter().collect();
        assert_eq!(distinct.len(), keys.len());
        let millis = |key: &str| {
            let (seconds, nanos) = uuid::Uuid::parse_str(key)
                .unwrap()
                .get_timestamp()
                .unwrap()
                .to_unix();
            seconds * 1_000 + u64::from(nanos) / 1_000_000
        };
        assert!(keys.windows(2).all(|w| millis(&w[0]) <= millis(&w[1])));
        assert_ne!(one.nonce, other.nonce);
        assert!(!distinct.contains(&other.next()));
    }
}
