//! A consortium of real `bankd` processes on 127.0.0.1, each with its own data directory, key
//! and port, and the consortium-wide audit of DESIGN §3 invariants 1–4.

use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub const OPERATOR_TOKEN: &str = "operator-token-for-consortium-tests";
pub const PASSWORD: &str = "correct-horse-9";
/// Tries of one registration that meets no directory majority (503), 500 ms apart.
const REGISTER_ATTEMPTS_MAX: u32 = 20;
/// The banks' codes: a cluster of `n` banks uses the first `n` (three unless a test asks for more).
pub const CODES: [&str; 5] = ["10000001", "20000002", "30000003", "40000004", "50000005"];

pub struct Bank {
    pub code: String,
    pub url: String,
    port: u16,
    data_dir: PathBuf,
    key_file: PathBuf,
    /// The consortium file it reads: the shared one, or with [`Shape::proxied`] its own, which
    /// lists every other bank at the proxy that carries this bank's traffic to it.
    consortium: PathBuf,
    /// Its certificate and key, when the consortium runs over TLS.
    tls: Option<(PathBuf, PathBuf)>,
    process: Mutex<Option<Child>>,
    /// With [`Cluster::on_postgres`]: its ledger's database, and a second process of the bank.
    postgres: Option<OnPostgres>,
}

/// A bank on PostgreSQL served by two processes sharing its database and directory file: the
/// one [`Cluster::start`] starts (at [`Bank::url`] until [`Cluster::use_second`]), and a second
/// one, listed in the consortium file as the bank's other address.
struct OnPostgres {
    database: String,
    url: String,
    port: u16,
    data_dir: PathBuf,
    process: Mutex<Option<Child>>,
}

pub struct Cluster {
    pub banks: Vec<Bank>,
    /// With [`Shape::proxied`], one proxy for each ordered pair of banks (see [`Cluster::partition`]).
    proxies: Vec<Proxy>,
    /// The consortium's CA certificate, when it runs over TLS.
    pub ca: Option<PathBuf>,
    pub http: reqwest::Client,
    _dir: tempfile::TempDir,
}

/// Where the banks' ports are taken from: below the range the kernel gives outgoing
/// connections (32768 and up by default), so that no client socket of a test running beside
/// this one can take a bank's port between choosing it and `bankd` binding it.
const PORTS: std::ops::Range<u64> = 20_000..32_000;
static NEXT_PORT: AtomicU64 = AtomicU64::new(0);

/// Free ports, all held until every one is chosen so none repeats. Each test process starts at
/// its own place in [`PORTS`], and a process never hands the same port out twice in a row.
fn free_ports(n: usize) -> Vec<u16> {
    let span = PORTS.end - PORTS.start;
    let offset = u64::from(std::process::id()) * 97 % span;
    let mut held = Vec::new();
    while held.len() < n {
        let next = NEXT_PORT.fetch_add(1, Ordering::Relaxed);
        assert!(next < span, "no free port left in {PORTS:?}");
        let port = PORTS.start + (offset + next) % span;
        if let Ok(listener) = std::net::TcpListener::bind(("127.0.0.1", port as u16)) {
            held.push(listener);
        }
    }
    held.iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

/// How many banks a cluster has and how they reach each other.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub banks: usize,
    /// Each serves HTTPS with a certificate of a CA made for the consortium, which the banks and
    /// [`Cluster::http`] trust.
    pub tls: bool,
    /// Each bank reaches each other one through a fault-injecting TCP proxy of the test
    /// ([`Cluster::partition`]); the test itself still talks to every bank directly.
    pub proxied: bool,
}

impl Shape {
    pub const THREE: Shape = Shape {
        banks: 3,
        tls: false,
        proxied: false,
    };
}

