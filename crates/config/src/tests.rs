//! Tests for config loading: valid configs, every problem kind with exact
//! positions, includes, secrets, units and the shipped example configs.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::model::glob_match;
use super::paths::{Identity, socket_path, state_dir};
use super::units::{parse_duration, parse_size};
use super::*;

const SECRET: &str = "ghp_TOPSECRET_value";

fn fake_env(name: &str) -> Option<String> {
    match name {
        "GITHUB_TOKEN" => Some(SECRET.to_owned()),
        "MCPD_PEERS" => Some("/opt/peers".to_owned()),
        "REMOTE_MCP_TOKEN" | "REPORTS_CLIENT_SECRET" => Some(SECRET.to_owned()),
        "HOST" => Some("example.com".to_owned()),
        "NEWLINE" => Some(format!("{SECRET}\nInjected: yes")),
        _ => None,
    }
}

fn ok(src: &str) -> Config {
    match load_str(src, Path::new("/etc/mcpd/mcpd.toml"), &fake_env) {
        Ok(c) => c,
        Err(e) => panic!("unexpected problems:\n{e}"),
    }
}

/// Problems as "line:col: message", in reported order.
fn problems(src: &str) -> Vec<String> {
    match load_str(src, Path::new("mcpd.toml"), &fake_env) {
        Ok(_) => Vec::new(),
        Err(e) => e
            .problems
            .iter()
            .map(|p| {
                assert_eq!(p.file, Path::new("mcpd.toml"));
                format!("{}:{}: {}", p.line, p.col, p.message)
            })
            .collect(),
    }
}

fn server<'c>(c: &'c Config, name: &str) -> &'c ServerConfig {
    match c.servers.get(name) {
        Some(s) => s,
        None => panic!("no server {name}"),
    }
}

#[test]
fn minimal_stdio_with_defaults() {
    let c = ok("[servers.fs]\ncommand = \"npx\"\n");
    assert_eq!(c.daemon, DaemonConfig::default());
    assert_eq!(c.files, vec![PathBuf::from("/etc/mcpd/mcpd.toml")]);
    let s = server(&c, "fs");
    let expected = ServerConfig {
        name: "fs".to_owned(),
        transport: TransportConfig::Stdio {
            command: "npx".to_owned(),
            args: vec![],
            env: Default::default(),
            cwd: None,
        },
        source: r#"["npx",[]]"#.to_owned(),
        protocol: ProtocolPref::Auto,
        enabled: true,
        connect_timeout: Duration::from_secs(30),
        call_timeout: Duration::from_secs(60),
        shutdown_grace: Duration::from_secs(3),
        max_concurrency: 32,
        max_message_bytes: 8 * 1024 * 1024,
        notification_rate: 1000,
        liveness_interval: Duration::from_secs(30),
        tools_refresh: Duration::from_secs(300),
        backoff: BackoffConfig {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(60),
            multiplier: 2.0,
            jitter: 0.3,
        },
        crash_loop: CrashLoopConfig {
            max_failures: 5,
            window: Duration::from_secs(60),
            open_for: Duration::from_secs(300),
        },
        tools: ToolFilter { allow: vec!["*".to_owned()], deny: vec![] },
        trust: TrustMode::Tofu,
        tofu_trusts_new_tools: false,
        pins: Default::default(),
        redact_secrets: true,
        rate_limit: None,
        tool_rate_limits: Default::default(),
        confirm_destructive: false,
        sampling: None,
        roots: vec![],
        oauth: None,
    };
    assert_eq!(*s, expected);
}

#[test]
fn daemon_defaults() {
    let d = DaemonConfig::default();
    assert_eq!(d.socket, None);
    assert_eq!(d.state_dir, None);
    assert!(d.include.is_empty());
    assert_eq!(d.shutdown_grace, Duration::from_secs(5));
    assert_eq!(d.call_timeout, Duration::from_secs(60));
    assert_eq!(d.connect_timeout, Duration::from_secs(30));
    assert_eq!(d.max_message_bytes, 8 << 20);
    assert_eq!(d.max_result_bytes, 1 << 20);
    assert_eq!(d.log_format, LogFormat::Text);
    assert_eq!(d.log_level, "info");
}

