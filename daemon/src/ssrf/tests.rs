//! Tests for the SSRF guard on the network: resolution, redirects and the reqwest resolver, against a tiny
//! local HTTP server.
use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use reqwest::Url;
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpListener,
};

use super::*;

fn policy(allow_loopback: bool, allow: &[&str]) -> SsrfPolicy {
    SsrfPolicy { allow_loopback, allow: allow.iter().map(|s| (*s).to_owned()).collect() }
}

fn forbidden(host: &str, addr: &str, why: &'static str) -> SsrfError {
    SsrfError::ForbiddenAddress { host: host.to_owned(), addr: addr.parse().unwrap(), why }
}

#[tokio::test]
async fn resolve_checks_and_pins_addresses() {
    let url = |s: &str| Url::parse(s).unwrap();
    let sa = |s: &str| -> SocketAddr { s.parse().unwrap() };
    let cases = [
        // The case: localhost refused without allow_loopback, and answered without DNS with it.
        (policy(false, &[]), "https://localhost/", Err(forbidden("localhost", "127.0.0.1", "loopback"))),
        (policy(false, &[]), "https://LOCALHOST./", Err(forbidden("localhost.", "127.0.0.1", "loopback"))),
        (policy(true, &[]), "https://localhost/", Ok(vec![sa("127.0.0.1:443"), sa("[::1]:443")])),
        (policy(true, &[]), "http://app.localhost:8080/", Ok(vec![sa("127.0.0.1:8080"), sa("[::1]:8080")])),
        (policy(false, &["127.0.0.0/8"]), "https://localhost/", Ok(vec![sa("127.0.0.1:443")])),
        (policy(false, &["localhost"]), "https://localhost/", Ok(vec![sa("127.0.0.1:443"), sa("[::1]:443")])),
        (policy(false, &[]), "https://10.0.0.1:8443/", Err(forbidden("10.0.0.1", "10.0.0.1", "private"))),
        (policy(false, &["10.0.0.0/8"]), "https://10.0.0.1:8443/", Ok(vec![sa("10.0.0.1:8443")])),
        (policy(false, &[]), "https://93.184.215.14/", Ok(vec![sa("93.184.215.14:443")])),
        (policy(false, &[]), "https://[2606:4700::1111]:8443/", Ok(vec![sa("[2606:4700::1111]:8443")])),
        // resolve re-checks URLs that did not come from check_url.
        (policy(true, &[]), "file:///etc/passwd", Err(SsrfError::Scheme { scheme: "file".to_owned() })),
        (
            policy(false, &[]),
            "https://u:p@example.com/",
            Err(SsrfError::Credentials { host: "example.com".to_owned() }),
        ),
        (policy(false, &[]), "http://example.com/", Err(SsrfError::NotHttps { url: "http://example.com".to_owned() })),
    ];
    for (policy, u, want) in cases {
        assert_eq!(resolve(&policy, &url(u)).await, want, "{u} with {policy:?}");
    }
}

#[tokio::test]
async fn resolver_reads_raw_host_forms() {
    // reqwest hands its resolver the host as written (the `url` crate's canonical forms are not applied),
    // so every spelling getaddrinfo would read as an address must be caught here.
    let cases = [
        ("0x7f000002", "127.0.0.2", "loopback"),
        ("0X7F000002", "127.0.0.2", "loopback"),
        ("017700000001", "127.0.0.1", "loopback"),
        ("0177.0.0.1", "127.0.0.1", "loopback"),
        ("0x7f.0.0.2", "127.0.0.2", "loopback"),
        ("2130706434", "127.0.0.2", "loopback"),
        ("127.1", "127.0.0.1", "loopback"),
        ("127.0.0.1.", "127.0.0.1", "loopback"),
        ("[::ffff:127.0.0.2]", "127.0.0.2", "loopback"),
        ("::ffff:7f00:2", "127.0.0.2", "loopback"),
        ("localhost", "127.0.0.1", "loopback"),
        ("LocalHost.", "127.0.0.1", "loopback"),
        ("a.b.localhost", "127.0.0.1", "loopback"),
        ("10.1", "10.0.0.1", "private"),
        ("012.0.0.1", "10.0.0.1", "private"),
        ("167772161", "10.0.0.1", "private"),
        ("0xa9fea9fe", "169.254.169.254", "metadata"),
        ("0", "0.0.0.0", "unspecified"),
    ];
    for (host, addr, why) in cases {
        assert_eq!(resolve_host(&SsrfPolicy::default(), host, 80).await, Err(forbidden(host, addr, why)), "{host}");
    }
    for host in ["1.2.3.4.5", "256.0.0.1", "0x100000000", "08.0.0.1", "foo.123", "1..2", "bad_name!", ""] {
        let got = resolve_host(&SsrfPolicy::default(), host, 80).await;
        assert!(matches!(got, Err(SsrfError::BadUrl { .. })), "{host}: {got:?}");
    }
    let loopback = policy(true, &[]);
    assert_eq!(resolve_host(&loopback, "0x7f000002", 80).await, Ok(vec!["127.0.0.2:80".parse().unwrap()]));
    assert_eq!(resolve_host(&loopback, "10.1", 80).await, Err(forbidden("10.1", "10.0.0.1", "private")));
}

