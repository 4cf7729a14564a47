//! Tests for the secret filter. Fake secrets are assembled at run time so that this file
//! itself never holds a string that a secret scanner would flag.
use std::time::Instant;

use serde_json::json;

use super::*;

/// `n` characters cycling through `alphabet`, for correctly shaped fake tokens.
fn fill(alphabet: &str, n: usize) -> String {
    alphabet.chars().cycle().take(n).collect()
}

const ALNUM: &str = "a1B2c3D4e5F6g7H8i9J0kLmNoPqRsTuVwXyZ";
const HEX: &str = "0123456789abcdef";

fn kinds(found: &[Redaction]) -> Vec<&'static str> {
    found.iter().map(|r| r.kind).collect()
}

/// Redacts `text` and checks that `secret` is gone and that exactly `kind` was reported.
#[track_caller]
fn assert_caught(kind: &str, text: &str, secret: &str) -> String {
    let (out, found) = redact_text(text);
    assert!(!out.contains(secret), "{kind}: secret survived in {out:?}");
    assert!(out.contains(&format!("[REDACTED:{kind}]")), "{kind}: no marker in {out:?}");
    assert_eq!(kinds(&found), vec![kind], "{kind}: reported {found:?} for {text:?}");
    out.into_owned()
}

#[test]
fn every_rule_compiles() {
    assert!(RULES.len() >= 20);
    assert!(secret_key("password").is_some());
}

#[test]
fn private_keys_whole_block() {
    let body = format!("{}\n{}\n{}=", fill(ALNUM, 64), fill(ALNUM, 64), fill(ALNUM, 20));
    for label in ["RSA PRIVATE KEY", "PRIVATE KEY", "EC PRIVATE KEY", "OPENSSH PRIVATE KEY", "ENCRYPTED PRIVATE KEY"] {
        let pem = format!("-----BEGIN {label}-----\n{body}\n-----END {label}-----");
        let out = assert_caught("private_key", &format!("key file:\n{pem}\ndone"), &body[..64]);
        assert_eq!(out, "key file:\n[REDACTED:private_key]\ndone");
    }
    let pgp = format!(
        "-----BEGIN PGP PRIVATE KEY BLOCK-----\nVersion: GnuPG v2\n\n{body}\n-----END PGP PRIVATE KEY BLOCK-----"
    );
    assert_eq!(assert_caught("private_key", &pgp, &body[..64]), "[REDACTED:private_key]");
    // Cut off by a size limit: the part that is there still goes, the prose after it stays.
    let truncated = format!(
        "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n{}\n{}\n(truncated)",
        &body[..64],
        &body[65..129]
    );
    assert_eq!(assert_caught("private_key", &truncated, &body[..64]), "[REDACTED:private_key]\n(truncated)");
    // A public key is not a secret.
    let public = format!("-----BEGIN PUBLIC KEY-----\n{body}\n-----END PUBLIC KEY-----");
    assert!(matches!(redact_text(&public).0, Cow::Borrowed(_)));
}

