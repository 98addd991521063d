//! What an attacker sends to a bank's edge, each case found against `bankd demo`: inputs that
//! once panicked, malformed HTTP (over raw TCP), answers without a problem body, and ways to hold
//! the bank's memory or connections without logging in.

use crate::helpers::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::Duration;
use tokio::net::TcpStream;

/// The most any read of a raw answer waits: far above every timeout the tests configure, so a
/// bank that never answers fails the test instead of hanging it.
const READ_BOUND: Duration = Duration::from_secs(20);

/// A raw answer: status, lower-cased head, body.
struct Raw {
    status: u16,
    head: String,
    body: String,
}

impl Raw {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            (key.trim() == name).then(|| value.trim())
        })
    }

    /// The problem's code, asserting it is a problem+json answer with `X-Clock`.
    fn code(&self) -> String {
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "{}\n{}",
            self.head,
            self.body
        );
        assert!(self.header("x-clock").is_some(), "{}", self.head);
        let problem: Value = serde_json::from_str(&self.body).expect("a JSON problem");
        assert_eq!(problem["status"].as_u64(), Some(u64::from(self.status)));
        assert!(problem["detail"].as_str().is_some_and(|d| !d.is_empty()));
        problem["code"].as_str().expect("a code").to_string()
    }
}

/// Writes all of `bytes` (the tests' tokio has no `AsyncWriteExt`).
async fn write_all(stream: &TcpStream, mut bytes: &[u8]) -> std::io::Result<()> {
    while !bytes.is_empty() {
        stream.writable().await?;
        match stream.try_write(bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Reads what has come, waiting for something (0 at the end).
async fn read_some(stream: &TcpStream, buf: &mut [u8]) -> std::io::Result<usize> {
    loop {
        stream.readable().await?;
        match stream.try_read(buf) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
}

fn address(bank: &TestBank) -> String {
    bank.url.trim_start_matches("http://").to_string()
}

/// Reads one answer from `stream`: its head, then as many body bytes as `content-length` says.
async fn read_answer(stream: &mut TcpStream) -> Raw {
    let mut bytes = Vec::new();
    let mut buf = [0u8; 8192];
    let head_end = loop {
        if let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        let n = tokio::time::timeout(READ_BOUND, read_some(stream, &mut buf))
            .await
            .expect("an answer in time")
            .expect("the connection reads");
        assert!(
            n > 0,
            "closed before an answer: {:?}",
            String::from_utf8_lossy(&bytes)
        );
        bytes.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&bytes[..head_end]).to_ascii_lowercase();
    let status = head[9..12].parse().expect("a status");
    let mut raw = Raw {
        status,
        head,
        body: String::new(),
    };
    let length: usize = raw
        .header("content-length")
        .map_or(0, |l| l.parse().unwrap());
    let mut body = bytes[head_end..].to_vec();
    while body.len() < length {
        let n = tokio::time::timeout(READ_BOUND, read_some(stream, &mut buf))
            .await
            .expect("the body in time")
            .expect("the connection reads");
        assert!(n > 0, "closed inside the body");
        body.extend_from_slice(&buf[..n]);
    }
    raw.body = String::from_utf8_lossy(&body).into_owned();
    raw
}

/// Sends `request` on a new connection and reads the answer.
async fn raw(bank: &TestBank, request: &[u8]) -> Raw {
    let mut stream = TcpStream::connect(address(bank)).await.unwrap();
    write_all(&stream, request).await.unwrap();
    read_answer(&mut stream).await
}

/// Whether the bank closes `stream` (reads end) within the bound, discarding anything it sends.
async fn closed_by_bank(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 1024];
    let reading = async {
        loop {
            match read_some(stream, &mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(READ_BOUND, reading).await.is_ok()
}

#[tokio::test]
async fn an_account_number_ending_in_a_multibyte_character_is_refused_not_a_panic() {
    let bank = spawn_bank().await;
    let ana = bank.individual("Ana").await;
    let number = bank.open(&ana, "individual", "100.00").await;
    let token = Some(ana.token.as_str());
    // In paths: not found, as any number that is not one of yours; a bank of the consortium
    // (20000002) too, before anything is asked of it.
    for path in [
        format!("/api/v1/accounts/{BANK}/%C3%A9"),
        format!("/api/v1/accounts/{BANK}/10000%C3%A9"),
        format!("/api/v1/accounts/{BANK}/%C3%A9/statement"),
        "/api/v1/accounts/20000002/%C3%A9".to_string(),
        "/api/v1/accounts/20000002/1%F0%9F%92%B8/statement".to_string(),
    ] {
        let answer = bank.get(&path, token).await;
        assert_eq!(
            answer.status,
            StatusCode::NOT_FOUND,
            "{path}: {}",
            answer.body
        );
        assert_eq!(answer.code(), "account_not_found", "{path}");
    }
    for path in [
        format!("/api/v1/accounts/{BANK}/%C3%A9/deposits"),
        format!("/api/v1/accounts/{BANK}/10000%C3%A9/withdrawals"),
    ] {
        let answer = bank.post(&path, json!({"amount": "1.00"}), token).await;
        assert_eq!(
            answer.status,
            StatusCode::NOT_FOUND,
            "{path}: {}",
            answer.body
        );
        assert_eq!(answer.code(), "account_not_found", "{path}");
    }
    // In bodies: a clear 422 naming the field.
    let bad = "10000é";
    let mine = json!({"bank": BANK, "number": number});
    let theirs = json!({"bank": BANK, "number": bad});
    for (path, body) in [
        (
            "/api/v1/transfers",
            json!({"from": mine, "to": theirs, "amount": "1.00"}),
        ),
        (
            "/api/v1/transfers",
            json!({"from": theirs, "to": {"bank": BANK, "number": number}, "amount": "1.00"}),
        ),
        (
            "/api/v1/pix-keys",
            json!({"account": theirs, "type": "random"}),
        ),
        (
            "/api/v1/packages",
            json!({"operations": [{"type": "deposit", "account": theirs, "amount": "1.00"}]}),
        ),
    ] {
        let answer = bank.post(path, body.clone(), token).await;
        assert!(
            answer.status.is_client_error(),
            "{path} {body}: {}",
            answer.body
        );
        assert_eq!(answer.code(), "invalid_account_number", "{path} {body}");
    }
    // In a batch, each transfer is answered on its own or the batch is refused; never a 500.
    let batch = json!({"transfers": [
        {"id": "a", "from": mine, "to": theirs, "amount": "1.00"},
        {"id": "b", "from": theirs, "to": mine, "amount": "1.00"},
    ]});
    let answer = bank.post("/api/v1/transfers/batch", batch, token).await;
    assert!(
        answer.status.is_success() || answer.status.is_client_error(),
        "{}",
        answer.body
    );
    if answer.status.is_success() {
        for result in answer.body["results"].as_array().unwrap() {
            assert_ne!(result["status"], "committed", "{result}");
        }
    } else {
        answer.code();
    }
    // Nothing moved.
    assert_eq!(bank.balance(&ana, &number).await.0, "100.00");
    bank.audit().await;
}

#[tokio::test]
async fn an_invalid_statement_page_is_refused_here_for_an_account_at_another_bank() {
    let bank = spawn_bank().await;
    let ana = bank.individual("Ana").await;
    let token = Some(ana.token.as_str());
    // 20000002 is in the consortium but never answers: checked here, it is not asked at all.
    for (query, code) in [
        ("limit=0", "invalid_limit"),
        ("limit=abc", "invalid_limit"),
        ("limit=5%26cursor%3D1", "invalid_limit"),
        ("limit=101", "invalid_limit"),
        ("cursor=-3", "invalid_cursor"),
        ("cursor=1%26limit%3D100", "invalid_cursor"),
    ] {
        for bank_code in [BANK, "20000002"] {
            let path = format!("/api/v1/accounts/{bank_code}/100001-2/statement?{query}");
            let answer = bank.get(&path, token).await;
            assert_eq!(
                answer.status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{path}: {}",
                answer.body
            );
            assert_eq!(answer.code(), code, "{path}");
        }
    }
}

#[tokio::test]
async fn errors_below_the_handlers_are_problems_with_a_clock() {
    let bank = spawn_bank().await;
    // A Content-Length that is not a number: hyper refuses it before any handler.
    let bad_length = raw(
        &bank,
        b"POST /api/v1/customers HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n{}",
    )
    .await;
    assert_eq!(bad_length.status, 400, "{}", bad_length.head);
    assert_eq!(bad_length.code(), "malformed_request");
    let mut long = b"GET /health?".to_vec();
    long.extend(std::iter::repeat_n(b'a', 70_000));
    long.extend_from_slice(b" HTTP/1.1\r\nHost: x\r\n\r\n");
    let too_long = raw(&bank, &long).await;
    assert_eq!(too_long.status, 414, "{}", too_long.head);
    assert_eq!(too_long.code(), "uri_too_long");
    let mut big = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', node::serve::HEADER_BYTES_MAX));
    big.extend_from_slice(b"\r\n\r\n");
    let too_large = raw(&bank, &big).await;
    assert_eq!(too_large.status, 431, "{}", too_large.head);
    assert_eq!(too_large.code(), "headers_too_large");
    // A request line hyper cannot parse at all.
    let garbage = raw(&bank, b"\x01\x02 / HTTP/1.1\r\n\r\n").await;
    assert_eq!(garbage.status, 400, "{}", garbage.head);
    assert_eq!(garbage.code(), "malformed_request");
    // Unknown routes and methods, over raw TCP and through the client.
    let unknown = raw(&bank, b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(
        (unknown.status, unknown.code().as_str()),
        (404, "not_found")
    );
    for (method, path) in [
        (Method::PUT, "/api/v1/me"),
        (Method::DELETE, "/health"),
        (Method::GET, "/interbank/v1/messages"),
    ] {
        let answer = bank.send(method.clone(), path, None, None, None).await;
        assert_eq!(
            answer.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}"
        );
        assert_eq!(answer.code(), "method_not_allowed");
        assert!(answer.headers.contains_key("allow"));
    }
    // The bank still serves.
    assert_eq!(bank.get("/health", None).await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_body_shorter_than_its_content_length_is_answered_408_soon() {
    let bank = spawn_bank().await;
    let mut stream = TcpStream::connect(address(&bank)).await.unwrap();
    write_all(
        &stream,
        b"POST /api/v1/customers HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"name\":",
    )
    .await
    .unwrap();
    // Before the request's own time (10 s) runs out, which answered 503 `timeout`.
    let answer = tokio::time::timeout(node::HANDLER_TIMEOUT / 2, read_answer(&mut stream))
        .await
        .expect("answered before the request's time runs out");
    assert_eq!(answer.status, 408, "{}", answer.head);
    assert_eq!(answer.code(), "body_timeout");
    // A large batch body that keeps arriving is read in full (here: refused for its content,
    // not for its size or time).
    let ana = bank.individual("Ana").await;
    let number = bank.open(&ana, "individual", "1000.00").await;
    let transfers: Vec<Value> = (0..8_000)
        .map(|i| json!({"id": format!("t{i}"), "from": {"bank": BANK, "number": number}, "to": {"bank": BANK, "number": number}, "amount": "0.01", "description": "x".repeat(100)}))
        .collect();
    let body = serde_json::to_vec(&json!({ "transfers": transfers })).unwrap();
    assert!(body.len() > 1024 * 1024, "{}", body.len());
    let answer = bank
        .http
        .post(format!("{}/api/v1/transfers/batch", bank.url))
        .bearer_auth(&ana.token)
        .header("Idempotency-Key", "big-batch")
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_ne!(answer.status(), StatusCode::REQUEST_TIMEOUT);
    assert_ne!(answer.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(answer.status().as_u16() < 500, "{}", answer.status());
}

async fn panics() -> &'static str {
    panic!("a test panic")
}

#[tokio::test]
async fn a_panic_is_a_problem_with_a_clock() {
    // The panic a client could reach (multi-byte account numbers) is gone; a route that panics is
    // built here inside the same middleware.
    let bank = spawn_bank().await;
    let state = bank.running.as_ref().unwrap().state.clone();
    let service = node::app::router_with(state, |routes| {
        routes.route("/panics", axum::routing::get(panics))
    });
    use tower::ServiceExt;
    let request = axum::http::Request::get("/panics")
        .body(axum::body::Body::empty())
        .unwrap();
    let response = service.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    assert!(response.headers().contains_key("x-clock"));
    let body = axum::body::to_bytes(response.into_body(), 4096)
        .await
        .unwrap();
    let problem: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(problem["code"], "internal_error");
}

#[tokio::test]
async fn arbitrary_methods_make_no_series_of_their_own() {
    let bank = spawn_bank().await;
    for i in 0..5 {
        let request = format!("FOO{i} /health HTTP/1.1\r\nHost: x\r\n\r\n");
        let answer = raw(&bank, request.as_bytes()).await;
        assert_eq!(answer.status, 405);
    }
    let metrics = bank
        .http
        .get(format!("{}/metrics", bank.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!metrics.contains("FOO"), "{metrics}");
    assert!(
        metrics.contains(r#"bankd_http_requests_total{method="other",status="405"} 5"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_client_that_stalls_inside_its_request_head_is_disconnected() {
    let bank = spawn_bank_with(|config| {
        config.edge.header_read_timeout = Duration::from_millis(300);
    })
    .await;
    let mut stalled = TcpStream::connect(address(&bank)).await.unwrap();
    write_all(&stalled, b"GET /heal").await.unwrap();
    assert!(
        closed_by_bank(&mut stalled).await,
        "a half request line holds its connection"
    );
    // A connection that never sends anything is closed too.
    let mut silent = TcpStream::connect(address(&bank)).await.unwrap();
    assert!(
        closed_by_bank(&mut silent).await,
        "an idle connection stays"
    );
    // Whole requests are served as before.
    assert_eq!(bank.get("/health", None).await.status, StatusCode::OK);
}

#[tokio::test]
async fn connections_beyond_the_cap_are_refused_while_those_served_go_on() {
    let bank = spawn_bank_with(|config| {
        config.edge.connections_max = 4;
        config.edge.header_read_timeout = Duration::from_secs(2);
    })
    .await;
    let health = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
    // A client already served keeps its connection.
    let mut client = TcpStream::connect(address(&bank)).await.unwrap();
    write_all(&client, health).await.unwrap();
    assert_eq!(read_answer(&mut client).await.status, 200);
    // Idle connections take the other three places; every one beyond is answered 503 and closed.
    let mut idle = Vec::new();
    for _ in 0..3 {
        idle.push(TcpStream::connect(address(&bank)).await.unwrap());
    }
    // Let the bank accept them before the next ones.
    write_all(&client, health).await.unwrap();
    assert_eq!(read_answer(&mut client).await.status, 200);
    for _ in 0..5 {
        let mut excess = TcpStream::connect(address(&bank)).await.unwrap();
        let answer = read_answer(&mut excess).await;
        assert_eq!(answer.status, 503, "{}", answer.head);
        assert_eq!(answer.code(), "too_many_connections");
        assert!(answer.header("retry-after").is_some());
        assert!(closed_by_bank(&mut excess).await);
    }
    // The client already served still is.
    write_all(&client, health).await.unwrap();
    assert_eq!(read_answer(&mut client).await.status, 200);
    drop(client);
    // Idle connections time out, and their places serve new clients again.
    for stream in &mut idle {
        assert!(closed_by_bank(stream).await, "an idle connection stays");
    }
    let mut fresh = TcpStream::connect(address(&bank)).await.unwrap();
    write_all(&fresh, health).await.unwrap();
    assert_eq!(read_answer(&mut fresh).await.status, 200);
}

#[tokio::test]
async fn the_openapi_document_states_what_the_bank_checks() {
    let bank = spawn_bank().await;
    let answer = bank.get("/api/v1/openapi.json", None).await;
    assert_eq!(answer.status, StatusCode::OK);
    let doc = answer.body;
    let paths = &doc["paths"];
    // The statement's page is in the query (it was declared a path parameter).
    let statement = &paths["/api/v1/accounts/{bank}/{number}/statement"]["get"];
    let params = statement["parameters"].as_array().unwrap();
    let param = |name: &str| {
        params
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("no parameter {name}: {params:?}"))
    };
    assert_eq!(param("limit")["in"], "query");
    assert_eq!(param("cursor")["in"], "query");
    assert_eq!(param("limit")["schema"]["maximum"], 100);
    assert_eq!(param("bank")["in"], "path");
    assert_eq!(param("bank")["schema"]["pattern"], "^[0-9]{8}$");
    assert_eq!(param("number")["schema"]["pattern"], "^[0-9]{1,10}-?[0-9]$");
    // Every error of every operation is a problem document, and the statuses every route of a
    // kind may answer are there.
    let mut operations = 0;
    for (path, item) in paths.as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            operations += 1;
            let responses = operation["responses"].as_object().unwrap();
            for (status, response) in responses {
                if status.starts_with('4') || status.starts_with('5') {
                    let content = response["content"].as_object().unwrap();
                    assert_eq!(
                        content.keys().collect::<Vec<_>>(),
                        ["application/problem+json"],
                        "{method} {path} {status}"
                    );
                    assert_eq!(
                        content["application/problem+json"]["schema"]["$ref"],
                        "#/components/schemas/Problem"
                    );
                }
                assert!(
                    response["headers"]["X-Clock"].is_object(),
                    "{method} {path} {status}"
                );
            }
            assert!(responses.contains_key("503"), "{method} {path}");
            if operation.get("security").is_some() {
                assert!(responses.contains_key("401"), "{method} {path}");
            }
            if operation.get("requestBody").is_some() {
                for status in ["400", "408", "413", "422"] {
                    assert!(responses.contains_key(status), "{method} {path} {status}");
                }
            }
        }
    }
    assert!(operations >= 20, "{operations}");
    // Schemas carry their constraints.
    let schemas = &doc["components"]["schemas"];
    let amount = r"^[0-9]{1,12}\.[0-9]{2}$";
    assert_eq!(
        schemas["TransferRequest"]["properties"]["amount"]["pattern"],
        amount
    );
    assert_eq!(
        schemas["MoneyRequest"]["properties"]["amount"]["pattern"],
        amount
    );
    assert_eq!(
        schemas["AccountRef"]["properties"]["bank"]["pattern"],
        "^[0-9]{8}$"
    );
    assert_eq!(
        schemas["Transfer"]["properties"]["id"]["pattern"],
        "^E[0-9]{20}[0-9A-Z]{11}$"
    );
    assert_eq!(
        schemas["MoneyRequest"]["properties"]["description"]["maxLength"],
        140
    );
    assert_eq!(
        schemas["BatchRequest"]["properties"]["transfers"]["maxItems"],
        8189
    );
    assert_eq!(
        schemas["AccountKind"]["enum"],
        json!(["individual", "company", "joint"])
    );
    assert_eq!(
        schemas["OpenAccount"]["properties"]["kind"]["$ref"],
        "#/components/schemas/AccountKind"
    );
    assert_eq!(
        schemas["PaymentStatus"]["enum"],
        json!(["pending", "committed", "aborted"])
    );
}