// --- redirects and the resolver, against a tiny local HTTP server ---

/// A local HTTP/1.1 server whose routes redirect along fixed chains; it records every path it serves.
struct TestServer {
    port: u16,
    hits: Arc<Mutex<Vec<String>>>,
}

impl TestServer {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let hits = Arc::new(Mutex::new(Vec::new()));
        let seen = hits.clone();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let seen = seen.clone();
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut chunk = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let path = String::from_utf8_lossy(&head).split_whitespace().nth(1).unwrap_or("/").to_owned();
                    seen.lock().unwrap().push(path.clone());
                    let (status, location, body) = route(&path, port);
                    let location = location.map(|l| format!("location: {l}\r\n")).unwrap_or_default();
                    let response = format!(
                        "HTTP/1.1 {status}\r\n{location}content-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = sock.write_all(response.as_bytes()).await;
                    let _ = sock.shutdown().await;
                });
            }
        });
        Self { port, hits }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn hits(&self) -> Vec<String> {
        self.hits.lock().unwrap().clone()
    }
}

fn route(path: &str, port: u16) -> (&'static str, Option<String>, &'static str) {
    let to = |l: &str| ("302 Found", Some(l.to_owned()), "");
    match path {
        "/final" => ("200 OK", None, "final"),
        "/secret" => ("200 OK", None, "secret"),
        // Control: two loopback hops, both allowed.
        "/to-loopback" => to("/via-loopback"),
        "/via-loopback" => to("/final"),
        // The first hop stays on loopback (allowed), the second goes to a private address.
        "/to-private" => to("/via-private"),
        "/via-private" => to("https://10.0.0.1/token"),
        // Same shape, but the forbidden second hop is reachable: Linux connects 0.0.0.0 to this server.
        "/to-zero" => to("/via-zero"),
        "/via-zero" => to(&format!("http://0.0.0.0:{port}/secret")),
        "/to-hex-private" => to("https://0xa000001/token"),
        "/to-metadata" => to("http://169.254.169.254/latest/meta-data/"),
        "/to-file" => to("file:///etc/passwd"),
        "/to-creds" => to(&format!("http://user:pw@127.0.0.1:{port}/final")),
        "/to-localhost" => to(&format!("http://localhost:{port}/final")),
        _ => match path.strip_prefix("/hop/").and_then(|n| n.parse::<u32>().ok()) {
            Some(0) => ("200 OK", None, "done"),
            Some(n) => ("302 Found", Some(format!("/hop/{}", n - 1)), ""),
            None => ("404 Not Found", None, "not found"),
        },
    }
}

/// A client guarded the way OAuth fetches are meant to be: redirect policy, resolver, no proxy. The short
/// timeouts make a guard that failed to refuse show up as a wrong error, not a hang.
fn guarded_client(policy: &SsrfPolicy) -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(redirect_policy(policy.clone()))
        .dns_resolver(SsrfResolver::new(policy.clone()))
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// The `SsrfError` somewhere in a reqwest error's source chain.
fn ssrf_cause(err: &reqwest::Error) -> Option<SsrfError> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(ssrf) = e.downcast_ref::<SsrfError>() {
            return Some(ssrf.clone());
        }
        cur = e.source();
    }
    None
}