impl Cluster {
    /// Banks of this shape, configured but not started.
    pub fn configured_as(shape: Shape) -> Cluster {
        assert!(
            (1..=CODES.len()).contains(&shape.banks),
            "at most {} banks",
            CODES.len()
        );
        node::tls::install_provider();
        let dir = tempfile::tempdir().unwrap();
        let codes = &CODES[..shape.banks];
        let ports = free_ports(codes.len());
        let mut banks = Vec::new();
        let mut listed = String::new();
        let ca = shape
            .tls
            .then(|| node::tls::make_ca("Consortium test CA").unwrap());
        let ca_file = dir.path().join("ca.pem");
        if let Some(ca) = &ca {
            std::fs::write(&ca_file, &ca.cert_pem).unwrap();
        }
        let mut public_keys = Vec::new();
        for (code, port) in codes.iter().zip(ports) {
            let key = node::config::generate_key();
            let key_file = dir.path().join(format!("{code}.key"));
            node::config::write_key(&key_file, &key).unwrap();
            let scheme = if shape.tls { "https" } else { "http" };
            let url = format!("{scheme}://127.0.0.1:{port}");
            let tls = ca.as_ref().map(|ca| {
                let issued =
                    node::tls::make_bank_cert("Consortium test CA", &ca.key_pem, code).unwrap();
                let cert = dir.path().join(format!("{code}.crt"));
                let key = dir.path().join(format!("{code}.tls.key"));
                std::fs::write(&cert, &issued.cert_pem).unwrap();
                std::fs::write(&key, &issued.key_pem).unwrap();
                (cert, key)
            });
            listed.push_str(&listing(code, &url, &node::config::public_key_hex(&key)));
            public_keys.push(node::config::public_key_hex(&key));
            banks.push(Bank {
                code: code.to_string(),
                url,
                port,
                data_dir: dir.path().join(code),
                key_file,
                consortium: dir.path().join("consortium.toml"),
                tls,
                process: Mutex::new(None),
                postgres: None,
            });
        }
        let consortium = dir.path().join("consortium.toml");
        std::fs::write(&consortium, listed).unwrap();
        let mut proxies = Vec::new();
        if shape.proxied {
            for from in 0..banks.len() {
                let mut listed = String::new();
                for to in 0..banks.len() {
                    let url = if from == to {
                        banks[to].url.clone()
                    } else {
                        let proxy = Proxy::start(from, to, banks[to].port);
                        let scheme = if shape.tls { "https" } else { "http" };
                        let url = format!("{scheme}://127.0.0.1:{}", proxy.port);
                        proxies.push(proxy);
                        url
                    };
                    listed.push_str(&listing(&banks[to].code, &url, &public_keys[to]));
                }
                let own = dir
                    .path()
                    .join(format!("consortium-{}.toml", banks[from].code));
                std::fs::write(&own, listed).unwrap();
                banks[from].consortium = own;
            }
        }
        // CLUSTER_KEEP=1 leaves the banks' data behind for a post-mortem.
        if std::env::var_os("CLUSTER_KEEP").is_some() {
            eprintln!("cluster data in {}", dir.path().display());
        }
        let mut http = reqwest::Client::builder();
        if ca.is_some() {
            let pem = std::fs::read(&ca_file).unwrap();
            http = http.tls_certs_only(reqwest::Certificate::from_pem_bundle(&pem).unwrap());
        }
        Cluster {
            banks,
            proxies,
            ca: ca.map(|_| ca_file),
            http: http.build().unwrap(),
            _dir: dir,
        }
    }

    /// Starts every bank and waits until each sees every other as up.
    pub async fn started() -> Cluster {
        Cluster::started_with(false).await
    }

    /// As [`Cluster::started`], over TLS with `tls` ([`Cluster::configured_as`]).
    pub async fn started_with(tls: bool) -> Cluster {
        Cluster::started_as(Shape {
            tls,
            ..Shape::THREE
        })
        .await
    }

    /// Banks of this shape, started as [`Cluster::started`] starts three.
    pub async fn started_as(shape: Shape) -> Cluster {
        let cluster = Cluster::configured_as(shape);
        for i in 0..cluster.banks.len() {
            cluster.start(i, None);
        }
        cluster.wait_all_up().await;
        cluster.wait_directory_leader().await;
        cluster
    }

