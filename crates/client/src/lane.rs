//! [`Lane`]: one kept-alive HTTP/1.1 connection to a bank, for a caller that sends many `POST`s
//! one after another (each of `bank bench`'s clients). [`Client`] builds every request through
//! reqwest's pool, URL, redirect and retry layers and keeps the whole answer; a lane makes its
//! headers once, writes each request straight onto its own connection and reads the answer into
//! the typed value only. Measured per request, that is about half the load generator's work (see
//! BENCHMARKS.md), which on a two-core machine is taken from the bank being measured.

use crate::{
    Client, ClientError, REQUEST_TIMEOUT_DEFAULT, chain, error_from_answer, new_idempotency_key,
};
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
    host: HeaderValue,
    /// The API's path under the base URL, with its trailing slash (`/api/v1/`).
    prefix: String,
    bearer: Option<HeaderValue>,
    base_url: String,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Lane {
    /// A lane to `client`'s bank, with its bearer token. Only `http` URLs: the lane does not
    /// speak TLS.
    pub fn new(client: &Client) -> Result<Lane, ClientError> {
        let invalid = |reason: &str| ClientError::InvalidUrl {
            url: client.base_url(),
            reason: reason.to_string(),
        };
        if client.base.scheme() != "http" {
            return Err(invalid("a lane speaks plain http only"));
        }
        let host = client.base.host_str().ok_or_else(|| invalid("no host"))?;
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
            prefix: format!("{}/", client.api(&[]).path()),
            bearer,
            base_url: client.base_url(),
            sender: None,
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
            .header("idempotency-key", new_idempotency_key());
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
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| chain(&e))?;
        // The connection's own task; it ends when the sender is dropped or the bank hangs up.
        tokio::spawn(connection);
        Ok(sender)
    }
}
