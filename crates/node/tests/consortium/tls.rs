//! The consortium over TLS: three `bankd` processes serving HTTPS with certificates of a CA made
//! for the test (given by `BANKD_TLS_CERT`, `BANKD_TLS_KEY`, `BANKD_TLS_CA`), calling each other
//! at https URLs and checking each other's certificates against that CA.

use crate::balance;
use crate::cluster::{Cluster, unique};
use std::io::{Read, Write};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_between_banks_commits_over_tls_and_plain_http_gets_no_answer() {
    // Every bank sees every other up: their heartbeats went over TLS.
    let cluster = Cluster::started_with(true).await;
    assert!(cluster.banks.iter().all(|b| b.url.starts_with("https://")));
    let ana = cluster.customer(0, "100.00").await;
    let bia = cluster.customer(1, "50.00").await;
    let (status, body) = cluster.pay(&ana, &bia, "12.34", &unique("tls")).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["status"], "committed", "{body}");
    assert_eq!(balance(&cluster, &ana).await.0, 87_66);
    // The payee's bank posts the credit a moment after the decision.
    let deadline = Instant::now() + Duration::from_secs(15);
    while balance(&cluster, &bia).await != (62_34, 62_34) {
        assert!(
            Instant::now() < deadline,
            "the credit never arrived at bank 1"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    cluster.settle_and_audit().await;

    // Plain HTTP to a TLS port: the handshake fails, and no HTTP answer comes back.
    let plain_url = cluster.banks[0].url.replace("https://", "http://");
    let plain = reqwest::Client::new()
        .get(format!("{plain_url}/health"))
        .send()
        .await;
    assert!(plain.is_err(), "plain HTTP was answered: {plain:?}");
    let address = plain_url.trim_start_matches("http://").to_string();
    let answer = tokio::task::spawn_blocking(move || {
        let mut socket = std::net::TcpStream::connect(address).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(15)))
            .unwrap();
        socket
            .write_all(b"GET /health HTTP/1.1\r\nhost: bank\r\n\r\n")
            .unwrap();
        let mut answer = Vec::new();
        // Closed (or reset) by the bank; a timeout would leave `answer` as read so far.
        let _ = socket.read_to_end(&mut answer);
        answer
    })
    .await
    .unwrap();
    assert!(
        !answer.windows(5).any(|w| w == b"HTTP/"),
        "an HTTP answer on a TLS port: {:?}",
        String::from_utf8_lossy(&answer)
    );
}