    /// Waits until every running bank follows the same leader of the directory (at most 15 s):
    /// until then a registration may find no majority yet.
    pub async fn wait_directory_leader(&self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let mut leaders = Vec::new();
            for bank in &self.banks {
                let view: Option<Value> = match self
                    .http
                    .get(format!("{}/api/v1/consortium", bank.url))
                    .send()
                    .await
                {
                    Ok(response) => response.json().await.ok(),
                    Err(_) => continue,
                };
                leaders
                    .push(view.and_then(|v| v["directory"]["leader"].as_str().map(str::to_string)));
            }
            if leaders.first().is_some_and(Option::is_some)
                && leaders.windows(2).all(|w| w[0] == w[1])
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the directory has no leader all banks follow: {leaders:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The bank each running bank's directory follows, by index (`None` where a bank does not
    /// answer or knows no leader).
    pub async fn leaders(&self) -> Vec<Option<usize>> {
        let mut leaders = Vec::new();
        for i in 0..self.banks.len() {
            let (_, view) = self
                .call(
                    i,
                    reqwest::Method::GET,
                    "/api/v1/consortium",
                    None,
                    None,
                    None,
                )
                .await;
            leaders.push(
                view["directory"]["leader"]
                    .as_str()
                    .and_then(|code| self.banks.iter().position(|b| b.code == code)),
            );
        }
        leaders
    }

    /// Cuts bank `i` off from every other bank: each proxy to or from it refuses or silently
    /// loses what it carries ([`Link`]), until [`Cluster::heal`]. Needs [`Shape::proxied`].
    pub fn partition(&self, i: usize, how: Link) {
        assert_ne!(
            how,
            Link::Open,
            "a partition refuses or loses what it carries"
        );
        self.set_links(i, how);
    }

    pub fn heal(&self, i: usize) {
        self.set_links(i, Link::Open);
    }

    fn set_links(&self, i: usize, link: Link) {
        assert!(!self.proxies.is_empty(), "the cluster has no proxies");
        for proxy in self.proxies.iter().filter(|p| p.from == i || p.to == i) {
            proxy.link.send_replace(link);
        }
    }

    pub fn key_file(&self, i: usize) -> &PathBuf {
        &self.banks[i].key_file
    }

    /// Starts bank `i`; `fault` is a `BANKD_FAULT` kill point.
    pub fn start(&self, i: usize, fault: Option<&str>) {
        self.start_listed(i, fault, &self.banks[i].consortium);
    }

    /// Starts bank `i` with a consortium file that lists it alone, as a bank was before it
    /// joined the others (its directory a group of one).
    pub fn start_alone(&self, i: usize) {
        let listed = std::fs::read_to_string(&self.banks[i].consortium).unwrap();
        let own = listed
            .split("[[bank]]")
            .find(|entry| entry.contains(&format!("code = \"{}\"", self.banks[i].code)))
            .unwrap();
        let alone = self.banks[i]
            .consortium
            .with_file_name(format!("alone-{i}.toml"));
        std::fs::write(&alone, format!("[[bank]]{own}")).unwrap();
        self.start_listed(i, None, &alone);
    }

    /// Bank `i`'s data folder.
    pub fn data_dir(&self, i: usize) -> &PathBuf {
        &self.banks[i].data_dir
    }

    /// Waits (at most 30 s) until no bank's copy of the directory holds an interbank decision,
    /// and answers what each holds then.
    pub async fn wait_decisions_forgotten(&self) -> Vec<i64> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut held = self.decisions_held();
        while held.iter().any(|n| *n > 0) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(250)).await;
            held = self.decisions_held();
        }
        held
    }

    /// The interbank decisions each bank's copy of the directory holds (read from its file).
    pub fn decisions_held(&self) -> Vec<i64> {
        self.banks
            .iter()
            .map(|bank| {
                let conn = rusqlite::Connection::open_with_flags(
                    bank.data_dir.join("directory.db"),
                    rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
                )
                .expect("open the directory's file");
                conn.query_row("SELECT count(*) FROM decisions", [], |row| row.get(0))
                    .expect("count decisions")
            })
            .collect()
    }

    fn start_listed(&self, i: usize, fault: Option<&str>, consortium: &PathBuf) {
        let bank = &self.banks[i];
        let mut process = bank.process.lock().unwrap();
        assert!(process.is_none(), "bank {} is running", bank.code);
        *process = Some(self.spawn(bank, bank.port, &bank.data_dir, fault, consortium));
    }

    /// Starts a `bankd` of `bank` on `port` with its data in `data_dir`, and waits until it
    /// serves.
    fn spawn(
        &self,
        bank: &Bank,
        port: u16,
        data_dir: &PathBuf,
        fault: Option<&str>,
        consortium: &PathBuf,
    ) -> Child {
        let mut command = Command::new(env!("CARGO_BIN_EXE_bankd"));
        command
            .arg("serve")
            .env("BANKD_CODE", &bank.code)
            .env("BANKD_NAME", format!("Banco {}", bank.code))
            .env("BANKD_LISTEN", format!("127.0.0.1:{port}"))
            .env("BANKD_DATA_DIR", data_dir)
            .env("BANKD_OPERATOR_TOKEN", OPERATOR_TOKEN)
            .env("BANKD_CONSORTIUM", consortium)
            .env("BANKD_KEY_FILE", &bank.key_file)
            // CLUSTER_LOG=… (a RUST_LOG filter) shows more of what the banks do.
            .env(
                "RUST_LOG",
                std::env::var("CLUSTER_LOG").unwrap_or_else(|_| "warn,openraft=off".to_owned()),
            )
            .env_remove("BANKD_FAULT")
            .stdout(Stdio::piped());
        if let Some(postgres) = &bank.postgres {
            command
                .env("BANKD_DATABASE_URL", &postgres.database)
                .env("BANKD_DIRECTORY_FILE", bank.data_dir.join("directory.db"));
        }
        if let (Some((cert, key)), Some(ca)) = (&bank.tls, &self.ca) {
            command
                .env("BANKD_TLS_CERT", cert)
                .env("BANKD_TLS_KEY", key)
                .env("BANKD_TLS_CA", ca);
        }
        if let Some(fault) = fault {
            command.env("BANKD_FAULT", fault);
        }
        let mut child = command.spawn().expect("bankd starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(
            line.contains("serving on"),
            "bankd {} said {line:?}",
            bank.code
        );
        child
    }

    /// Puts bank `i`'s ledger in the PostgreSQL `database`, to be served by two processes
    /// ([`OnPostgres`]); before it starts. Not with [`Shape::proxied`].
    pub fn on_postgres(&mut self, i: usize, database: &str) {
        assert!(self.proxies.is_empty(), "not with proxies");
        let port = free_ports(1)[0];
        let bank = &self.banks[i];
        let scheme = if self.ca.is_some() { "https" } else { "http" };
        let url = format!("{scheme}://127.0.0.1:{port}");
        let listed = std::fs::read_to_string(&bank.consortium).unwrap();
        let entry = format!("url = \"{}\"\n", bank.url);
        assert!(listed.contains(&entry));
        let more = format!("{entry}more_urls = [\"{url}\"]\n");
        std::fs::write(&bank.consortium, listed.replace(&entry, &more)).unwrap();
        let data_dir = bank
            .data_dir
            .with_file_name(format!("{}-second", bank.code));
        self.banks[i].postgres = Some(OnPostgres {
            database: database.to_owned(),
            url,
            port,
            data_dir,
            process: Mutex::new(None),
        });
    }

    /// Starts the second process of bank `i` ([`Cluster::on_postgres`]).
    pub fn start_second(&self, i: usize) {
        let bank = &self.banks[i];
        let postgres = bank.postgres.as_ref().expect("a bank on PostgreSQL");
        let child = self.spawn(
            bank,
            postgres.port,
            &postgres.data_dir,
            None,
            &bank.consortium,
        );
        *postgres.process.lock().unwrap() = Some(child);
    }

    /// From now on, the test reaches bank `i` at its second process; answers the first's URL.
    pub fn use_second(&mut self, i: usize) -> String {
        let second = self.banks[i]
            .postgres
            .as_ref()
            .expect("a bank on PostgreSQL")
            .url
            .clone();
        std::mem::replace(&mut self.banks[i].url, second)
    }

    /// `kill -9` (the first process of a bank on PostgreSQL).
    pub fn kill(&self, i: usize) {
        if let Some(mut child) = self.banks[i].process.lock().unwrap().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Waits for bank `i` to stop by itself (a fault point), at most `limit`.
    pub fn wait_stopped(&self, i: usize, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            let mut process = self.banks[i].process.lock().unwrap();
            if let Some(child) = process.as_mut()
                && child.try_wait().unwrap().is_some()
            {
                *process = None;
                return true;
            }
            drop(process);
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// Bank `viewer`'s view of bank `other`: up, suspect or down.
    pub async fn status(&self, viewer: usize, other: usize) -> Option<String> {
        let view: Value = self
            .http
            .get(format!("{}/api/v1/consortium", self.banks[viewer].url))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        view["banks"]
            .as_array()?
            .iter()
            .find(|b| b["code"] == self.banks[other].code.as_str())
            .and_then(|b| b["status"].as_str().map(str::to_string))
    }

    /// Waits until `viewer` sees `other` as `status` (at most 15 s).
    pub async fn wait_status(&self, viewer: usize, other: usize, status: &str) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if self.status(viewer, other).await.as_deref() == Some(status) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "bank {viewer} never saw bank {other} {status}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn wait_all_up(&self) {
        for viewer in 0..self.banks.len() {
            for other in 0..self.banks.len() {
                if viewer != other {
                    self.wait_status(viewer, other, "up").await;
                }
            }
        }
    }

    pub async fn call(
        &self,
        i: usize,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        token: Option<&str>,
        key: Option<&str>,
    ) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.banks[i].url));
        if let Some(body) = body {
            request = request.json(&body);
        }
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                (status, response.json().await.unwrap_or(Value::Null))
            }
            Err(error) => (0, json!({ "error": error.to_string() })),
        }
    }

    /// A POST at `who`'s own bank, logged in as them.
    pub async fn post_as(
        &self,
        who: &Customer,
        path: &str,
        body: Value,
        key: Option<&str>,
    ) -> (u16, Value) {
        self.call(
            who.bank,
            reqwest::Method::POST,
            path,
            Some(body),
            Some(&who.token),
            key,
        )
        .await
    }

    /// A customer of bank `i` with an individual account opened with `opening`.
    pub async fn customer(&self, i: usize, opening: &str) -> Customer {
        self.register(i, &unique("c"), &cpf(), opening).await
    }

    /// The same person as `customer` (registered once, in the consortium's directory), logged
    /// in at bank `i` with an account opened there too.
    pub async fn also_at(&self, i: usize, customer: &Customer, opening: &str) -> Customer {
        self.open_at(i, &customer.username, &customer.document, opening)
            .await
    }

    async fn register(&self, i: usize, username: &str, document: &str, opening: &str) -> Customer {
        let request = json!({"name": format!("Cliente {username}"), "document": document, "username": username, "password": PASSWORD});
        // A registration needs the directory's majority: right after a start, or on a machine
        // busy with many banks, an election may be under way (503 `directory_unavailable`). The
        // same request again is safe: a bank completes its own earlier try.
        let mut attempts = 0;
        let (status, body) = loop {
            attempts += 1;
            let (status, body) = self
                .call(
                    i,
                    reqwest::Method::POST,
                    "/api/v1/customers",
                    Some(request.clone()),
                    None,
                    None,
                )
                .await;
            if status != 503 || attempts == REGISTER_ATTEMPTS_MAX {
                break (status, body);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        assert_eq!(status, 201, "{body}");
        self.open_at(i, username, document, opening).await
    }

    /// Logs in at bank `i`.
    pub async fn login(&self, i: usize, username: &str) -> (u16, Value) {
        self.call(
            i,
            reqwest::Method::POST,
            "/api/v1/sessions",
            Some(json!({"username": username, "password": PASSWORD})),
            None,
            None,
        )
        .await
    }

    async fn open_at(&self, i: usize, username: &str, document: &str, opening: &str) -> Customer {
        let (status, session) = self.login(i, username).await;
        assert_eq!(status, 201, "{session}");
        let token = session["token"].as_str().expect("a token").to_string();
        let (status, account) = self
            .call(
                i,
                reqwest::Method::POST,
                "/api/v1/accounts",
                Some(json!({"kind": "individual", "opening_deposit": opening})),
                Some(&token),
                None,
            )
            .await;
        assert_eq!(status, 201, "{account}");
        Customer {
            bank: i,
            token,
            number: account["number"].as_str().unwrap().to_string(),
            username: username.to_string(),
            document: document.to_string(),
        }
    }

    /// Pays from `from` to `to`'s account (at any bank).
    pub async fn pay(
        &self,
        from: &Customer,
        to: &Customer,
        amount: &str,
        key: &str,
    ) -> (u16, Value) {
        let body = json!({
            "from": {"bank": CODES[from.bank], "number": from.number},
            "to": {"bank": CODES[to.bank], "number": to.number},
            "amount": amount,
        });
        self.call(
            from.bank,
            reqwest::Method::POST,
            "/api/v1/transfers",
            Some(body),
            Some(&from.token),
            Some(key),
        )
        .await
    }

    /// Submits a package of `operations` at `who`'s own bank, logged in as them.
    pub async fn package(&self, who: &Customer, operations: Value, key: &str) -> (u16, Value) {
        self.post_as(
            who,
            "/api/v1/packages",
            json!({ "operations": operations }),
            Some(key),
        )
        .await
    }

    /// Every statement entry of the customer's account.
    pub async fn statement(&self, customer: &Customer) -> Vec<Value> {
        let mut entries = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..1000 {
            let mut path = format!(
                "/api/v1/accounts/{}/{}/statement?limit=100",
                CODES[customer.bank], customer.number
            );
            if let Some(cursor) = &cursor {
                path.push_str(&format!("&cursor={cursor}"));
            }
            let (status, page) = self
                .call(
                    customer.bank,
                    reqwest::Method::GET,
                    &path,
                    None,
                    Some(&customer.token),
                    None,
                )
                .await;
            assert_eq!(status, 200, "{page}");
            entries.extend(page["entries"].as_array().unwrap().iter().cloned());
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_string()),
                None => return entries,
            }
        }
        panic!("a statement without end");
    }

    pub async fn audits(&self) -> Vec<Value> {
        let mut audits = Vec::new();
        for bank in &self.banks {
            let audit: Value = self
                .http
                .get(format!("{}/api/v1/audit", bank.url))
                .bearer_auth(OPERATOR_TOKEN)
                .send()
                .await
                .expect("the audit answers")
                .json()
                .await
                .unwrap();
            audits.push(audit);
        }
        audits
    }

    /// Waits until no bank holds anything pending (every transaction finished), at most 30 s,
    /// then checks DESIGN §3 invariants 1–4 across the consortium.
    pub async fn settle_and_audit(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let audits = self.audits().await;
            let pending = audits
                .iter()
                .any(|a| a["totals"]["debits_pending"] != "0.00");
            if !pending {
                let violations = violations(&audits);
                assert!(
                    violations.is_empty(),
                    "consortium audit failed:\n{}",
                    violations.join("\n")
                );
                return;
            }
            assert!(
                Instant::now() < deadline,
                "holds still pending after 30 s: {audits:#?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// A bank's `[[bank]]` entry in a consortium file.
fn listing(code: &str, url: &str, public_key: &str) -> String {
    format!(
        "[[bank]]\ncode = \"{code}\"\nname = \"Banco {code}\"\nurl = \"{url}\"\npublic_key = \"{public_key}\"\n\n"
    )
}

/// What a [`Proxy`] does with the connections it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// Relays both ways.
    Open,
    /// Closes every connection, open or new, at once: the other side is told at once.
    Refused,
    /// Keeps every connection open but carries nothing more either way, as when packets are
    /// lost: the other side hears nothing and must time out.
    Silent,
}

/// A TCP proxy on 127.0.0.1 that carries bank `from`'s connections to bank `to` (its interbank
/// messages and the directory's Raft traffic), and can cut them as a network partition would
/// ([`Link`]).
struct Proxy {
    from: usize,
    to: usize,
    port: u16,
    link: tokio::sync::watch::Sender<Link>,
}

impl Proxy {
    /// Listens on a port of its own and relays to `target`; runs on the test's runtime.
    fn start(from: usize, to: usize, target: u16) -> Proxy {
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
        let (link, watching) = tokio::sync::watch::channel(Link::Open);
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let mut watching = watching.clone();
                tokio::spawn(async move {
                    let open = *watching.borrow() == Link::Open;
                    if open
                        && let Ok(mut outbound) =
                            tokio::net::TcpStream::connect(("127.0.0.1", target)).await
                    {
                        let _ = outbound.set_nodelay(true);
                        let _ = inbound.set_nodelay(true);
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => return,
                            _ = watching.wait_for(|link| *link != Link::Open) => {}
                        }
                    }
                    // Silent: the connection stays open, carrying nothing, until the link is
                    // open again (then it is closed, like one that timed out).
                    let _ = watching.wait_for(|link| *link != Link::Silent).await;
                });
            }
        });
        Proxy {
            from,
            to,
            port,
            link,
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.banks.len() {
            self.kill(i);
            let second = self.banks[i].postgres.as_ref();
            if let Some(mut child) = second.and_then(|second| second.process.lock().unwrap().take())
            {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        if std::env::var_os("CLUSTER_KEEP").is_some() {
            let dir = std::mem::replace(&mut self._dir, tempfile::tempdir().unwrap());
            let _ = dir.keep();
        }
    }
}

pub struct Customer {
    pub bank: usize,
    pub token: String,
    pub number: String,
    pub username: String,
    pub document: String,
}

/// Signed centavos of a decimal string such as "-12.30".
pub fn cents(text: &str) -> i64 {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, fraction) = digits.split_once('.').expect("two decimals");
    let value = whole.parse::<i64>().unwrap() * 100 + fraction.parse::<i64>().unwrap();
    if negative { -value } else { value }
}

