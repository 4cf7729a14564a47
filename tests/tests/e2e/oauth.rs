//! OAuth 2.1 end to end: a real authorization server (npm `oidc-provider`) in front of a
//! resource server on the official Python SDK (login, call, expiry and refresh, restart
//! without a new login, a token for another audience refused), and hostile servers
//! (`tests/servers/hostile_oauth.py`) that point discovery at refused addresses, reject every
//! token, skip PKCE, ask for step-ups or send a forged redirect.
use std::{path::PathBuf, process::Command, time::Duration};

use mcpd_tests::*;

fn oidc_as(access_ttl: u32) -> (PeerProcess, String) {
    let mut cmd = Command::new(peer("node22"));
    cmd.arg(repo_root().join("tests/servers/oidc_as.mjs"))
        .args(["--access-ttl", &access_ttl.to_string()])
        .env("MCPD_PEERS", peers_dir());
    // Fails with install instructions if oidc-provider is missing.
    peer("node/node_modules/oidc-provider/package.json");
    let (p, lines) = PeerProcess::spawn_announced(cmd);
    (p, announced(&lines, "LISTENING"))
}

fn py_resource(as_url: &str, audience: Option<&str>) -> (PeerProcess, String) {
    let mut cmd = Command::new(python());
    cmd.arg(repo_root().join("tests/servers/py_oauth_server.py")).args(["--as-url", as_url]);
    if let Some(a) = audience {
        cmd.args(["--audience", a]);
    }
    let (p, lines) = PeerProcess::spawn_announced(cmd);
    (p, announced(&lines, "LISTENING"))
}

/// `tests/servers/hostile_oauth.py MODE`, with an extra listener on 127.0.0.2 that must
/// never be reached; returns the server, its MCP URL and the hits file.
fn hostile(mode: &str, target: Option<&str>, dir: &std::path::Path) -> (PeerProcess, String, PathBuf) {
    let hits = dir.join(format!("hits-{}.jsonl", mode));
    let mut cmd = Command::new(python());
    cmd.arg(repo_root().join("tests/servers/hostile_oauth.py"))
        .arg(mode)
        .args(["--also-listen", "127.0.0.2:0", "--hits"])
        .arg(&hits);
    if let Some(t) = target {
        cmd.args(["--target", t]);
    }
    let (p, lines) = PeerProcess::spawn_announced(cmd);
    (p, announced(&lines, "LISTENING"), hits)
}

fn hits(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path).unwrap_or_default().lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

/// The headless login hook: follows the authorization URL's redirects to mcpd's listener.
fn follower() -> String {
    workspace_bin("mcpd-conformance-client").display().to_string()
}

/// `[servers.NAME]` at `url` with an `[oauth]` table (plus `extra` lines in it).
fn oauth_server(name: &str, url: &str, extra: &str) -> String {
    format!(
        "[servers.{name}]\nurl = {}\nliveness_interval = \"0s\"\nbackoff = {{ initial = \"100ms\", max = \"500ms\" }}\n\
         [servers.{name}.oauth]\n{extra}\n",
        q(url)
    )
}

fn cli(d: &TestDaemon, args: &[&str]) -> std::process::Output {
    Command::new(mcpd_bin()).args(["--socket", &d.socket.display().to_string()]).args(args).output().expect("run mcpd")
}