#[test]
fn aws_keys() {
    let id = format!("AKIA{}", fill("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16));
    assert_eq!(
        assert_caught("aws_access_key_id", &format!("id={id} region=us-east-1"), &id),
        "id=[REDACTED:aws_access_key_id] region=us-east-1"
    );
    let sts = format!("ASIA{}", fill("QRSTUV0123456789", 16));
    assert_caught("aws_access_key_id", &format!("\"AccessKeyId\": \"{sts}\""), &sts);

    let secret = fill("wJalrXUtnFEMI/K7MDENG/bPxRfiCY+EXAMPLEKEY", 40);
    let out = assert_caught("aws_secret_access_key", &format!("aws_secret_access_key = {secret}"), &secret);
    assert_eq!(out, "aws_secret_access_key = [REDACTED:aws_secret_access_key]");
    assert_caught("aws_secret_access_key", &format!("AWS_SECRET_ACCESS_KEY={secret}"), &secret);
    assert_caught("aws_secret_access_key", &format!("{{\"SecretAccessKey\": \"{secret}\"}}"), &secret);
}

#[test]
fn vendor_tokens() {
    let cases: Vec<(&str, String)> = vec![
        ("github_token", format!("ghp_{}", fill(ALNUM, 36))),
        ("github_token", format!("gho_{}", fill(ALNUM, 36))),
        ("github_token", format!("ghu_{}", fill(ALNUM, 36))),
        ("github_token", format!("ghs_{}", fill(ALNUM, 36))),
        ("github_token", format!("ghr_{}", fill(ALNUM, 36))),
        ("github_token", format!("github_pat_{}_{}", fill(ALNUM, 22), fill(ALNUM, 59))),
        ("gitlab_token", format!("glpat-{}", fill(ALNUM, 20))),
        ("slack_token", format!("xoxb-{}-{}-{}", fill("0123456789", 12), fill("0123456789", 13), fill(ALNUM, 24))),
        ("slack_token", format!("xoxp-{}-{}", fill("0123456789", 12), fill(ALNUM, 32))),
        ("openai_key", format!("sk-{}", fill(ALNUM, 48))),
        ("openai_key", format!("sk-proj-{}", fill("Ab3_-Cd4", 100))),
        ("anthropic_key", format!("sk-ant-api03-{}-{}AA", fill(ALNUM, 80), fill(ALNUM, 10))),
        ("google_api_key", format!("AIza{}", fill("Sy0-9_bC", 35))),
        ("stripe_key", format!("sk_live_{}", fill(ALNUM, 24))),
        ("stripe_key", format!("rk_live_{}", fill(ALNUM, 24))),
        ("stripe_key", format!("sk_test_{}", fill(ALNUM, 24))),
        ("twilio_key", format!("SK{}", fill(HEX, 32))),
        ("sendgrid_key", format!("SG.{}.{}", fill("aB3_-", 22), fill("cD4-_e", 43))),
        ("npm_token", format!("npm_{}", fill(ALNUM, 36))),
        ("pypi_token", format!("pypi-AgEIcHlwaS5vcmc{}", fill("Ab9_-", 70))),
        (
            "jwt",
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U".to_owned(),
        ),
    ];
    for (kind, token) in &cases {
        // Alone, inside prose, and as an env/JSON value: the token goes, its context stays.
        assert_eq!(assert_caught(kind, token, token), format!("[REDACTED:{kind}]"));
        let out = assert_caught(kind, &format!("using {token}, then done"), token);
        assert_eq!(out, format!("using [REDACTED:{kind}], then done"));
        assert_caught(kind, &format!("{{\"value\": \"{token}\"}}"), token);
    }
}

#[test]
fn slack_webhook_keeps_the_host() {
    let path = format!("T{}/B{}/{}", fill("0123456789ABCDEF", 8), fill("0123456789ABCDEF", 8), fill(ALNUM, 24));
    let url = format!("https://hooks.slack.com/services/{path}");
    let out = assert_caught("slack_webhook", &format!("POST {url} -> 200"), &path);
    assert_eq!(out, "POST https://hooks.slack.com/services/[REDACTED:slack_webhook] -> 200");
}

#[test]
fn authorization_headers_keep_the_scheme() {
    let token = format!("{}.{}", fill(ALNUM, 20), fill(ALNUM, 12));
    let out = assert_caught("bearer_token", &format!("Authorization: Bearer {token}"), &token);
    assert_eq!(out, "Authorization: Bearer [REDACTED:bearer_token]");
    let out = assert_caught("bearer_token", &format!("curl -H 'authorization: bearer {token}' x"), &token);
    assert_eq!(out, "curl -H 'authorization: bearer [REDACTED:bearer_token]' x");

    // base64("alice:correct-horse-9")
    let basic = "YWxpY2U6Y29ycmVjdC1ob3JzZS05";
    let out = assert_caught("basic_auth", &format!("Authorization: Basic {basic}"), basic);
    assert_eq!(out, "Authorization: Basic [REDACTED:basic_auth]");
    // base64("user:password"), padded
    assert_caught("basic_auth", "Authorization: Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA");

    // A vendor token behind Bearer is reported as what it is.
    let ghp = format!("ghp_{}", fill(ALNUM, 36));
    let out = assert_caught("github_token", &format!("Authorization: Bearer {ghp}"), &ghp);
    assert_eq!(out, "Authorization: Bearer [REDACTED:github_token]");
}

#[test]
fn url_credentials_keep_the_user() {
    let out = assert_caught("url_password", "DATABASE_URL=postgres://app:s3cr3t-Pw@db.internal:5432/app", "s3cr3t-Pw");
    assert_eq!(out, "DATABASE_URL=postgres://app:[REDACTED:url_password]@db.internal:5432/app");
    let out = assert_caught("url_password", "cloning https://deploy:hunter2@git.example.com/repo.git", "hunter2");
    assert_eq!(out, "cloning https://deploy:[REDACTED:url_password]@git.example.com/repo.git");
    assert_caught("url_password", "redis://default:Zx9%40qq@cache:6379", "Zx9%40qq");
}

#[test]
fn secret_named_assignments() {
    let cases = [
        ("password=hunter22", "password=[REDACTED:secret_value]"),
        ("DB_PASSWORD=letmein", "DB_PASSWORD=[REDACTED:secret_value]"),
        ("DB_PASSWORD: opensesame", "DB_PASSWORD: [REDACTED:secret_value]"),
        ("passwd: Tr0ub4dor&3", "passwd: [REDACTED:secret_value]&3"),
        ("pwd=qwerty123", "pwd=[REDACTED:secret_value]"),
        (r#"{"api_key": "abcd1234efgh"}"#, r#"{"api_key": "[REDACTED:secret_value]"}"#),
        (r#"{\"client_secret\":\"9f8e7d6c5b4a\"}"#, r#"{\"client_secret\":\"[REDACTED:secret_value]\"}"#),
        ("X-Api-Key: 9f8e7d6c5b4a3210", "X-Api-Key: [REDACTED:secret_value]"),
        ("GET /v1/data?apikey=Qw3rTy99&page=2", "GET /v1/data?apikey=[REDACTED:secret_value]&page=2"),
        ("access_key = 'AbCd3fGh1jKl'", "access_key = '[REDACTED:secret_value]'"),
        ("private_key: \"MIIBVwIBADAN\"", "private_key: \"[REDACTED:secret_value]\""),
        ("secret: Xy7$abc!", "secret: [REDACTED:secret_value]"),
        ("auth_token=abc123xyz", "auth_token=[REDACTED:secret_value]"),
        ("Token: 5f4dcc3b5aa765d61d8327deb882cf99", "Token: [REDACTED:secret_value]"),
        ("credentials := c0ffee-beef-42", "credentials := [REDACTED:secret_value]"),
        ("'auth' => 'sesame42'", "'auth' => '[REDACTED:secret_value]'"),
        ("refreshToken=r3fr3sh.T0ken; Path=/", "refreshToken=[REDACTED:secret_value]; Path=/"),
        ("kubectl get secret: password: cGFzc3dvcmQxMjM=", "kubectl get secret: password: [REDACTED:secret_value]"),
        ("password=hunter22\ntoken=t0k3n-abc", "password=[REDACTED:secret_value]\ntoken=[REDACTED:secret_value]"),
    ];
    for (text, want) in cases {
        let (out, found) = redact_text(text);
        assert_eq!(out, want, "{text}");
        let count = want.matches("[REDACTED:secret_value]").count();
        assert_eq!(found, vec![Redaction { kind: "secret_value", count }], "{text}");
    }
}

#[test]
fn benign_output_is_untouched() {
    let corpus = [
        "See the password reset flow in docs/auth.md",
        "the token count is 42",
        "Token usage: 1234 input, 567 output",
        "max_tokens: 4096",
        "token: 128000",
        "input_token=123456",
        "auth: required",
        "secret: false",
        "password: ********",
        "refresh_token: null",
        "ERROR: invalid token: expired",
        "Forgot password: contact support",
        "Credentials: see vault path secret/data/app",
        "passwordless login via magic link",
        "tokenizer: cl100k_base",
        "The API key must be kept secret.",
        "Use Bearer authentication with a token from the dashboard.",
        "Basic usage: mcpd call server.tool '{}'",
        "expires_in: 3600, token_type: Bearer",
        "fn parse_token(input: &str) -> Result<Token, Error> {",
        "    let token = args.token.clone();",
        "    let password = read_password()?;",
        "    let auth = AuthConfig::default();",
        "    api_key: Option<String>,",
        "    secret_key: Vec<u8>,",
        "token = os.environ[\"GITHUB_TOKEN\"]",
        "client = Client(api_key=api_key)",
        "GITHUB_TOKEN=${env:GITHUB_TOKEN}",
        "password = \"<your-password>\"",
        "token: {{ secrets.DEPLOY_TOKEN }}",
        "SELECT id FROM users WHERE password_hash IS NOT NULL;",
        r#"{"type": "object", "properties": {"password": {"type": "string", "minLength": 8}}}"#,
        "PWD=/home/user/project",
        "OLDPWD=/tmp",
        "request id 550e8400-e29b-41d4-a716-446655440000",
        "commit 3f786850e387550fdab836ed7e6dc881de23001b",
        "Merge: a94a8fe5ccb1 0c4c08 (HEAD -> main, origin/main)",
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==",
        "data:image/jpeg;base64,/9j/4AAQSkZJRgABAQEASABIAAD/2wBDAAgGBgcGBQgHBwcJCQgKDBQNDAsLDBkSEw8U",
        "base64: SGVsbG8sIFdvcmxkIQ==",
        "https://github.com/rust-lang/regex/blob/master/README.md",
        "http://localhost:8080/api/v1/items?page=2&limit=50",
        "git@github.com:org/repo.git",
        "ssh://git@gitlab.com/group/project.git",
        "mailto:jane@example.com",
        "author: Jane Doe <jane@example.com>",
        "sk-learn and scikit-learn are the same package",
        "task-runner-and-desk-lamp-controller-version",
        "AKIA is the prefix of AWS access key ids",
        "eyJ is how base64-encoded JSON starts",
        "npm_config_cache=/home/user/.npm",
        "client_id=abc123&response_type=code&state=xyz",
        "x-request-id: 7d2f0c1e",
        "Compiling regex v1.13.2",
        "   Finished `test` profile [unoptimized] target(s) in 12.34s",
        "test result: ok. 17 passed; 0 failed; 0 ignored",
        "-----BEGIN CERTIFICATE-----",
        "| id | name  | status |",
        "2026-05-01T12:00:00Z INFO mcpd::session: server=github ready tools=42",
    ];
    assert!(corpus.len() >= 30);
    for line in corpus {
        let (out, found) = redact_text(line);
        assert!(matches!(out, Cow::Borrowed(_)) && found.is_empty(), "changed {line:?} into {out:?} ({found:?})");
    }
}

#[test]
fn nothing_matched_borrows() {
    let text = String::from("plain tool output\nwith two lines");
    let (out, found) = redact_text(&text);
    assert!(matches!(out, Cow::Borrowed(s) if std::ptr::eq(s, text.as_str())));
    assert!(found.is_empty());
    // Shape matched but vetoed also leaves the text borrowed.
    assert!(matches!(redact_text("Authorization: Bearer authentication").0, Cow::Borrowed(_)));
}

#[test]
fn counts_and_kinds_are_aggregated() {
    let a = format!("ghp_{}", fill(ALNUM, 36));
    let b = format!("ghs_{}", fill(ALNUM, 40));
    let text = format!("{a} {b} password=hunter22 {a}");
    let (out, found) = redact_text(&text);
    assert_eq!(
        out,
        "[REDACTED:github_token] [REDACTED:github_token] password=[REDACTED:secret_value] [REDACTED:github_token]"
    );
    assert_eq!(found, vec![Redaction { kind: "github_token", count: 3 }, Redaction { kind: "secret_value", count: 1 }]);
}

#[test]
fn redacting_twice_changes_nothing_more() {
    let text = format!(
        "Authorization: Bearer ghp_{} url=https://u:pw123456@h/ password=\"hunter22\" -----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----",
        fill(ALNUM, 36),
        fill(ALNUM, 64)
    );
    let (once, found) = redact_text(&text);
    assert!(!found.is_empty());
    let (twice, again) = redact_text(&once);
    assert!(matches!(twice, Cow::Borrowed(_)), "second pass changed {once:?} into {twice:?}");
    assert!(again.is_empty());
}

#[test]
fn json_strings_are_redacted_keys_untouched() {
    let ghp = format!("ghp_{}", fill(ALNUM, 36));
    let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";
    let mut v = json!({
        "content": [
            {"type": "text", "text": format!("export GITHUB_TOKEN={ghp}")},
            {"type": "resource", "resource": {"uri": "file:///app/.env", "text": "DB_PASSWORD=letmein\nPORT=8080"}}
        ],
        "structuredContent": {
            "session": {"headers": {"Authorization": format!("Bearer {jwt}")}, "ok": true, "retries": 3},
            "password": "hunter22",
            "apiKey": "Zm9vYmFy1234",
            "token_count": "12345678",
            "token": "128000",
            "auth": "required",
            "secret": "two words here",
            ghp.clone(): "key that looks like a token stays",
            "list": [[["deep", ghp.clone()]]],
        }
    });
    let found = redact_json(&mut v);
    let sc = &v["structuredContent"];
    assert_eq!(v["content"][0]["text"], "export GITHUB_TOKEN=[REDACTED:github_token]");
    assert_eq!(v["content"][1]["resource"]["text"], "DB_PASSWORD=[REDACTED:secret_value]\nPORT=8080");
    assert_eq!(v["content"][1]["resource"]["uri"], "file:///app/.env");
    assert_eq!(sc["session"]["headers"]["Authorization"], "Bearer [REDACTED:jwt]");
    assert_eq!(sc["session"]["ok"], true);
    assert_eq!(sc["session"]["retries"], 3);
    // Under a secret-named key, the key is the hint: the whole string goes.
    assert_eq!(sc["password"], "[REDACTED:secret_value]");
    assert_eq!(sc["apiKey"], "[REDACTED:secret_value]");
    // ...but not counts, stop words, prose, or keys that merely contain the word.
    assert_eq!(sc["token_count"], "12345678");
    assert_eq!(sc["token"], "128000");
    assert_eq!(sc["auth"], "required");
    assert_eq!(sc["secret"], "two words here");
    assert_eq!(sc[ghp.as_str()], "key that looks like a token stays");
    assert_eq!(sc["list"][0][0][1], "[REDACTED:github_token]");
    assert_eq!(sc["list"][0][0][0], "deep");

    let mut found = found;
    found.sort_by_key(|r| r.kind);
    assert_eq!(
        found,
        vec![
            Redaction { kind: "github_token", count: 2 },
            Redaction { kind: "jwt", count: 1 },
            Redaction { kind: "secret_value", count: 3 },
        ]
    );
    // Nothing to do: nothing reported.
    let mut clean = json!({"a": ["b", 1, null, {"c": "d"}]});
    assert!(redact_json(&mut clean).is_empty());
    assert_eq!(clean, json!({"a": ["b", 1, null, {"c": "d"}]}));
}

#[test]
fn deeply_nested_json_does_not_overflow() {
    let mut v = serde_json::Value::String("password=hunter22".to_owned());
    for _ in 0..100_000 {
        v = serde_json::Value::Array(vec![v]);
    }
    assert_eq!(redact_json(&mut v), vec![Redaction { kind: "secret_value", count: 1 }]);
    // Dropping a 100k-deep value recurses in serde_json; unwind it by hand.
    while let serde_json::Value::Array(mut items) = v {
        v = items.pop().unwrap_or(serde_json::Value::Null);
    }
}

#[test]
fn large_text_is_scanned_in_full() {
    let line = "2026-05-01T12:00:00Z INFO tool output line with ordinary words, numbers 12345 and a path /usr/lib\n";
    let mut text = line.repeat((5 << 20) / line.len());
    let ghp = format!("ghp_{}", fill(ALNUM, 36));
    text.push_str(&format!("token={ghp}\n"));
    assert!(text.len() > 4 << 20);
    let start = Instant::now();
    let (out, found) = redact_text(&text);
    println!("redact_text on {:.1} MiB: {:?}", text.len() as f64 / f64::from(1 << 20), start.elapsed());
    assert!(!out.contains(&ghp), "a secret past 4 MiB is still found");
    assert_eq!(found, vec![Redaction { kind: "github_token", count: 1 }]);
}