/// DESIGN §3 invariants 1–4 over every bank's audit; one line per violation.
pub fn violations(audits: &[Value]) -> Vec<String> {
    let mut found = Vec::new();
    let mut positions: BTreeMap<(String, String), i64> = BTreeMap::new();
    let (mut customers, mut cash) = (0i64, 0i64);
    for audit in audits {
        let bank = audit["bank"].as_str().unwrap_or("?").to_string();
        let totals = &audit["totals"];
        // 1. Every bank's books balance, posted and pending.
        if totals["debits_posted"] != totals["credits_posted"]
            || totals["debits_pending"] != totals["credits_pending"]
        {
            found.push(format!("{bank}: debits and credits differ: {totals}"));
        }
        // 2. (and the bank's own checks) No customer account below zero.
        for check in audit["checks"].as_array().into_iter().flatten() {
            if check["ok"] != true {
                found.push(format!(
                    "{bank}: {} failed: {}",
                    check["name"], check["detail"]
                ));
            }
        }
        for position in audit["settlement"].as_array().into_iter().flatten() {
            positions.insert(
                (bank.clone(), position["bank"].as_str().unwrap().to_string()),
                cents(position["position"].as_str().unwrap()),
            );
        }
        customers += cents(audit["customer_balances"].as_str().unwrap());
        cash +=
            cents(audit["cash_in"].as_str().unwrap()) - cents(audit["cash_out"].as_str().unwrap());
    }
    // 3. A's position with B is the opposite of B's with A.
    for ((a, b), position) in &positions {
        let mirror = positions.get(&(b.clone(), a.clone())).copied().unwrap_or(0);
        if *position != -mirror {
            found.push(format!(
                "{a} has {position} with {b}, but {b} has {mirror} with {a}"
            ));
        }
    }
    // 4. All customer money is the cash that came in minus the cash that went out.
    if customers != cash {
        found.push(format!(
            "customers hold {customers} but cash in minus out is {cash}"
        ));
    }
    found
}

pub fn unique(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "{prefix}{}x{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A valid CPF, different each call.
pub fn cpf() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    loop {
        let seed =
            NEXT.fetch_add(1, Ordering::Relaxed) * 7_919 + u64::from(std::process::id()) * 104_729;
        if let Some(cpf) = ledger::Cpf::from_base((seed % 1_000_000_000) as u32) {
            return cpf.as_str().to_string();
        }
    }
}