async fn auth_status(d: &TestDaemon, server: &str) -> proto::AuthServerStatus {
    let mut c = d.client().await;
    c.auth_status(Some(server)).await.expect("auth status").into_iter().next().expect("one server")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_call_refresh_and_restart_against_a_real_authorization_server() {
    let (_as, as_url) = oidc_as(3);
    let (_rs, rs_url) = py_resource(&as_url, None);
    let mut d = TestDaemon::start(&oauth_server("notes", &rs_url, "allow_loopback = true"));

    // Nobody logged in: needs-auth with what to do, and no retry loop.
    let st = d.wait_state("notes", proto::ServerState::NeedsAuth, Duration::from_secs(30)).await;
    assert!(st.last_error.contains("mcpd auth login notes"), "{}", st.last_error);

    // `mcpd auth login` prints the URL, and the hook plays the browser.
    let browser = format!("{} --follow", follower());
    let out = cli(&d, &["auth", "login", "notes", "--browser", &browser]);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "login failed: {stdout}\n{stderr}\n{}", d.log_text());
    assert!(stdout.starts_with(&format!("{as_url}/auth?")), "{stdout}");
    for p in ["code_challenge_method=S256", "resource=", "state=", "redirect_uri=http%3A%2F%2F127.0.0.1%3A"] {
        assert!(stdout.contains(p), "the authorization URL lacks {p}: {stdout}");
    }
    assert!(stderr.contains("Logged in to notes"), "{stderr}");

    d.wait_state("notes", proto::ServerState::Ready, Duration::from_secs(30)).await;
    let mut c = d.client().await;
    let who: serde_json::Value =
        serde_json::from_str(&first_text(&c.call_tool("notes.whoami", "{}", None).await.expect("whoami"))).unwrap();
    assert_eq!(who["sub"], "alice");
    // The token was issued for this server (RFC 8707), not for the authorization server.
    assert_eq!(who["aud"], rs_url.as_str());

    let first = auth_status(&d, "notes").await;
    assert!(first.logged_in && first.refreshable, "{first:?}");
    assert!(first.scopes.iter().any(|s| s == "mcp:read"), "{first:?}");

    // The access token lives 3 s: after it expired, calls still work (refreshed, rotated).
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let r = c.call_tool("notes.echo", r#"{"text":"after expiry"}"#, None).await.expect("call after expiry");
    assert_eq!(first_text(&r), "after expiry");
    let refreshed = auth_status(&d, "notes").await;
    assert!(refreshed.expires_unix_ms > first.expires_unix_ms, "not refreshed: {first:?} -> {refreshed:?}");

    // Tokens never leave the daemon: not over gRPC, not in the CLI, not in the log.
    let out = cli(&d, &["auth", "status", "--json"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("\"logged_in\": true"), "{text}");
    assert!(!text.contains("eyJ"), "auth status shows a token: {text}");
    assert!(!d.log_text().contains("eyJ"), "the daemon log contains a token");

    // A restart needs no new login: the tokens are in the store.
    d.restart();
    d.wait_state("notes", proto::ServerState::Ready, Duration::from_secs(30)).await;
    let mut c = d.client().await;
    let r = c.call_tool("notes.echo", r#"{"text":"after restart"}"#, None).await.expect("call after restart");
    assert_eq!(first_text(&r), "after restart");
    // And once that token expires, the refresh uses the rotated refresh token the store
    // kept (oidc-provider revokes the whole grant if an already-rotated one comes back).
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let r = c.call_tool("notes.echo", r#"{"text":"refreshed again"}"#, None).await.expect("refresh after restart");
    assert_eq!(first_text(&r), "refreshed again");

    // Logout forgets them: the server is back to needs-auth.
    let out = cli(&d, &["auth", "logout", "notes"]);
    let text = String::from_utf8_lossy(&out.stdout);
    // RFC 7009 at oidc-provider: the refresh token is revoked (its JWT access tokens are
    // self-contained and only expire).
    assert!(text.starts_with("logged out of notes (at the authorization server: refresh token revoked"), "{text}");
    d.wait_state("notes", proto::ServerState::NeedsAuth, Duration::from_secs(30)).await;
    assert!(!auth_status(&d, "notes").await.logged_in);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_for_another_audience_is_rejected_and_not_retried_in_a_loop() {
    let (_as, as_url) = oidc_as(3600);
    // The resource server wants tokens for a different audience than its own URL, the one
    // mcpd asks for: every token mcpd gets is refused.
    let (_rs, rs_url) = py_resource(&as_url, Some("http://127.0.0.1:1/elsewhere"));
    // A second server on the same authorization server: its login is separate.
    let (_rs2, rs2_url) = py_resource(&as_url, None);
    let hook = format!("allow_loopback = true\nlogin_command = [{}, \"--follow\"]", q(follower()));
    let d = TestDaemon::start(&format!(
        "{}{}",
        oauth_server("bad", &rs_url, &hook),
        oauth_server("other", &rs2_url, "allow_loopback = true")
    ));
    // The hook logs in automatically; the server refuses the fresh token; mcpd stops there.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let st = loop {
        let mut c = d.client().await;
        let s = c.list_servers().await.unwrap().into_iter().find(|s| s.name == "bad").unwrap();
        if s.last_error.contains("rejected the token") {
            break s;
        }
        assert!(tokio::time::Instant::now() < deadline, "no rejection reported: {s:?}\n{}", d.log_text());
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(proto::ServerState::try_from(st.state), Ok(proto::ServerState::NeedsAuth));
    let logins = d.log_text().matches("OAuth login completed").count();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(d.log_text().matches("OAuth login completed").count(), logins, "mcpd keeps logging in");
    assert_eq!(logins, 1);
    // The token issued for `bad` is bound to it: `other` has none and still needs a login.
    let other = auth_status(&d, "other").await;
    assert!(!other.logged_in, "{other:?}");
    assert_eq!(other.state, "needs-auth");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_pointing_at_refused_addresses_sends_nothing_there() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("prm-as", "http://169.254.169.254/", "metadata address 169.254.169.254"),
        ("prm-as", "http://10.0.0.1/", "private address 10.0.0.1"),
        ("prm-as", "http://[::ffff:127.0.0.2]:{EXTRA_PORT}/", "loopback address 127.0.0.2"),
        ("prm-as", "http://0x7f000002:{EXTRA_PORT}/", "loopback address 127.0.0.2"),
        ("prm-as", "file:///etc/passwd", "file"),
        ("challenge-prm", "http://0x7f000002:{EXTRA_PORT}/.well-known/oauth-protected-resource", "127.0.0.2"),
        ("as-endpoints", "http://0x7f000002:{EXTRA_PORT}", "127.0.0.2"),
        ("redirect", "http://0x7f000002:{EXTRA_PORT}/.well-known/oauth-authorization-server", "127.0.0.2"),
        ("no-pkce", "", "PKCE S256"),
    ];
    let mut servers = String::new();
    let mut peers = Vec::new();
    for (i, (mode, target, _)) in cases.iter().enumerate() {
        let (p, url, hits) = hostile(mode, (!target.is_empty()).then_some(*target), dir.path());
        // Only the hostile server's own address is allowed: loopback as a class is not.
        servers.push_str(&oauth_server(&format!("h{i}"), &url, "allow = [\"127.0.0.1\"]"));
        peers.push((p, hits));
    }
    let d = TestDaemon::start(&servers);
    for (i, (mode, target, want)) in cases.iter().enumerate() {
        let name = format!("h{i}");
        d.wait_state(&name, proto::ServerState::NeedsAuth, Duration::from_secs(30)).await;
        let out = cli(&d, &["auth", "login", &name]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{mode} {target}: the login went on: {stderr}");
        assert!(stderr.contains(want), "{mode} {target}: expected {want:?} in: {stderr}");
        let st = auth_status(&d, &name).await;
        assert!(!st.logged_in && st.state == "needs-auth", "{st:?}");
        let seen = hits(&peers[i].1);
        assert!(
            !seen.iter().any(|h| h["listener"] == "extra"),
            "{mode} {target}: a request reached the refused address: {seen:?}"
        );
        if *mode == "no-pkce" {
            assert!(
                !seen.iter().any(|h| ["/register", "/authorize", "/token"].contains(&h["path"].as_str().unwrap_or(""))),
                "mcpd went on without PKCE: {seen:?}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_401s_every_new_token_ends_in_needs_auth_after_one_login() {
    let dir = tempfile::tempdir().unwrap();
    let (p, url, _) = hostile("reject-tokens", None, dir.path());
    let hook = format!("allow = [\"127.0.0.1\"]\nlogin_command = [{}, \"--follow\"]", q(follower()));
    let d = TestDaemon::start(&oauth_server("r", &url, &hook));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let st = auth_status(&d, "r").await;
        let mut c = d.client().await;
        let s = c.list_servers().await.unwrap().into_iter().find(|s| s.name == "r").unwrap();
        if st.state == "needs-auth" && s.last_error.contains("rejected the token") {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{s:?}\n{}", d.log_text());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stats: serde_json::Value = get_json(&format!("http://127.0.0.1:{}/stats", p.port)).await;
    // One login (and the one silent refresh a rejected token gets), then mcpd stops.
    assert_eq!(stats["authorize_requests"], 1, "mcpd logged in again and again: {stats}");
    assert!(stats["tokens_issued"].as_u64().is_some_and(|n| n <= 2), "{stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn step_up_on_insufficient_scope_and_a_forged_redirect() {
    let dir = tempfile::tempdir().unwrap();
    let (_p, url, _) = hostile("ok", None, dir.path());
    let hook = format!("allow = [\"127.0.0.1\"]\nlogin_command = [{}, \"--follow\"]", q(follower()));
    let d = TestDaemon::start(&format!(
        "{}{}",
        oauth_server("s", &url, &hook),
        oauth_server("m", &url, "allow = [\"127.0.0.1\"]")
    ));
    d.wait_state("s", proto::ServerState::Ready, Duration::from_secs(30)).await;
    let mut c = d.client().await;
    assert_eq!(first_text(&c.call_tool("s.ping", "{}", None).await.expect("ping")), "pong");
    // 403 insufficient_scope: mcpd re-authorizes for "mcp admin" (the hook) and retries.
    let r = c.call_tool("s.admin", "{}", Some(Duration::from_secs(30))).await.expect("admin after step-up");
    assert_eq!(first_text(&r), "admin ok");
    let st = auth_status(&d, "s").await;
    assert!(st.scopes.iter().any(|s| s == "admin"), "{st:?}");

    // A manual login whose redirect comes back with another state: refused, and the
    // listener is gone (the redirect URI works once).
    d.wait_state("m", proto::ServerState::NeedsAuth, Duration::from_secs(30)).await;
    let mut stream = c.auth_login("m").await.expect("login");
    let Some(proto::auth_login_event::Event::AuthorizationUrl(auth_url)) =
        stream.message().await.unwrap().and_then(|e| e.event)
    else {
        panic!("no authorization URL first");
    };
    let redirect = query_param(&auth_url, "redirect_uri").expect("redirect_uri");
    let forged = format!("{redirect}?code=stolen&state=not-the-one");
    let resp = raw_get(&forged).await.expect("the listener answers");
    assert!(resp.starts_with("HTTP/1.1 400"), "{resp}");
    let Some(proto::auth_login_event::Event::Failed(why)) = stream.message().await.unwrap().and_then(|e| e.event)
    else {
        panic!("the forged redirect did not fail the login");
    };
    assert!(why.contains("state did not match"), "{why}");
    assert!(raw_get(&format!("{redirect}?code=x&state=y")).await.is_err(), "the listener is still open");
    let m = auth_status(&d, "m").await;
    assert!(!m.logged_in && m.state == "needs-auth", "{m:?}");
}

fn query_param(url: &str, key: &str) -> Option<String> {
    let url = reqwest::Url::parse(url).ok()?;
    url.query_pairs().find(|(k, _)| k == key).map(|(_, v)| v.into_owned())
}

/// One plain GET over TCP; the whole response as text.
async fn raw_get(url: &str) -> std::io::Result<String> {
    raw_request("GET", url).await
}

/// One request without a body over plain TCP (no client library that might retry or
/// follow redirects); the whole response as text.
async fn raw_request(method: &str, url: &str) -> std::io::Result<String> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let rest = url.strip_prefix("http://").unwrap_or(url);
    let (host, path) = rest.split_once('/').map(|(h, p)| (h, format!("/{p}"))).unwrap_or((rest, "/".into()));
    let mut sock = tokio::net::TcpStream::connect(host).await?;
    let req = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    sock.write_all(req.as_bytes()).await?;
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), sock.read_to_end(&mut buf))
        .await
        .map_err(std::io::Error::other)??;
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

async fn get_json(url: &str) -> serde_json::Value {
    let text = raw_get(url).await.expect("GET");
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default();
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{url}: {e}: {text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_of_a_server_whose_url_changed_are_deleted_not_kept() {
    let dir = tempfile::tempdir().unwrap();
    let (_p, url, _) = hostile("ok", None, dir.path());
    let d = TestDaemon::start(&oauth_server("s", &url, "allow = [\"127.0.0.1\"]"));
    d.wait_state("s", proto::ServerState::NeedsAuth, Duration::from_secs(30)).await;
    let out = cli(&d, &["auth", "login", "s", "--browser", &format!("{} --follow", follower())]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    d.wait_state("s", proto::ServerState::Ready, Duration::from_secs(30)).await;
    assert!(auth_status(&d, "s").await.logged_in);

    // Another URL is another server: its tokens are not the old ones, and the old ones go.
    let original = std::fs::read_to_string(&d.config).unwrap();
    std::fs::write(&d.config, original.replace(&url, &format!("{url}?tenant=2"))).unwrap();
    let mut c = d.client().await;
    c.reload().await.expect("reload");
    d.wait_state("s", proto::ServerState::NeedsAuth, Duration::from_secs(30)).await;
    assert!(!auth_status(&d, "s").await.logged_in);
    // Back to the first URL: still logged out, the credentials were deleted.
    std::fs::write(&d.config, original).unwrap();
    c.reload().await.expect("reload");
    d.wait_state("s", proto::ServerState::NeedsAuth, Duration::from_secs(30)).await;
    assert!(!auth_status(&d, "s").await.logged_in);
    assert!(d.log_text().contains("deleted OAuth credentials"), "{}", d.log_text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forgotten_client_registration_is_replaced_by_a_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let (p, url, _) = hostile("ok", None, dir.path());
    let hook = format!("allow = [\"127.0.0.1\"]\nlogin_command = [{}, \"--follow\"]", q(follower()));
    let d = TestDaemon::start(&oauth_server("s", &url, &hook));
    d.wait_state("s", proto::ServerState::Ready, Duration::from_secs(30)).await;
    let mut c = d.client().await;
    assert_eq!(first_text(&c.call_tool("s.ping", "{}", None).await.expect("ping")), "pong");

    // The authorization server forgets mcpd's client: the access token is refused and the
    // refresh answers `invalid_client`. mcpd drops the dead registration and registers anew
    // (through the login hook) instead of retrying the refresh forever.
    let _ = raw_request("POST", &format!("http://127.0.0.1:{}/forget", p.port)).await;
    let first = c.call_tool("s.ping", "{}", None).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = c.call_tool("s.ping", "{}", None).await {
            assert_eq!(first_text(&r), "pong");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no recovery (first call: {first:?})\n{}", d.log_text());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let stats = get_json(&format!("http://127.0.0.1:{}/stats", p.port)).await;
    assert_eq!(stats["clients_registered"], 2, "{stats}");
    assert!(d.log_text().contains("invalid_client"), "the reason is not reported");
}