async fn get(client: &reqwest::Client, url: &str) -> Result<String, reqwest::Error> {
    client.get(url).send().await?.error_for_status()?.text().await
}

#[tokio::test]
async fn redirect_policy_refuses_a_forbidden_second_hop() {
    let server = TestServer::start().await;
    // Loopback is allowed so the chain can start at the local server; nothing else is.
    let client = guarded_client(&policy(true, &[]));

    // Control: the same chain shape within what the policy allows is followed to the end, so the refusals
    // below are the policy's doing and not a client that never follows redirects.
    assert_eq!(get(&client, &server.url("/to-loopback")).await.unwrap(), "final");

    let err = get(&client, &server.url("/to-private")).await.unwrap_err();
    assert!(err.is_redirect(), "{err:?}");
    assert_eq!(ssrf_cause(&err), Some(forbidden("10.0.0.1", "10.0.0.1", "private")));
    assert_eq!(&server.hits()[3..], ["/to-private", "/via-private"]);

    // The forbidden hop here is reachable, so a guard that let it through would return "secret".
    let unguarded = reqwest::Client::builder().no_proxy().build().unwrap();
    let secret = format!("http://0.0.0.0:{}/secret", server.port);
    assert_eq!(get(&unguarded, &secret).await.unwrap(), "secret", "precondition: 0.0.0.0 reaches the local server");
    let err = get(&client, &server.url("/to-zero")).await.unwrap_err();
    assert_eq!(ssrf_cause(&err), Some(forbidden("0.0.0.0", "0.0.0.0", "unspecified")));
    assert_eq!(server.hits().iter().filter(|p| *p == "/secret").count(), 1, "only the unguarded request got through");

    let cases = [
        ("/to-hex-private", forbidden("10.0.0.1", "10.0.0.1", "private")),
        ("/to-metadata", forbidden("169.254.169.254", "169.254.169.254", "metadata")),
        ("/to-creds", SsrfError::Credentials { host: "127.0.0.1".to_owned() }),
    ];
    for (path, want) in cases {
        let err = get(&client, &server.url(path)).await.unwrap_err();
        assert_eq!(ssrf_cause(&err), Some(want), "{path}: {err:?}");
    }
    // reqwest never asks the policy about a non-http location (it cannot build a request for it) and
    // hands back the redirect itself; check_url's scheme refusal is covered above.
    let res = client.get(server.url("/to-file")).send().await.unwrap();
    assert_eq!(res.status(), reqwest::StatusCode::FOUND);
}

#[tokio::test]
async fn redirect_policy_caps_hops_at_five() {
    let server = TestServer::start().await;
    let client = guarded_client(&policy(true, &[]));
    assert_eq!(get(&client, &server.url("/hop/5")).await.unwrap(), "done");
    let err = get(&client, &server.url("/hop/6")).await.unwrap_err();
    assert_eq!(ssrf_cause(&err), Some(SsrfError::TooManyRedirects { host: "127.0.0.1".to_owned() }));
}

#[tokio::test]
async fn resolver_guards_names_reqwest_connects_to() {
    let server = TestServer::start().await;
    let localhost = format!("http://localhost:{}/final", server.port);

    // Allowed: the resolver answers localhost with loopback and the request arrives.
    assert_eq!(get(&guarded_client(&policy(true, &[])), &localhost).await.unwrap(), "final");
    assert_eq!(get(&guarded_client(&policy(true, &[])), &server.url("/to-localhost")).await.unwrap(), "final");

    // Refused: with a plain client this request would arrive (see above); the guarded one never connects.
    let before = server.hits().len();
    let err = get(&guarded_client(&policy(false, &[])), &localhost).await.unwrap_err();
    assert_eq!(ssrf_cause(&err), Some(forbidden("localhost", "127.0.0.1", "loopback")), "{err:?}");
    assert_eq!(server.hits().len(), before);
}