#[test]
fn minimal_http_and_sse() {
    let c = ok(r#"
[servers.api]
url = "https://example.com/mcp"
headers = { Authorization = "Bearer ${env:GITHUB_TOKEN}" }

[servers.legacy]
transport = "sse"
url = "http://127.0.0.1:8080/sse"

[servers.explicit-http]
transport = "http"
url = "http://[::1]:9000"
"#);
    match &server(&c, "api").transport {
        TransportConfig::Http { url, headers } => {
            assert_eq!(url, "https://example.com/mcp");
            let auth = headers.get("Authorization").map(Secret::expose);
            assert_eq!(auth, Some(format!("Bearer {SECRET}").as_str()));
        }
        other => panic!("{other:?}"),
    }
    match &server(&c, "legacy").transport {
        TransportConfig::Sse { url, headers } => {
            assert_eq!(url, "http://127.0.0.1:8080/sse");
            assert!(headers.is_empty());
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(server(&c, "explicit-http").transport.kind(), "http");
}

#[test]
fn every_key_set() {
    let c = ok(r#"
[daemon]
socket = "run/mcpd.sock"
state_dir = "/var/tmp/mcpd"
shutdown_grace = "10s"
call_timeout = 1_500
connect_timeout = "1m 30s"
max_message_bytes = "1MiB"
max_result_bytes = 65536
worker_threads = 3
log_format = "json"
log_level = "mcpd=debug,info"

[servers.full]
transport = "stdio"
command = "${env:MCPD_PEERS}/bin/server"
args = ["--root", "${env:MCPD_PEERS}", "$${literal}"]
env = { TOKEN = "${env:GITHUB_TOKEN}", PLAIN = "x" }
cwd = "work"
protocol = "2025-06-18"
enabled = false
connect_timeout = "5s"
call_timeout = "2m"
shutdown_grace = 0
max_concurrency = 0x10
max_message_bytes = "64 KB"
notification_rate = 0
liveness_interval = "0s"
backoff = { initial = "1s", max = "1s", multiplier = 1, jitter = 0 }
crash_loop = { max_failures = 3, window = "10s", open_for = "1h" }
tools = { allow = ["read_*", "list?"], deny = ["read_secret"] }

[llm.x]
kind = "anthropic"
model = "x"
"#);
    let d = &c.daemon;
    assert_eq!(d.socket, Some(PathBuf::from("/etc/mcpd/run/mcpd.sock")));
    assert_eq!(d.state_dir, Some(PathBuf::from("/var/tmp/mcpd")));
    assert_eq!(d.shutdown_grace, Duration::from_secs(10));
    assert_eq!(d.call_timeout, Duration::from_millis(1500));
    assert_eq!(d.connect_timeout, Duration::from_secs(90));
    assert_eq!(d.max_message_bytes, 1 << 20);
    assert_eq!(d.worker_threads, 3);
    assert_eq!(d.max_result_bytes, 65536);
    assert_eq!(d.log_format, LogFormat::Json);
    assert_eq!(d.log_level, "mcpd=debug,info");
    assert_eq!(c.socket_path(), PathBuf::from("/etc/mcpd/run/mcpd.sock"));
    assert_eq!(c.state_dir(), PathBuf::from("/var/tmp/mcpd"));

    let s = server(&c, "full");
    match &s.transport {
        TransportConfig::Stdio { command, args, env, cwd } => {
            assert_eq!(command, "/opt/peers/bin/server");
            assert_eq!(args, &["--root", "/opt/peers", "${literal}"]);
            assert_eq!(env.get("TOKEN").map(Secret::expose), Some(SECRET));
            assert_eq!(env.get("PLAIN").map(Secret::expose), Some("x"));
            assert_eq!(cwd.as_deref(), Some(Path::new("/etc/mcpd/work")));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(s.protocol, ProtocolPref::V2025_06_18);
    assert_eq!(s.protocol.pinned(), Some("2025-06-18"));
    assert!(!s.enabled);
    assert_eq!(s.connect_timeout, Duration::from_secs(5));
    assert_eq!(s.call_timeout, Duration::from_secs(120));
    assert_eq!(s.shutdown_grace, Duration::ZERO);
    assert_eq!(s.max_concurrency, 16);
    assert_eq!(s.max_message_bytes, 64_000);
    assert_eq!(s.notification_rate, 0);
    assert_eq!(s.liveness_interval, Duration::ZERO);
    assert_eq!(s.backoff.initial, Duration::from_secs(1));
    assert_eq!(s.backoff.max, Duration::from_secs(1));
    assert_eq!(s.backoff.multiplier, 1.0);
    assert_eq!(s.backoff.jitter, 0.0);
    assert_eq!(s.crash_loop.max_failures, 3);
    assert_eq!(s.crash_loop.window, Duration::from_secs(10));
    assert_eq!(s.crash_loop.open_for, Duration::from_secs(3600));
    assert!(s.tools.allows("read_file"));
    assert!(s.tools.allows("lists"));
    assert!(!s.tools.allows("read_secret"));
    assert!(!s.tools.allows("write_file"));

    let llm = &c.llm["x"];
    assert_eq!(
        (llm.kind, llm.model.as_str(), llm.base_url.as_str()),
        (LlmKind::Anthropic, "x", "https://api.anthropic.com")
    );
}

#[test]
fn server_timeouts_inherit_daemon_overrides() {
    let c = ok(r#"
[daemon]
call_timeout = "7s"
connect_timeout = "8s"
max_message_bytes = 4096

[servers.a]
command = "a"
"#);
    let s = server(&c, "a");
    assert_eq!(s.call_timeout, Duration::from_secs(7));
    assert_eq!(s.connect_timeout, Duration::from_secs(8));
    assert_eq!(s.max_message_bytes, 4096);
}

#[test]
fn daemon_after_servers_still_applies() {
    // Key order in the file must not matter for inherited defaults.
    let c = ok("[servers.a]\ncommand = \"a\"\n[daemon]\ncall_timeout = \"9s\"\n");
    assert_eq!(server(&c, "a").call_timeout, Duration::from_secs(9));
}

/// (source, expected problems as "line:col: message").
const CASES: &[(&str, &[&str])] = &[
    // Unknown keys, with and without a suggestion.
    (
        "[servers.fs]\ncomand = \"x\"\n",
        &[
            "1:10: [servers.fs] needs \"command\" (stdio) or \"url\" (http, sse)",
            "2:1: unknown key \"comand\" in [servers.fs], did you mean \"command\"?",
        ],
    ),
    ("[deamon]\nsocket = \"/x\"\n", &["1:2: unknown key \"deamon\" at top level, did you mean \"daemon\"?"]),
    ("[daemon]\nfrobnicate = 1\n", &["2:1: unknown key \"frobnicate\" in [daemon]"]),
    (
        "[daemon]\ncall_timout = \"1s\"\n",
        &["2:1: unknown key \"call_timout\" in [daemon], did you mean \"call_timeout\"?"],
    ),
    (
        "[servers.fs]\ncommand = \"x\"\nbackoff = { intial = \"1s\" }\n",
        &["3:13: unknown key \"intial\" in [servers.fs.backoff], did you mean \"initial\"?"],
    ),
    (
        "[servers.fs]\ncommand = \"x\"\ncrash_loop.windw = \"1s\"\n",
        &["3:12: unknown key \"windw\" in [servers.fs.crash_loop], did you mean \"window\"?"],
    ),
    (
        "[servers.fs]\ncommand = \"x\"\n[servers.fs.tools]\nalow = []\n",
        &["4:1: unknown key \"alow\" in [servers.fs.tools], did you mean \"allow\"?"],
    ),
    ("title = \"x\"\n", &["1:1: unknown key \"title\" at top level"]),
    // Server names.
    ("[servers.My_Server]\ncommand = \"x\"\n", &["1:10: server name \"My_Server\" must match [a-z0-9-]{1,32}"]),
    (
        "[servers.abcdefghijklmnopqrstuvwxyz0123456]\ncommand = \"x\"\n",
        &["1:10: server name \"abcdefghijklmnopqrstuvwxyz0123456\" must match [a-z0-9-]{1,32}"],
    ),
    ("[servers.\"\"]\ncommand = \"x\"\n", &["1:10: server name \"\" must match [a-z0-9-]{1,32}"]),
    // Wrong types.
    ("[servers.fs]\ncommand = 5\n", &["2:11: expected a string for \"command\", found an integer"]),
    ("[servers]\nfs = 1\n", &["2:6: expected a table for \"servers.fs\", found an integer"]),
    ("servers = [1]\n", &["1:11: expected a table for \"servers\", found an array"]),
    ("[[servers.fs]]\ncommand = \"x\"\n", &["1:1: expected a table for \"servers.fs\", found an array"]),
    ("daemon = \"x\"\n", &["1:10: expected a table for \"daemon\", found a string"]),
    (
        "[servers.fs]\ncommand = \"x\"\nargs = \"-v\"\n",
        &["3:8: expected an array of strings for \"args\", found a string"],
    ),
    (
        "[servers.fs]\ncommand = \"x\"\nargs = [\"-v\", 2]\n",
        &["3:15: expected a string for \"args[1]\", found an integer"],
    ),
    (
        "[servers.fs]\ncommand = \"x\"\nenv = [\"A=b\"]\n",
        &["3:7: expected a table of strings for \"env\", found an array"],
    ),
    (
        "[servers.fs]\ncommand = \"x\"\nenv = { A = true }\n",
        &["3:13: expected a string for \"env.A\", found a boolean"],
    ),
    (
        "[servers.fs]\ncommand = \"x\"\nenabled = \"yes\"\n",
        &["3:11: expected a boolean for \"enabled\", found a string"],
    ),
    (
        "[servers.fs]\ncommand = \"x\"\nbackoff = \"fast\"\n",
        &["3:11: expected a table for \"backoff\", found a string"],
    ),
    (
        "[servers.fs]\ncommand = \"x\"\nbackoff = { multiplier = \"2\" }\n",
        &["3:26: expected a number for \"backoff.multiplier\", found a string"],
    ),
    (
        "[servers.fs]\ncommand = \"x\"\nmax_concurrency = 1.5\n",
        &["3:19: expected an integer for \"max_concurrency\", found a float"],
    ),
    ("[daemon]\ninclude = \"servers.d\"\n", &["2:11: expected an array of strings for \"include\", found a string"]),
    ("[daemon]\nlog_level = \"\"\n", &["2:13: \"log_level\" must not be empty"]),
    // Enums.
    (
        "[daemon]\nlog_format = \"xml\"\n",
        &["2:14: invalid value \"xml\" for \"log_format\", expected one of \"text\", \"json\""],
    ),
    (
        "[servers.fs]\ncommand = \"x\"\nprotocol = \"2025-01-01\"\n",
        &[
            "3:12: invalid value \"2025-01-01\" for \"protocol\", expected one of \"auto\", \"2026-07-28\", \"2025-11-25\", \"2025-06-18\", \"2025-03-26\", \"2024-11-05\"",
        ],
    ),
    (
        "[servers.fs]\ntransport = \"websocket\"\nurl = \"ws://x\"\n",
        &["2:13: invalid value \"websocket\" for \"transport\", expected one of \"stdio\", \"http\", \"sse\""],
    ),
    // Durations.
    (
        "[daemon]\ncall_timeout = \"5 parsecs\"\n",
        &[
            "2:16: invalid duration \"5 parsecs\" for \"call_timeout\", use e.g. \"500ms\", \"30s\", \"5m\" or an integer of milliseconds",
        ],
    ),
    (
        "[daemon]\ncall_timeout = \"30\"\n",
        &[
            "2:16: invalid duration \"30\" for \"call_timeout\", use e.g. \"500ms\", \"30s\", \"5m\" or an integer of milliseconds",
        ],
    ),
    ("[daemon]\ncall_timeout = 0\n", &["2:16: \"call_timeout\" must be greater than zero"]),
    ("[daemon]\nshutdown_grace = -5\n", &["2:18: \"shutdown_grace\" must be at least 0, found -5"]),
    ("[daemon]\nconnect_timeout = 1.5\n", &["2:19: expected a duration for \"connect_timeout\", found a float"]),
    // Sizes.
    (
        "[daemon]\nmax_message_bytes = \"16 MB!\"\n",
        &["2:21: invalid size \"16 MB!\" for \"max_message_bytes\", use e.g. 1048576, \"512KiB\" or \"16MiB\""],
    ),
    ("[daemon]\nmax_result_bytes = 100\n", &["2:20: \"max_result_bytes\" must be at least 1024 bytes, found 100"]),
    (
        "[servers.fs]\ncommand = \"x\"\nmax_message_bytes = \"1000B\"\n",
        &["3:21: \"max_message_bytes\" must be at least 1024 bytes, found 1000"],
    ),
    (
        "[daemon]\nmax_result_bytes = \"99999999999GiB\"\n",
        &["2:20: invalid size \"99999999999GiB\" for \"max_result_bytes\", use e.g. 1048576, \"512KiB\" or \"16MiB\""],
    ),
    // Ranges.
    (
        "[servers.fs]\ncommand = \"x\"\nmax_concurrency = 0\n",
        &["3:19: \"max_concurrency\" must be between 1 and 1024, found 0"],
    ),
    (
        "[servers.fs]\ncommand = \"x\"\nmax_concurrency = 2_000\n",
        &["3:19: \"max_concurrency\" must be between 1 and 1024, found 2_000"],
    ),
    (
        "[servers.fs]\ncommand = \"x\"\nbackoff = { multiplier = 0.5, jitter = 1.5, initial = \"0s\" }\n",
        &[
            "3:26: \"backoff.multiplier\" must be at least 1.0, found 0.5",
            "3:40: \"backoff.jitter\" must be between 0.0 and 1.0, found 1.5",
            "3:55: \"backoff.initial\" must be greater than zero",
        ],
    ),
    (
        "[servers.fs]\ncommand = \"x\"\nbackoff = { initial = \"2s\", max = \"1s\" }\n",
        &["3:35: \"backoff.max\" (1s) must not be less than \"backoff.initial\" (2s)"],
    ),
    (
        "[servers.fs]\ncommand = \"x\"\nbackoff = { initial = \"2m\" }\n",
        &["3:23: \"backoff.max\" (1m) must not be less than \"backoff.initial\" (2m)"],
    ),
    (
        "[servers.fs]\ncommand = \"x\"\ncrash_loop = { max_failures = 0, window = 0 }\n",
        &[
            "3:31: \"crash_loop.max_failures\" must be between 1 and 4294967295, found 0",
            "3:43: \"crash_loop.window\" must be greater than zero",
        ],
    ),
    // Tool globs.
    (
        "[servers.fs]\ncommand = \"x\"\ntools = { allow = [\"ok_*\", \"a/b\"], deny = [\"\"] }\n",
        &[
            "3:28: invalid tool pattern \"a/b\" in \"tools.allow\", use only letters, digits, \"_\", \".\", \"-\", \"*\" and \"?\"",
            "3:44: invalid tool pattern \"\" in \"tools.deny\", use only letters, digits, \"_\", \".\", \"-\", \"*\" and \"?\"",
        ],
    ),
    // Transport selection.
    ("[servers.fs]\ncommand = \"\"\n", &["2:11: \"command\" must not be empty"]),
    (
        "[servers.fs]\ncommand = \"x\"\nurl = \"http://h\"\n",
        &["3:1: [servers.fs] has both \"command\" and \"url\", set only one"],
    ),
    ("[servers.fs]\nenabled = true\n", &["1:10: [servers.fs] needs \"command\" (stdio) or \"url\" (http, sse)"]),
    (
        "[servers.api]\nurl = \"http://h\"\nargs = []\nenv = {}\ncwd = \"/\"\n",
        &[
            "3:1: \"args\" is only valid for stdio servers, [servers.api] uses transport \"http\"",
            "4:1: \"env\" is only valid for stdio servers, [servers.api] uses transport \"http\"",
            "5:1: \"cwd\" is only valid for stdio servers, [servers.api] uses transport \"http\"",
        ],
    ),
    (
        "[servers.fs]\ncommand = \"x\"\nheaders = { A = \"b\" }\n",
        &["3:1: \"headers\" is only valid for http and sse servers, [servers.fs] uses transport \"stdio\""],
    ),
    (
        "[servers.fs]\ntransport = \"stdio\"\nurl = \"http://h\"\n",
        &[
            "1:10: [servers.fs] uses transport \"stdio\" but has no \"command\"",
            "3:1: \"url\" is only valid for http and sse servers, [servers.fs] uses transport \"stdio\"",
        ],
    ),
    ("[servers.api]\ntransport = \"sse\"\n", &["1:10: [servers.api] uses transport \"sse\" but has no \"url\""]),
    (
        "[servers.a]\nurl = \"ftp://h\"\n[servers.b]\nurl = \"https://\"\n[servers.c]\nurl = \"localhost:80\"\n",
        &[
            "2:7: \"url\" must be an http:// or https:// url with a host",
            "4:7: \"url\" must be an http:// or https:// url with a host",
            "6:7: \"url\" must be an http:// or https:// url with a host",
        ],
    ),
    (
        "[servers.api]\nurl = \"http://h\"\nheaders = { \"Bad Name\" = \"x\" }\n",
        &["3:13: invalid http header name \"Bad Name\""],
    ),
    ("[servers.fs]\ncommand = \"x\"\nenv = { \"A=B\" = \"x\" }\n", &["3:9: invalid environment variable name \"A=B\""]),
    // Substitutions.
    (
        "[servers.fs]\ncommand = \"x\"\nenv = { A = \"${env:MISSING_VAR}\", B = \"${vault:x}\", C = \"${oops\" }\n",
        &[
            "3:13: environment variable MISSING_VAR is not set",
            "3:39: unknown substitution kind \"vault\", expected \"env\" or \"file\"",
            "3:57: unterminated \"${\" (write \"$${\" for a literal \"${\")",
        ],
    ),
    (
        "[servers.fs]\ncommand = \"${env:}\"\nargs = [\"${HOME}\", \"${file:}\"]\n",
        &[
            "2:11: empty variable name in ${env:}",
            "3:9: invalid substitution, expected ${env:NAME} or ${file:PATH}",
            "3:20: empty path in ${file:}",
        ],
    ),
    (
        "[servers.fs]\ncommand = \"x\"\nenv = { A = \"${env:NOPE_1}${env:NOPE_2}\" }\n",
        &["3:13: environment variable NOPE_1 is not set", "3:13: environment variable NOPE_2 is not set"],
    ),
    // Syntax errors are one problem for the file.
    ("[daemon]\nsocket = \"/x\nfoo = 1\n", &["2:13: invalid toml: invalid basic string, expected `\"`"]),
    ("[servers.fs]\ncommand = \"a\"\ncommand = \"b\"\n", &["3:1: invalid toml: duplicate key"]),
];

/// Loads each source and compares its problems with the expected ones; reports every mismatch.
fn assert_problem_cases(cases: impl IntoIterator<Item = (String, &'static [&'static str])>) {
    let mut failures = Vec::new();
    for (src, expected) in cases {
        let got = problems(&src);
        if got != expected {
            failures.push(format!(
                "--- source:\n{src}--- expected:\n{}\n--- got:\n{}\n",
                expected.join("\n"),
                got.join("\n")
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn problem_cases() {
    assert_problem_cases(CASES.iter().map(|(src, expected)| (src.to_string(), *expected)));
}

#[test]
fn several_problems_in_one_file_all_reported_in_order() {
    let src = r#"
[daemon]
log_format = "yaml"
call_timeout = "soon"

[servers.Bad]
comand = "x"

[servers.ok]
command = "x"
max_concurrency = 0
tools = { allow = ["a b"] }
"#;
    assert_eq!(
        problems(src),
        [
            "3:14: invalid value \"yaml\" for \"log_format\", expected one of \"text\", \"json\"",
            "4:16: invalid duration \"soon\" for \"call_timeout\", use e.g. \"500ms\", \"30s\", \"5m\" or an integer of milliseconds",
            "6:10: server name \"Bad\" must match [a-z0-9-]{1,32}",
            "6:10: [servers.Bad] needs \"command\" (stdio) or \"url\" (http, sse)",
            "7:1: unknown key \"comand\" in [servers.Bad], did you mean \"command\"?",
            "11:19: \"max_concurrency\" must be between 1 and 1024, found 0",
            "12:20: invalid tool pattern \"a b\" in \"tools.allow\", use only letters, digits, \"_\", \".\", \"-\", \"*\" and \"?\"",
        ]
    );
}

#[test]
fn config_error_display_is_one_problem_per_line() {
    let Err(e) = load_str("[daemon]\nbogus = 1\nlog_format = 1\n", Path::new("/etc/mcpd.toml"), &fake_env) else {
        panic!("expected problems");
    };
    assert_eq!(
        e.to_string(),
        "/etc/mcpd.toml:2:1: unknown key \"bogus\" in [daemon]\n\
         /etc/mcpd.toml:3:14: expected a string for \"log_format\", found an integer"
    );
    let as_error: &dyn std::error::Error = &e;
    assert!(as_error.source().is_none());
}

#[test]
fn columns_count_characters() {
    assert_eq!(problems("# héllo wörld\n[daemon]\n\"ünknown\" = 1\n"), ["3:1: unknown key \"ünknown\" in [daemon]"]);
    assert_eq!(problems("[daemon] # ä\nlog_level = \"\" # ö\n"), ["2:13: \"log_level\" must not be empty"]);
}

#[test]
fn reserved_top_level_tables_are_kept_raw() {
    let c = ok(r#"
[sampling]
max_tokens = 10
[policy]
deny = []
steps = [1, 2.5, true, 1979-05-27]
"#);
    let keys: Vec<_> = c.extra.keys().map(String::as_str).collect();
    assert_eq!(keys, ["policy"]);
    // `[sampling]` is parsed now, not kept raw.
    assert_eq!(c.sampling.max_tokens, 10);
    let steps = c.extra.get("policy").and_then(|p| p.get("steps")).and_then(toml::Value::as_array).map(Vec::len);
    assert_eq!(steps, Some(4));
}

#[test]
fn secrets_never_printed() {
    let c = ok(r#"
[servers.api]
url = "https://user:${env:GITHUB_TOKEN}@example.com/mcp?key=${env:GITHUB_TOKEN}"
headers = { Authorization = "Bearer ${env:GITHUB_TOKEN}" }

[servers.fs]
command = "x"
env = { TOKEN = "${env:GITHUB_TOKEN}" }
"#);
    let debug = format!("{c:?} {c:#?}");
    assert!(!debug.contains(SECRET), "{debug}");
    assert!(debug.contains("<redacted>"));
    assert!(debug.contains("example.com"));
    let Some(TransportConfig::Http { headers, .. }) = c.servers.get("api").map(|s| &s.transport) else {
        panic!("not http");
    };
    let auth = &headers["Authorization"];
    assert_eq!(auth.to_string(), "<redacted>");
    assert_eq!(format!("{auth:?}"), "<redacted>");

    // Problems caused by secret values must not echo them either.
    let Err(e) = load_str(
        r#"
[servers.a]
url = "notaurl/${env:GITHUB_TOKEN}"
[servers.b]
url = "https://h"
headers = { X = "${env:NEWLINE}" }
"#,
        Path::new("t.toml"),
        &fake_env,
    ) else {
        panic!("expected problems");
    };
    let shown = format!("{e} {e:?}");
    assert!(!shown.contains(SECRET), "{shown}");
    assert_eq!(
        e.to_string(),
        "t.toml:3:7: \"url\" must be an http:// or https:// url with a host\n\
         t.toml:6:17: value of header \"X\" is not a valid http header value"
    );
}

#[test]
fn secret_equality_compares_values() {
    assert_eq!(Secret::new("a"), Secret::new("a"));
    assert_ne!(Secret::new("a"), Secret::new("b"));
    assert_eq!(Secret::new("a").expose(), "a");
}

#[test]
fn changed_secret_changes_server_config() {
    let a = ok("[servers.fs]\ncommand = \"x\"\nenv = { A = \"1\" }\n");
    let b = ok("[servers.fs]\ncommand = \"x\"\nenv = { A = \"2\" }\n");
    assert_ne!(a.servers.get("fs"), b.servers.get("fs"));
}

#[test]
fn dollar_escape_and_plain_dollars() {
    let c = ok(r#"
[servers.fs]
command = "x"
env = { A = "$${env:HOME} costs $5 and $$x", B = "$$${env:HOST}$" }
"#);
    let Some(TransportConfig::Stdio { env, .. }) = c.servers.get("fs").map(|s| &s.transport) else {
        panic!("not stdio");
    };
    assert_eq!(env["A"].expose(), "${env:HOME} costs $5 and $$x");
    assert_eq!(env["B"].expose(), "$${env:HOST}$");
}

#[test]
fn file_substitution_trims_trailing_newlines() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("token"), "s3cr3t\n\n").unwrap();
    let origin = dir.path().join("mcpd.toml");
    let src = "[servers.fs]\ncommand = \"x\"\nenv = { T = \"${file:token}\" }\nargs = [\"${file:missing}\"]\n";
    let Err(e) = load_str(src, &origin, &fake_env) else {
        panic!("missing file must be a problem");
    };
    let missing = dir.path().join("missing");
    assert_eq!(
        e.problems.iter().map(|p| p.message.as_str()).collect::<Vec<_>>(),
        [format!("cannot read file \"{}\": no such file or directory (os error 2)", missing.display())]
    );
    let src = "[servers.fs]\ncommand = \"x\"\nenv = { T = \"${file:token}\" }\n";
    let c = load_str(src, &origin, &fake_env).unwrap();
    let Some(TransportConfig::Stdio { env, .. }) = c.servers.get("fs").map(|s| &s.transport) else {
        panic!("not stdio");
    };
    assert_eq!(env["T"].expose(), "s3cr3t");
}

fn write(path: &Path, text: &str) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(path, text).unwrap();
}

#[test]
fn includes_load_sorted_toml_files() {
    let dir = tempfile::tempdir().unwrap();
    let main = dir.path().join("mcpd.toml");
    write(
        &main,
        "[daemon]\ninclude = [\"servers.d\", \"extra.toml\"]\ncall_timeout = \"3s\"\n[servers.main]\ncommand = \"m\"\n",
    );
    write(&dir.path().join("servers.d/b.toml"), "[servers.b]\ncommand = \"b\"\n");
    write(&dir.path().join("servers.d/a.toml"), "[servers.a]\nurl = \"https://${env:HOST}/mcp\"\n");
    write(&dir.path().join("servers.d/notes.txt"), "not toml");
    write(&dir.path().join("servers.d/.hidden.toml"), "garbage = [");
    write(&dir.path().join("extra.toml"), "[servers.c]\ncommand = \"c\"\n");

    let c = match super::load::load_str(&std::fs::read_to_string(&main).unwrap(), &main, &fake_env) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    let names: Vec<_> = c.servers.keys().map(String::as_str).collect();
    assert_eq!(names, ["a", "b", "c", "main"]);
    assert_eq!(
        c.files,
        [
            main.clone(),
            dir.path().join("servers.d/a.toml"),
            dir.path().join("servers.d/b.toml"),
            dir.path().join("extra.toml"),
        ]
    );
    assert_eq!(c.daemon.include, [dir.path().join("servers.d"), dir.path().join("extra.toml")]);
    // Daemon defaults reach included servers too.
    assert_eq!(server(&c, "b").call_timeout, Duration::from_secs(3));
    let TransportConfig::Http { url, .. } = &server(&c, "a").transport else {
        panic!("not http");
    };
    assert_eq!(url, "https://example.com/mcp");
}

#[test]
fn include_problems() {
    let dir = tempfile::tempdir().unwrap();
    let main = dir.path().join("mcpd.toml");
    write(&main, "[daemon]\ninclude = [\"servers.d\", \"nope\"]\n\n[servers.fs]\ncommand = \"x\"\n");
    // Duplicate of the main file's server, plus a forbidden table.
    write(&dir.path().join("servers.d/10-dup.toml"), "[daemon]\nsocket = \"/x\"\n\n[servers.fs]\ncommand = \"y\"\n");
    // A syntax error here must not stop the next file from being checked.
    write(&dir.path().join("servers.d/20-broken.toml"), "[servers.x\n");
    write(&dir.path().join("servers.d/30-more.toml"), "[servers.more]\ncomand = \"z\"\n");
    let Err(e) = load(&main) else {
        panic!("expected problems");
    };
    let d = dir.path().display();
    let got: Vec<String> = e.problems.iter().map(ToString::to_string).collect();
    assert_eq!(
        got,
        [
            format!("{d}/mcpd.toml:2:25: cannot read include \"{d}/nope\": no such file or directory (os error 2)"),
            format!(
                "{d}/servers.d/10-dup.toml:1:2: only [servers.*] tables are allowed in included files, found \"daemon\""
            ),
            format!("{d}/servers.d/10-dup.toml:4:10: server \"fs\" is already defined at {d}/mcpd.toml:4:10"),
            format!("{d}/servers.d/20-broken.toml:1:11: invalid toml: unclosed table, expected `]`"),
            format!("{d}/servers.d/30-more.toml:1:10: [servers.more] needs \"command\" (stdio) or \"url\" (http, sse)"),
            format!(
                "{d}/servers.d/30-more.toml:2:1: unknown key \"comand\" in [servers.more], did you mean \"command\"?"
            ),
        ]
    );
}

#[test]
fn overlapping_includes_are_loaded_once() {
    let dir = tempfile::tempdir().unwrap();
    let main = dir.path().join("mcpd.toml");
    write(&main, "[daemon]\ninclude = [\".\", \"a.toml\"]\n");
    write(&dir.path().join("a.toml"), "[servers.a]\ncommand = \"a\"\n");
    let c = match load(&main) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(c.files, [main.clone(), dir.path().join("./a.toml")]);
    assert_eq!(c.servers.len(), 1);
}

#[test]
fn unreadable_main_file() {
    let Err(e) = load(Path::new("/nonexistent/mcpd.toml")) else {
        panic!("expected problems");
    };
    assert_eq!(
        e.to_string(),
        "/nonexistent/mcpd.toml:1:1: cannot read config file: no such file or directory (os error 2)"
    );
}

#[test]
fn durations() {
    let cases: &[(&str, Option<Duration>)] = &[
        ("500ms", Some(Duration::from_millis(500))),
        ("30s", Some(Duration::from_secs(30))),
        ("5m", Some(Duration::from_secs(300))),
        ("1h", Some(Duration::from_secs(3600))),
        ("1h 30m", Some(Duration::from_secs(5400))),
        (" 2s ", Some(Duration::from_secs(2))),
        ("0s", Some(Duration::ZERO)),
        ("30", None),
        ("", None),
        ("fast", None),
        ("-1s", None),
    ];
    for (text, expected) in cases {
        assert_eq!(parse_duration(text), *expected, "{text:?}");
    }
}

#[test]
fn sizes() {
    let cases: &[(&str, Option<u64>)] = &[
        ("0", Some(0)),
        ("1024", Some(1024)),
        ("512B", Some(512)),
        ("512KiB", Some(512 * 1024)),
        ("16MiB", Some(16 << 20)),
        ("16mib", Some(16 << 20)),
        ("2GiB", Some(2 << 30)),
        ("1KB", Some(1000)),
        ("1MB", Some(1_000_000)),
        ("3 GB", Some(3_000_000_000)),
        (" 7 KiB ", Some(7168)),
        ("MiB", None),
        ("1.5MiB", None),
        ("-1", None),
        ("1TiB", None),
        ("99999999999999999999", None),
        ("18446744073709551615GiB", None),
    ];
    for (text, expected) in cases {
        assert_eq!(parse_size(text), *expected, "{text:?}");
    }
}

#[test]
fn globs() {
    let cases: &[(&str, &str, bool)] = &[
        ("*", "anything", true),
        ("*", "", true),
        ("read_*", "read_file", true),
        ("read_*", "write_file", false),
        ("?s", "ls", true),
        ("?s", "lss", false),
        ("*_file", "read_file", true),
        ("a*b*c", "aXbYc", true),
        ("a*b*c", "aXbY", false),
        ("exact", "exact", true),
        ("exact", "exactly", false),
    ];
    for (glob, name, expected) in cases {
        assert_eq!(glob_match(glob, name), *expected, "{glob} vs {name}");
    }
}

#[test]
fn redacted_urls() {
    assert_eq!(redact_url("https://example.com"), "https://example.com");
    assert_eq!(redact_url("https://example.com/"), "https://example.com/");
    assert_eq!(redact_url("https://u:p@example.com:8443/mcp?k=v"), "https://<redacted>@example.com:8443/<redacted>");
    assert_eq!(redact_url("http://h?token=x"), "http://h/<redacted>");
    assert_eq!(redact_url("garbage"), "<redacted>");
}

#[test]
fn default_paths() {
    let id = |runtime: Option<&str>, state: Option<&str>, home: Option<&str>, root: bool| Identity {
        xdg_runtime_dir: runtime.map(Into::into),
        xdg_state_home: state.map(Into::into),
        home: home.map(Into::into),
        is_root: root,
        uid: 1000,
    };
    let user = id(Some("/run/user/1000"), Some("/home/u/.st"), Some("/home/u"), false);
    assert_eq!(socket_path(&user), Path::new("/run/user/1000/mcpd/mcpd.sock"));
    assert_eq!(state_dir(&user), Path::new("/home/u/.st/mcpd"));

    let bare = id(None, None, Some("/home/u"), false);
    assert_eq!(socket_path(&bare), Path::new("/tmp/mcpd-1000/mcpd.sock"));
    assert_eq!(state_dir(&bare), Path::new("/home/u/.local/state/mcpd"));

    // Empty or relative XDG values are ignored, as the XDG spec requires.
    let odd = id(Some(""), Some("rel"), None, false);
    assert_eq!(socket_path(&odd), Path::new("/tmp/mcpd-1000/mcpd.sock"));
    assert_eq!(state_dir(&odd), Path::new("/tmp/mcpd-1000/state"));

    let root = id(None, None, Some("/root"), true);
    assert_eq!(socket_path(&root), Path::new("/run/mcpd/mcpd.sock"));
    assert_eq!(state_dir(&root), Path::new("/var/lib/mcpd"));

    let c = ok("");
    assert_eq!(c.socket_path(), default_socket_path());
    assert_eq!(c.state_dir(), default_state_dir());
}

#[test]
fn exit_code_is_ex_config() {
    assert_eq!(EXIT_CONFIG, 78);
}

/// Every shipped example must load cleanly on a machine with the peers
/// installed (`MCPD_PEERS`) and the documented variables set.
#[test]
fn example_configs_are_valid() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config");
    let mut pending = vec![root];
    let mut checked = Vec::new();
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "toml") {
                let src = std::fs::read_to_string(&path).unwrap();
                if let Err(e) = load_str(&src, &path, &fake_env) {
                    panic!("{e}");
                }
                checked.push(path);
            }
        }
    }
    assert!(checked.len() >= 3, "{checked:?}");
}

#[test]
fn trust_and_policy_keys() {
    let c = ok(concat!(
        "[daemon]\napp_rate_limit = \"600/m\"\naudit_max_entries = 10\ntofu_window = \"5s\"\n",
        "[servers.a]\ncommand = \"x\"\ntrust = \"pinned\"\n",
        "pins = { echo = \"sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\" }\n",
        "rate_limit = \"10/s\"\ntool_rate_limits = { echo = \"2/10s\" }\nredact_secrets = false\nconfirm_destructive = true\n",
    ));
    assert_eq!(c.daemon.app_rate_limit.map(|r| r.to_string()).as_deref(), Some("600/m"));
    assert_eq!((c.daemon.audit_max_entries, c.daemon.tofu_window), (10, Duration::from_secs(5)));
    let s = server(&c, "a");
    assert_eq!(s.trust, TrustMode::Pinned);
    assert_eq!(s.pins.len(), 1);
    assert_eq!(s.tool_rate_limits["echo"].to_string(), "2/10s");
    assert!(!s.redact_secrets && s.confirm_destructive);
    let problems = problems(concat!(
        "[daemon]\napp_rate_limit = \"0/s\"\nmetrics_listen = \"10.0.0.1:9\"\n",
        "[servers.a]\ncommand = \"x\"\ntrust = \"sometimes\"\npins = { echo = \"md5:abc\" }\nrate_limit = \"fast\"\n",
    ));
    assert_eq!(problems.len(), 5, "{problems:#?}");
    assert!(problems.iter().any(|p| p.contains("app_rate_limit") && p.contains("at least 1 call")), "{problems:#?}");
    assert!(problems.iter().any(|p| p.contains("loopback")), "{problems:#?}");
    assert!(problems.iter().any(|p| p.contains("sometimes")), "{problems:#?}");
    assert!(problems.iter().any(|p| p.contains("sha256:<64")), "{problems:#?}");
    assert!(problems.iter().any(|p| p.contains("\"fast\"")), "{problems:#?}");
}

const PIPELINE_SERVERS: &str =
    "[servers.maps]\ncommand = \"m\"\n[servers.weather]\ncommand = \"w\"\n[servers.notify]\ncommand = \"n\"\n";

#[test]
fn pipelines_parse_into_the_model() {
    let c = ok(&format!(
        "{PIPELINE_SERVERS}{}",
        r#"
[[pipelines]]
name = "weather-report"
description = "Weather for a city"
input_schema = { type = "object", properties = { city = { type = "string" } }, required = ["city"] }
max_depth = 2
[[pipelines.steps]]
id = "geo"
tool = "maps.geocode"
args = { query = "{{input.city}}", limit = 1 }
[[pipelines.steps]]
id = "both"
parallel = [
  { id = "now", tool = "weather.current", args = { lat = "{{steps.geo.structured.lat}}" } },
  { id = "week", tool = "weather.forecast", args = { days = 7, at = "{{ steps.geo.structured.items.0.name }}" } },
]
[[pipelines.steps]]
id = "pick"
branch = [
  { when = { path = "steps.both.now.structured.rain", equals = true }, tool = "notify.send", args = { text = "umbrella" } },
  { when = { path = "steps.both.now.text", matches = "^snow" }, tool = "pipeline.tiny" },
]
default = { tool = "notify.send", args = { text = "no rain: {{steps.both.now.text}}" } }

[[pipelines]]
name = "tiny"
[[pipelines.steps]]
id = "only"
tool = "notify.send"
"#
    ));
    assert_eq!(c.pipelines.keys().collect::<Vec<_>>(), ["tiny", "weather-report"]);
    let p = &c.pipelines["weather-report"];
    assert_eq!((p.description.as_str(), p.max_depth), ("Weather for a city", 2));
    assert_eq!(p.input_schema.json()["required"], serde_json::json!(["city"]));
    assert!(p.input_schema.check(&serde_json::json!({"city": "Oslo"})).is_ok());
    assert!(p.input_schema.check(&serde_json::json!({})).is_err());
    assert_eq!(p.steps.len(), 3);
    match &p.steps[0].kind {
        StepKind::Call(call) => {
            assert_eq!(call.tool, "maps.geocode");
            assert_eq!(
                serde_json::Value::Object(call.args.clone()),
                serde_json::json!({"query": "{{input.city}}", "limit": 1})
            );
        }
        other => panic!("{other:?}"),
    }
    match &p.steps[1].kind {
        StepKind::Parallel(branches) => {
            let ids: Vec<_> = branches.iter().map(|b| b.id.as_str()).collect();
            assert_eq!(ids, ["now", "week"]);
            assert_eq!(branches[1].call.args["days"], 7);
        }
        other => panic!("{other:?}"),
    }
    match &p.steps[2].kind {
        StepKind::Branch { routes, default } => {
            assert_eq!(routes[0].when.path, "steps.both.now.structured.rain");
            assert_eq!(routes[0].when.test, ConditionTest::Equals(serde_json::json!(true)));
            assert!(matches!(&routes[1].when.test, ConditionTest::Matches(p) if p.as_str() == "^snow"));
            assert_eq!(routes[1].call.tool, "pipeline.tiny");
            assert!(routes[1].call.args.is_empty());
            assert_eq!(default.tool, "notify.send");
        }
        other => panic!("{other:?}"),
    }
    let tiny = &c.pipelines["tiny"];
    assert_eq!((tiny.max_depth, tiny.description.as_str()), (PIPELINE_DEFAULT_DEPTH, ""));
    assert_eq!(tiny.input_schema, InputSchema::default());
}

#[test]
fn pipeline_problems_all_reported() {
    let src = format!(
        "{PIPELINE_SERVERS}{}",
        r#"
[[pipelines]]
name = "Bad Name"
max_depth = 9
colour = "red"
[[pipelines.steps]]
id = "a-b"
tool = "mapz.geocode"
[[pipelines.steps]]
id = "two"
tool = "maps.x"
parallel = [{ id = "p", tool = "maps.y" }]
[[pipelines.steps]]
id = "three"
tool = "maps.z"
args = { a = "{{steps.four.text}}", b = "{{steps.nope.text}}", c = "{{input.x", d = "{{steps.three.text}}", e = "{{output.x}}" }
[[pipelines.steps]]
id = "four"
branch = [{ when = { path = "steps.three.txt", matches = "(" }, tool = "notify.send" }]
[[pipelines.steps]]
id = "four"
tool = "maps.geocode"

[[pipelines]]
name = "loop-a"
input_schema = { type = "object", properties = { city = { type = "string" } } }
[[pipelines.steps]]
id = "x"
tool = "pipeline.loop-b"
args = { q = "{{input.cty}}" }
[[pipelines.steps]]
id = "y"
parallel = [{ id = "p", tool = "maps.a" }, { id = "p", tool = "pipeline.nowhere" }]
[[pipelines.steps]]
id = "z"
tool = "maps.b"
args = { v = "{{steps.y.q.text}}", w = "{{steps.y}}", u = "{{steps.x.structured.k}}" }

[[pipelines]]
name = "loop-b"
[[pipelines.steps]]
id = "x"
tool = "pipeline.loop-a"

[[pipelines]]
name = "loop-b"
[[pipelines.steps]]
id = "x"
tool = "notify"
"#
    );
    let expected = [
        "9:8: pipeline name \"Bad Name\" must match [a-z0-9-]{1,32}",
        "10:13: \"max_depth\" must be between 1 and 8, found 9",
        "11:1: unknown key \"colour\" in pipeline \"Bad Name\"",
        "13:6: step id \"a-b\" must match [a-z0-9_]{1,32}",
        "14:8: tool \"mapz.geocode\" names server \"mapz\", which is not configured (nor \"pipeline\"), did you mean \"maps\"?",
        "16:1: step \"two\" has \"tool\" and \"parallel\"; a step is exactly one of \"tool\", \"parallel\" or \"branch\"",
        "22:14: in {{steps.four.text}}: step \"four\" runs later; a step can only use the results of earlier steps",
        "22:41: in {{steps.nope.text}}: unknown step \"nope\"",
        "22:68: invalid template: \"{{\" is not closed by \"}}\"",
        "22:85: in {{steps.three.text}}: step \"three\" cannot use its own result",
        "22:113: in {{output.x}}: unknown reference root \"output\"; references start with input or steps",
        "25:1: step \"four\" has \"branch\" but no \"default\" (the route taken when no condition holds)",
        "25:29: in \"path\" \"steps.three.txt\": unknown field \"txt\" of \"three\" (fields: text, structured, error, is_error, tool), did you mean \"text\"?",
        "25:58: invalid regex \"(\" for \"matches\": unclosed group",
        "27:6: step id \"four\" is used twice in this pipeline",
        "35:8: pipelines call each other in a cycle: pipeline.loop-a → pipeline.loop-b → pipeline.loop-a",
        "36:14: in {{input.cty}}: input_schema has no property \"cty\", did you mean \"city\"?",
        "39:51: branch id \"p\" is used twice in this step",
        "39:63: unknown pipeline \"nowhere\" in tool \"pipeline.nowhere\"",
        "43:14: in {{steps.y.q.text}}: step \"y\" has no branch \"q\" (branches: p)",
        "43:40: in {{steps.y}}: step \"y\" is parallel: name a branch, e.g. steps.y.BRANCH.text (branches: p)",
        "52:8: pipeline \"loop-b\" is already defined at line 46, column 8",
        "55:8: tool \"notify\" must be \"server.tool\" or \"pipeline.NAME\"",
    ];
    assert_eq!(problems(&src), expected);
}

/// (pipelines source, after two lines of [servers.maps]; expected problems as "line:col: message").
const PIPELINE_CASES: &[(&str, &[&str])] = &[
    (
        "[pipelines.a]
steps = []
",
        &["3:2: expected an array of tables ([[pipelines]]) for \"pipelines\""],
    ),
    (
        "[[pipelines]]
name = \"a\"
",
        &["4:1: pipeline \"a\" needs at least one [[pipelines.steps]]"],
    ),
    (
        "[[pipelines]]
name = \"a\"
steps = []
",
        &["5:9: \"steps\" must not be empty"],
    ),
    (
        "[[pipelines]]\ndescription = \"x\"\n[[pipelines.steps]]\nid = \"s\"\ntool = \"maps.a\"\n",
        &["4:1: a pipeline needs a \"name\""],
    ),
    (
        "[[pipelines]]\nname = \"a\"\n[[pipelines.steps]]\nid = \"s\"\nargs = { x = 1 }\ndefault = { tool = \"maps.a\" }\n",
        &["6:1: step \"s\" needs one of \"tool\", \"parallel\" or \"branch\""],
    ),
    (
        "[[pipelines]]\nname = \"a\"\n[[pipelines.steps]]\nid = \"s\"\nparallel = [{ id = \"p\", tool = \"maps.a\" }]\nargs = { x = 1 }\ndefault = { tool = \"maps.a\" }\n",
        &[
            "8:1: \"args\" belongs with \"tool\"; step \"s\" has none",
            "9:1: \"default\" belongs with \"branch\"; step \"s\" has none",
        ],
    ),
    (
        "[[pipelines]]\nname = \"a\"\ninput_schema = { type = \"string\" }\n[[pipelines.steps]]\nid = \"s\"\ntool = \"maps.a\"\n",
        &["5:16: \"input_schema\" must describe an object (type = \"object\"), found type \"string\""],
    ),
    (
        "[[pipelines]]\nname = \"a\"\ninput_schema = { type = \"object\", properties = 3 }\n[[pipelines.steps]]\nid = \"s\"\ntool = \"maps.a\"\n",
        &["5:16: \"input_schema\" is not a valid JSON Schema: 3 is not of type \"object\""],
    ),
    (
        "[[pipelines]]\nname = \"a\"\n[[pipelines.steps]]\nid = \"s\"\nbranch = [{ when = { path = \"input.x\", exists = true, equals = 1 }, tool = \"maps.a\" }, { tool = \"maps.b\" }]\ndefault = { tool = \"maps.c\", args = { v = \"{{}}\" } }\n",
        &[
            "7:20: \"when\" needs exactly one test of: equals, not_equals, contains, exists, matches; found 2",
            "7:88: a branch route needs \"when\" (routes without a condition go in \"default\")",
            "8:43: invalid template: {{}}: empty reference, use e.g. {{input.NAME}} or {{steps.ID.text}}",
        ],
    ),
    (
        "[[pipelines]]\nname = \"a\"\n[[pipelines.steps]]\nid = \"s\"\ntool = \"pipeline.a\"\nargs = { deep = { list = [\"{{steps.s.text}}\"] } }\n",
        &[
            "7:8: pipelines call each other in a cycle: pipeline.a → pipeline.a",
            "8:27: in {{steps.s.text}}: step \"s\" cannot use its own result",
        ],
    ),
    (
        "[[pipelines]]\nname = \"a\"\n[[pipelines.steps]]\nid = \"s\"\ntool = \"maps.a\"\n[[pipelines.steps]]\nid = \"t\"\ntool = \"maps.a\"\nargs = { a = \"{{steps.s}}\", b = \"{{steps.s.text.x}}\", c = \"{{steps.s.route}}\", d = \"{{steps.s.structured.0.x-y}}\", e = \"{{ input }}\" }\n",
        &[
            "11:14: in {{steps.s}}: name a field of \"s\": text, structured, error, is_error, tool",
            "11:33: in {{steps.s.text.x}}: \"text\" of \"s\" has no fields (only structured does)",
            "11:59: in {{steps.s.route}}: unknown field \"route\" of \"s\" (fields: text, structured, error, is_error, tool)",
        ],
    ),
];

#[test]
fn pipeline_problem_cases() {
    assert_problem_cases(
        PIPELINE_CASES.iter().map(|(src, expected)| (format!("[servers.maps]\ncommand = \"m\"\n{src}"), *expected)),
    );
}

#[test]
fn pipelines_may_use_servers_from_includes() {
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("servers.d/maps.toml"), "[servers.maps]\ncommand = \"m\"\n");
    let main = dir.path().join("mcpd.toml");
    let src = "[daemon]\ninclude = [\"servers.d\"]\n[[pipelines]]\nname = \"p\"\n[[pipelines.steps]]\nid = \"s\"\ntool = \"maps.geocode\"\n";
    let c = match load_str(src, &main, &fake_env) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(c.pipelines["p"].steps[0].id, "s");
    // Pipelines stay in the main file.
    write(&dir.path().join("servers.d/more.toml"), "[[pipelines]]\nname = \"q\"\n");
    let err = load_str(src, &main, &fake_env).map(|_| ()).unwrap_err();
    assert!(err.to_string().contains("only [servers.*] tables are allowed"), "{err}");
}

fn llm_env(name: &str) -> Option<String> {
    match name {
        "OPENAI_API_KEY" => Some("sk-openai-secret".to_owned()),
        "ORG_TOKEN" => Some("org-secret".to_owned()),
        other => fake_env(other),
    }
}

#[test]
fn llm_providers_with_defaults_and_every_key() {
    let src = r#"
[llm.openai]
kind = "openai"
api_key = "${env:OPENAI_API_KEY}"
model = "gpt-4o-mini"

[llm.claude-2]
kind = "anthropic"
base_url = "http://${env:HOST}:8080/"
api_key = "${env:GITHUB_TOKEN}"
model = "claude-x"
timeout = "2m"
max_retries = 0
max_tokens = 1024
headers = { anthropic-beta = "tools-2024-05-16", X-Org = "${env:ORG_TOKEN}" }
"#;
    let c = match load_str(src, Path::new("/etc/mcpd/mcpd.toml"), &llm_env) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(c.llm.keys().collect::<Vec<_>>(), ["claude-2", "openai"]);
    let mut expected = LlmConfig::with_defaults("openai".into(), LlmKind::OpenAi, "gpt-4o-mini".into());
    expected.api_key = Some(Secret::new("sk-openai-secret"));
    assert_eq!(c.llm["openai"], expected);
    assert_eq!(expected.base_url, "https://api.openai.com/v1");
    assert_eq!((expected.timeout, expected.max_retries, expected.max_tokens), (Duration::from_secs(60), 3, 4096));

    let a = &c.llm["claude-2"];
    assert_eq!(a.kind, LlmKind::Anthropic);
    assert_eq!(a.base_url, "http://example.com:8080");
    assert_eq!(a.api_key.as_ref().map(Secret::expose), Some(SECRET));
    assert_eq!(
        (a.model.as_str(), a.timeout, a.max_retries, a.max_tokens),
        ("claude-x", Duration::from_secs(120), 0, 1024)
    );
    assert_eq!(a.headers.get("X-Org").map(Secret::expose), Some("org-secret"));
    assert_eq!(a.headers.get("anthropic-beta").map(Secret::expose), Some("tools-2024-05-16"));
    // No key reaches Debug output.
    let debug = format!("{c:?}");
    for secret in ["sk-openai-secret", SECRET, "org-secret"] {
        assert!(!debug.contains(secret), "{debug}");
    }
    assert!(!c.extra.contains_key("llm"));
}

#[test]
fn llm_problems_all_reported() {
    let src = r#"[llm.a]
kind = "gemini"
model = "m"

[llm.b]
kind = "openai"
api_key = "sk-live-inline-key"
model = "m"
modle = "x"
base_url = "ftp://example.com"

[llm.c]
kind = "anthropic"
api_key = "${env:GITHUB_TOKEN}"
headers = { X-Api-Key = "k" }

[llm.Bad_Name]
kind = "openai"
model = ""
max_retries = 11
max_tokens = 0
timeout = "0s"
base_url = "http://x/v1?key=1"
api_key = "Bearer ${env:GITHUB_TOKEN}"

[llm.d]
model = "m"
api_key = "${env:NOT_SET}"

[llm.e]
kind = "openai"
model = "m"
api_key = "${env:NEWLINE}"
"#;
    let found = problems(src);
    assert_eq!(
        found,
        [
            "2:8: invalid value \"gemini\" for \"kind\", expected one of \"openai\", \"anthropic\"",
            "7:11: \"api_key\" must not be written inline: put the key in an environment variable or a file and write ${env:NAME} (or ${file:PATH})",
            "9:1: unknown key \"modle\" in [llm.b], did you mean \"model\"?",
            "10:12: \"base_url\" must be an http:// or https:// url with a host",
            "12:6: [llm.c] needs \"model\" (the model asked for by default)",
            "15:13: header \"X-Api-Key\" conflicts with \"api_key\" (kind \"anthropic\" sends the key in it); set only one",
            "17:6: LLM provider name \"Bad_Name\" must match [a-z0-9-]{1,32}",
            "19:9: \"model\" must not be empty",
            "20:15: \"max_retries\" must be between 0 and 10, found 11",
            "21:14: \"max_tokens\" must be between 1 and 1000000, found 0",
            "22:11: \"timeout\" must be greater than zero",
            "23:12: \"base_url\" must not have a query or fragment: request paths are appended to it",
            "24:11: \"api_key\" must not be written inline: put the key in an environment variable or a file and write ${env:NAME} (or ${file:PATH})",
            "26:6: [llm.d] needs \"kind\" (\"openai\" or \"anthropic\")",
            "28:11: environment variable NOT_SET is not set",
            "33:11: \"api_key\" is not a valid http header value (does the variable or file hold a newline?)",
        ]
    );
    // An inline key is never echoed back.
    assert!(found.iter().all(|p| !p.contains("sk-live-inline-key") && !p.contains(SECRET)), "{found:#?}");
    // `llm` must be a table of tables.
    assert_eq!(problems("llm = 1\n"), ["1:7: expected a table for \"llm\", found an integer"]);
    assert_eq!(problems("[llm]\nx = \"y\"\n"), ["2:5: expected a table for \"llm.x\", found a string"]);
}

/// The commented-out `[llm.local]` example in config/mcpd.example.toml is valid once uncommented.
#[test]
fn example_llm_table_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/mcpd.example.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let start = text.find("# [llm.local]").expect("an [llm.local] example");
    let table: String = text[start..]
        .lines()
        .take_while(|l| l.starts_with('#'))
        .filter_map(|l| l.strip_prefix("# "))
        .filter(|l| !l.starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect();
    let env = |name: &str| (name == "LOCAL_LLM_KEY").then(|| "local-key".to_owned());
    match load_str(&table, &path, &env) {
        Ok(c) => assert_eq!(c.llm["local"].kind, LlmKind::OpenAi, "{table}"),
        Err(e) => panic!("{e}\n{table}"),
    }
}

#[test]
fn sampling_and_roots() {
    let c = ok(concat!(
        "[sampling]\nroute = \"llm\"\nrate = \"10/m\"\n",
        "[servers.a]\ncommand = \"x\"\nroots = [\"/srv/a\", \"file:///srv/b\"]\n",
        "sampling = { route = \"llm:local\", max_concurrent = 1 }\n",
        "[servers.b]\ncommand = \"x\"\n",
    ));
    assert_eq!(c.sampling.route, SamplingRoute::Llm(None));
    let a = server(&c, "a");
    assert_eq!(a.roots, vec!["file:///srv/a".to_owned(), "file:///srv/b".to_owned()]);
    let sa = a.sampling.as_ref().expect("override");
    assert_eq!(sa.route, SamplingRoute::Llm(Some("local".into())));
    assert_eq!(sa.max_concurrent, 1);
    assert!(server(&c, "b").sampling.is_none());
    let p = problems(concat!(
        "[sampling]\nroute = \"sometimes\"\nmax_tokens = 0\n",
        "[servers.a]\ncommand = \"x\"\nroots = [\"relative/dir\"]\nsampling = { rout = \"app\" }\n",
    ));
    assert_eq!(p.len(), 4, "{p:#?}");
    assert!(p.iter().any(|m| m.contains("sometimes")), "{p:#?}");
    assert!(p.iter().any(|m| m.contains("relative/dir")), "{p:#?}");
    assert!(p.iter().any(|m| m.contains("did you mean \"route\"")), "{p:#?}");
}

#[test]
fn oauth_client_credentials() {
    let c = ok(concat!(
        "[servers.api]\nurl = \"https://mcp.example.com/mcp\"\n",
        "oauth = { grant = \"client_credentials\", client_id = \"mcpd\", client_secret = \"${env:GITHUB_TOKEN}\", scopes = [\"mcp:read\"] }\n",
    ));
    let o = server(&c, "api").oauth.as_ref().expect("oauth");
    assert_eq!(o.grant, crate::OAuthGrant::ClientCredentials);
    assert_eq!((o.client_id.as_deref(), o.scopes.as_slice()), (Some("mcpd"), &["mcp:read".to_owned()][..]));
    let secret = o.client_secret.as_ref().expect("secret").expose();
    assert!(!format!("{o:?}").contains(secret), "the secret leaks through Debug");
    let p = problems(concat!(
        "[servers.api]\nurl = \"https://mcp.example.com/mcp\"\n",
        "oauth = { client_id = \"mcpd\", client_secret = \"hunter2\", scope = [] }\n",
    ));
    assert!(p.iter().any(|m| m.contains("not be written inline")), "{p:#?}");
    assert!(p.iter().any(|m| m.contains("did you mean \"scopes\"")), "{p:#?}");
}

#[test]
fn oauth_authorization_code() {
    // The default grant; everything optional (dynamic registration, scopes from the challenge).
    let c = ok("[servers.api]\nurl = \"https://mcp.example.com/mcp\"\n[servers.api.oauth]\n");
    let o = server(&c, "api").oauth.as_ref().expect("oauth");
    assert_eq!(o.grant, crate::OAuthGrant::AuthorizationCode);
    assert_eq!((o.client_id.as_deref(), o.redirect_port, o.allow_loopback), (None, 0, false));
    let c = ok(concat!(
        "[servers.api]\nurl = \"http://127.0.0.1:9/mcp\"\n[servers.api.oauth]\n",
        "client_id = \"pre\"\nclient_metadata_url = \"https://mcpd.example/client.json\"\nredirect_port = 8765\n",
        "login_command = [\"xdg-open\"]\nallow_loopback = true\nallow = [\"10.1.0.0/16\", \"idp.corp\"]\nscopes = [\"a\", \"b\"]\n",
    ));
    let o = server(&c, "api").oauth.as_ref().expect("oauth");
    assert_eq!(o.client_metadata_url.as_deref(), Some("https://mcpd.example/client.json"));
    assert_eq!((o.redirect_port, o.login_command.len(), o.allow.len()), (8765, 1, 2));
    // Every problem at once.
    let p = problems(concat!(
        "[servers.api]\nurl = \"https://mcp.example.com/mcp\"\n[servers.api.oauth]\n",
        "grant = \"password\"\nclient_secret = \"${env:GITHUB_TOKEN}\"\nclient_metadata_url = \"http://x.example/c.json\"\n",
        "redirect_port = 70000\nlogin_command = []\nallow = [\"10.0.0.0/99\"]\n",
        "[servers.cli]\ncommand = \"x\"\n[servers.cli.oauth]\n",
        "[servers.m2m]\nurl = \"https://m.example/mcp\"\noauth = { grant = \"client_credentials\" }\n",
    ));
    for want in [
        "invalid value \"password\"",
        "\"client_secret\" without \"client_id\"",
        "must be an https:// URL with a path",
        "between 0 and 65535",
        "needs at least the program",
        "10.0.0.0/99",
        "needs transport \"http\"",
        "needs \"client_id\" and one of \"client_secret\" or \"private_key\"",
    ] {
        assert!(p.iter().any(|m| m.contains(want)), "missing {want:?} in {p:#?}");
    }
}

#[test]
fn oauth_private_key_jwt() {
    let c = ok(concat!(
        "[servers.m2m]\nurl = \"https://m.example/mcp\"\n",
        "oauth = { grant = \"client_credentials\", client_id = \"svc\", private_key = \"${env:GITHUB_TOKEN}\", signing_algorithm = \"ES256\" }\n",
    ));
    let o = server(&c, "m2m").oauth.as_ref().expect("oauth");
    assert_eq!(o.signing_algorithm, crate::JwtAlgorithm::Es256);
    assert!(o.private_key.is_some() && o.client_secret.is_none());
    let p = problems(concat!(
        "[servers.a]\nurl = \"https://a.example/mcp\"\n",
        "oauth = { grant = \"client_credentials\", client_id = \"svc\", private_key = \"-----BEGIN\", signing_algorithm = \"HS256\" }\n",
        "[servers.b]\nurl = \"https://b.example/mcp\"\n",
        "oauth = { grant = \"client_credentials\", client_id = \"svc\", client_secret = \"${env:GITHUB_TOKEN}\", private_key = \"${env:GITHUB_TOKEN}\" }\n",
        "[servers.c]\nurl = \"https://c.example/mcp\"\noauth = { private_key = \"${env:GITHUB_TOKEN}\" }\n",
    ));
    for want in [
        "\"oauth.private_key\" must come from ${env:NAME} or ${file:PATH}",
        "invalid value \"HS256\" for \"oauth.signing_algorithm\"",
        "[servers.b.oauth] grant \"client_credentials\" needs \"client_id\" and one of",
        "[servers.c.oauth] \"private_key\" (private_key_jwt) needs grant \"client_credentials\"",
    ] {
        assert!(p.iter().any(|m| m.contains(want)), "missing {want:?} in {p:#?}");
    }
}

#[test]
fn substituted_values_are_secrets_and_the_source_keeps_the_templates() {
    let env = |name: &str| match name {
        "TOKEN" => Some("s3cr3t-token-value".to_owned()),
        "SHORT" => Some("on".to_owned()),
        _ => None,
    };
    let src = r#"
[servers.a]
command = "run"
args = ["--token=${env:TOKEN}", "--flag=${env:SHORT}"]
env = { INLINE = "inline-secret-1" }
[servers.b]
url = "https://example.com/mcp?api_key=${env:TOKEN}"
headers = { Authorization = "Bearer ${env:TOKEN}" }
"#;
    let c = crate::load_str(src, Path::new("/etc/mcpd/mcpd.toml"), &env).unwrap();
    // Longest first; short values are no secrets; duplicates once.
    let secrets: Vec<&str> = c.secrets.iter().map(Secret::expose).collect();
    assert_eq!(secrets, ["Bearer s3cr3t-token-value", "s3cr3t-token-value", "inline-secret-1"]);
    let a = server(&c, "a");
    assert_eq!(a.source, r#"["run",["--token=${env:TOKEN}","--flag=${env:SHORT}"]]"#);
    assert_eq!(server(&c, "b").source, "https://example.com/mcp?api_key=${env:TOKEN}");
}

#[test]
fn mcp_front_end_settings_and_profiles_parse() {
    let c = ok(concat!(
        "[daemon]\nmcp_listen = \"127.0.0.1:8765\"\nmcp_token = \"${file:mcp.token}\"\n",
        "mcp_origins = [\"http://localhost:6274\"]\n",
        "[servers.a]\ncommand = \"x\"\n[servers.b]\ncommand = \"y\"\n",
        "[profiles.coding]\nservers = [\"a\", \"pipeline\"]\nnames = \"alias\"\ntools = { deny = [\"a.rm*\"] }\n",
        "[profiles.one]\nservers = [\"b\"]\nnames = \"bare\"\ndiscovery = \"search\"\n",
    ));
    let m = &c.daemon.mcp;
    assert_eq!(m.listen, Some("127.0.0.1:8765".parse().unwrap()));
    assert_eq!(m.auth, McpAuth::Token);
    assert_eq!(m.token_file.as_deref(), Some(Path::new("/etc/mcpd/mcp.token")));
    assert_eq!(m.origins, vec!["http://localhost:6274".to_owned()]);
    let p = &c.profiles["coding"];
    assert_eq!(p.names, NameStyle::Alias);
    assert!(p.serves("a") && p.serves("pipeline") && !p.serves("b"));
    assert!(p.tools.allows("a.echo") && !p.tools.allows("a.rm_rf"));
    assert_eq!(c.profiles["one"].names, NameStyle::Bare);
    assert_eq!(c.profiles["one"].discovery, crate::Discovery::Search);
    assert_eq!(p.discovery, crate::Discovery::List);
    // Off by default.
    assert_eq!(ok("").daemon.mcp, McpHttpConfig::default());
}

#[test]
fn mcp_front_end_mistakes_are_all_reported() {
    let problems = problems(concat!(
        "[daemon]\nmcp_listen = \"0.0.0.0:8765\"\nmcp_auth = \"none\"\nmcp_token = \"hunter2hunter2\"\n",
        "mcp_tls_cert = \"cert.pem\"\nmcp_origins = [\"localhost\"]\n",
        "[servers.a]\ncommand = \"x\"\n",
        "[profiles.x]\nservers = [\"a\", \"nope\"]\n",
        "[profiles.y]\nnames = \"bare\"\ncolour = 1\ndiscovery = \"grep\"\n",
        "[profiles.Bad]\n",
    ));
    for needle in [
        "\"mcp_token\" must be \"${file:PATH}\"",
        "invalid origin \"localhost\"",
        "set both or neither",
        "loopback \"mcp_listen\" only",
        "names server \"nope\"",
        "unknown key \"colour\" in [profiles.y]",
        "invalid value \"grep\" for \"discovery\"",
        "invalid profile name \"Bad\"",
    ] {
        assert!(problems.iter().any(|p| p.contains(needle)), "{needle}: {problems:#?}");
    }
    // The token never appears in a message.
    assert!(!problems.iter().any(|p| p.contains("hunter2")), "{problems:#?}");
    let model = super::tests::problems("[daemon]\nsearch_model = \"/nonexistent/model\"\n");
    assert!(model.len() == 1 && model[0].contains("has no tokenizer.json or model.safetensors"), "{model:#?}");
    let open = super::tests::problems("[daemon]\nmcp_listen = \"192.0.2.1:8765\"\n");
    assert!(open.len() == 1 && open[0].contains("needs TLS"), "{open:#?}");
    let bare = super::tests::problems("[servers.a]\ncommand = \"x\"\n[profiles.y]\nnames = \"bare\"\n");
    assert!(bare.iter().any(|p| p.contains("exactly one server")), "{bare:#?}");
}

/// Property tests (proptest; `PROPTEST_CASES` raises the bounded count CI runs): the loader
/// and the import take any text without panicking, report problems with positions inside
/// the text, and a damaged real config is refused or loaded, never half-applied.
mod props {
    use proptest::prelude::*;

    use super::*;

    const EXAMPLE: &str = include_str!("../../../config/mcpd.example.toml");

    fn config() -> ProptestConfig {
        let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(64);
        ProptestConfig { cases, ..ProptestConfig::default() }
    }

    fn load(src: &str) -> Result<Config, crate::ConfigError> {
        crate::load_str(src, Path::new("/etc/mcpd/mcpd.toml"), &|_| Some("value-from-env".into()))
    }

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn any_text_is_loaded_or_refused_with_every_problem_placed(src in any::<String>()) {
            if let Err(e) = load(&src) {
                prop_assert!(!e.problems.is_empty());
                let lines = src.lines().count().max(1);
                for p in e.problems.iter().filter(|p| p.file == Path::new("/etc/mcpd/mcpd.toml")) {
                    prop_assert!(p.line >= 1 && p.line <= lines + 1, "{p} beyond {lines} lines");
                }
            }
        }

        #[test]
        fn a_damaged_example_config_is_loaded_or_refused(at in 0usize..EXAMPLE.len(), len in 0usize..64, junk in any::<String>()) {
            let mut src = EXAMPLE.to_owned();
            let start = (0..=at).rev().find(|i| src.is_char_boundary(*i)).unwrap_or(0);
            let end = (start + len).min(src.len());
            let end = (end..=src.len()).find(|i| src.is_char_boundary(*i)).unwrap_or(src.len());
            src.replace_range(start..end, &junk);
            let _ = load(&src);
        }

        #[test]
        fn any_client_config_is_imported_or_refused(src in any::<String>()) {
            let _ = crate::import::import(&src, None);
        }

        #[test]
        fn json_shaped_client_configs_import_to_toml_that_loads(names in proptest::collection::vec("[a-zA-Z0-9 _.-]{1,20}", 1..6), cmd in "[a-z/]{1,12}") {
            let servers: serde_json::Map<String, serde_json::Value> = names
                .iter()
                .map(|n| (n.clone(), serde_json::json!({"command": cmd, "args": ["--flag", n]})))
                .collect();
            let src = serde_json::json!({"mcpServers": servers}).to_string();
            if let Ok(imported) = crate::import::import(&src, None) {
                // What import writes is a config the loader accepts (its own check says so too).
                prop_assert!(load(&imported.toml).is_ok(), "{}", imported.toml);
            }
        }
    }
}
