//! Tests for the SSRF guard's checks: every address form, schemes and the allowlist (resolution, redirects
//! and the reqwest resolver are tested with the daemon's `ssrf` module).
use super::*;

fn policy(allow_loopback: bool, allow: &[&str]) -> SsrfPolicy {
    SsrfPolicy { allow_loopback, allow: allow.iter().map(|s| (*s).to_owned()).collect() }
}

fn forbidden(host: &str, addr: &str, why: &'static str) -> SsrfError {
    SsrfError::ForbiddenAddress { host: host.to_owned(), addr: addr.parse().unwrap(), why }
}

fn bad_url(url: &str) -> bool {
    matches!(SsrfPolicy::default().check_url(url), Err(SsrfError::BadUrl { .. }))
}

#[test]
fn refuses_special_addresses_in_literal_hosts() {
    // (url, host as the url crate normalises it, address judged, class)
    let cases = [
        // The examples.
        ("https://169.254.169.254/latest/meta-data/", "169.254.169.254", "169.254.169.254", "metadata"),
        ("https://10.0.0.1/token", "10.0.0.1", "10.0.0.1", "private"),
        ("https://[::ffff:127.0.0.2]/", "[::ffff:7f00:2]", "127.0.0.2", "loopback"),
        ("https://0x7f000002/", "127.0.0.2", "127.0.0.2", "loopback"),
        // IPv4 spellings browsers and curl accept.
        ("https://0177.0.0.1/", "127.0.0.1", "127.0.0.1", "loopback"),
        ("https://017700000001/", "127.0.0.1", "127.0.0.1", "loopback"),
        ("https://0x7f.0.0.2/", "127.0.0.2", "127.0.0.2", "loopback"),
        ("https://0x7F.1/", "127.0.0.1", "127.0.0.1", "loopback"),
        ("https://2130706434/", "127.0.0.2", "127.0.0.2", "loopback"),
        ("https://127.1/", "127.0.0.1", "127.0.0.1", "loopback"),
        ("https://10.1/", "10.0.0.1", "10.0.0.1", "private"),
        ("https://127.0.0.1./", "127.0.0.1", "127.0.0.1", "loopback"),
        ("https://0xA9.0xFE.0xA9.0xFE/", "169.254.169.254", "169.254.169.254", "metadata"),
        ("https://%31%32%37.0.0.1/", "127.0.0.1", "127.0.0.1", "loopback"),
        // IPv6 forms that embed IPv4.
        ("https://[::ffff:7f00:2]/", "[::ffff:7f00:2]", "127.0.0.2", "loopback"),
        ("https://[::127.0.0.2]/", "[::7f00:2]", "127.0.0.2", "loopback"),
        ("https://[::ffff:0:10.0.0.1]/", "[::ffff:0:a00:1]", "10.0.0.1", "private"),
        ("https://[64:ff9b::10.0.0.1]/", "[64:ff9b::a00:1]", "10.0.0.1", "private"),
        ("https://[64:ff9b::169.254.169.254]/", "[64:ff9b::a9fe:a9fe]", "169.254.169.254", "metadata"),
        ("https://[2002:7f00:1::]/", "[2002:7f00:1::]", "127.0.0.1", "loopback"),
        // Names that are loopback by definition (RFC 6761), however spelled.
        ("https://localhost/", "localhost", "127.0.0.1", "loopback"),
        ("https://localhost./", "localhost.", "127.0.0.1", "loopback"),
        ("https://LocalHost/", "localhost", "127.0.0.1", "loopback"),
        ("https://api.localhost/", "api.localhost", "127.0.0.1", "loopback"),
        // Every class.
        ("https://127.255.255.254/", "127.255.255.254", "127.255.255.254", "loopback"),
        ("https://[::1]/", "[::1]", "::1", "loopback"),
        ("https://172.16.0.1/", "172.16.0.1", "172.16.0.1", "private"),
        ("https://172.31.255.255/", "172.31.255.255", "172.31.255.255", "private"),
        ("https://192.168.1.1/", "192.168.1.1", "192.168.1.1", "private"),
        ("https://[fc00::1]/", "[fc00::1]", "fc00::1", "private"),
        ("https://[fd12:3456::1]/", "[fd12:3456::1]", "fd12:3456::1", "private"),
        ("https://[fec0::1]/", "[fec0::1]", "fec0::1", "private"),
        ("https://169.254.1.1/", "169.254.1.1", "169.254.1.1", "link-local"),
        ("https://[fe80::1]/", "[fe80::1]", "fe80::1", "link-local"),
        ("https://[fd00:ec2::254]/", "[fd00:ec2::254]", "fd00:ec2::254", "metadata"),
        ("https://100.100.100.200/", "100.100.100.200", "100.100.100.200", "metadata"),
        ("https://168.63.129.16/", "168.63.129.16", "168.63.129.16", "metadata"),
        ("https://169.254.170.2/", "169.254.170.2", "169.254.170.2", "metadata"),
        ("https://100.64.0.1/", "100.64.0.1", "100.64.0.1", "carrier-grade NAT"),
        ("https://100.127.255.255/", "100.127.255.255", "100.127.255.255", "carrier-grade NAT"),
        ("https://0.0.0.0/", "0.0.0.0", "0.0.0.0", "unspecified"),
        ("https://0/", "0.0.0.0", "0.0.0.0", "unspecified"),
        ("https://0.1.2.3/", "0.1.2.3", "0.1.2.3", "unspecified"),
        ("https://[::]/", "[::]", "::", "unspecified"),
        ("https://224.0.0.1/", "224.0.0.1", "224.0.0.1", "multicast"),
        ("https://239.255.255.250/", "239.255.255.250", "239.255.255.250", "multicast"),
        ("https://[ff02::1]/", "[ff02::1]", "ff02::1", "multicast"),
        ("https://255.255.255.255/", "255.255.255.255", "255.255.255.255", "broadcast"),
        ("https://192.0.2.1/", "192.0.2.1", "192.0.2.1", "documentation"),
        ("https://198.51.100.7/", "198.51.100.7", "198.51.100.7", "documentation"),
        ("https://203.0.113.9/", "203.0.113.9", "203.0.113.9", "documentation"),
        ("https://[2001:db8::1]/", "[2001:db8::1]", "2001:db8::1", "documentation"),
        ("https://240.0.0.1/", "240.0.0.1", "240.0.0.1", "reserved"),
        ("https://198.18.0.1/", "198.18.0.1", "198.18.0.1", "reserved"),
        ("https://192.0.0.8/", "192.0.0.8", "192.0.0.8", "reserved"),
        ("https://[2001::1]/", "[2001::1]", "2001::1", "reserved"),
        ("https://[5f00::1]/", "[5f00::1]", "5f00::1", "reserved"),
        ("https://[64:ff9b:1::1]/", "[64:ff9b:1::1]", "64:ff9b:1::1", "private"),
    ];
    let policy = SsrfPolicy::default();
    for (url, host, addr, why) in cases {
        assert_eq!(policy.check_url(url).map(|_| ()), Err(forbidden(host, addr, why)), "{url}");
    }
}

#[test]
fn accepts_public_https_urls() {
    let cases = [
        ("https://example.com/.well-known/oauth-authorization-server?x=1", "example.com"),
        ("https://EXAMPLE.com./", "example.com."),
        ("https://idp.example.com:8443/token", "idp.example.com"),
        ("https://93.184.215.14/", "93.184.215.14"),
        ("https://172.32.0.1/", "172.32.0.1"),
        ("https://100.128.0.1/", "100.128.0.1"),
        ("https://[2606:4700::1111]/", "[2606:4700::1111]"),
        ("https://[64:ff9b::8.8.8.8]/", "[64:ff9b::808:808]"),
        ("https://[::ffff:8.8.8.8]/", "[::ffff:808:808]"),
        ("https://xn--bcher-kva.example/", "xn--bcher-kva.example"),
        ("https://bücher.example/", "xn--bcher-kva.example"),
        ("https://_acme.example.com/", "_acme.example.com"),
        ("  https://example.com/", "example.com"),
    ];
    let policy = SsrfPolicy::default();
    for (url, host) in cases {
        let parsed = policy.check_url(url).unwrap_or_else(|e| panic!("{url}: {e}"));
        assert_eq!(parsed.host_str(), Some(host), "{url}");
    }
}

#[test]
fn refuses_other_schemes_naming_them() {
    let cases = [
        ("file:///etc/passwd", "file"),
        ("FILE:///etc/passwd", "file"),
        ("gopher://127.0.0.1:6379/_INFO", "gopher"),
        ("data:text/plain,hello", "data"),
        ("javascript:alert(1)", "javascript"),
        ("ftp://example.com/", "ftp"),
        ("dict://127.0.0.1:11211/stat", "dict"),
        ("ws://example.com/", "ws"),
        ("ldap://example.com/", "ldap"),
    ];
    for (url, scheme) in cases {
        let want = SsrfError::Scheme { scheme: scheme.to_owned() };
        assert_eq!(SsrfPolicy::default().check_url(url).map(|_| ()), Err(want.clone()), "{url}");
        // Loopback permission is about http, never about other schemes.
        assert_eq!(policy(true, &["0.0.0.0/0"]).check_url(url).map(|_| ()), Err(want), "{url}");
    }
}

#[test]
fn requires_https_except_to_allowed_loopback() {
    let not_https = |url: &str| Err(SsrfError::NotHttps { url: url.to_owned() });
    // (policy, url, expected)
    let cases: Vec<(SsrfPolicy, &str, Result<(), SsrfError>)> = vec![
        (policy(false, &[]), "http://example.com/cb?code=1", not_https("http://example.com")),
        (policy(true, &[]), "http://example.com/", not_https("http://example.com")),
        (policy(false, &[]), "http://127.0.0.1:8080/", Err(forbidden("127.0.0.1", "127.0.0.1", "loopback"))),
        (policy(true, &[]), "http://127.0.0.1:8080/", Ok(())),
        (policy(true, &[]), "http://127.0.0.2/", Ok(())),
        (policy(true, &[]), "http://[::1]:9000/", Ok(())),
        (policy(true, &[]), "http://[::ffff:127.0.0.1]/", Ok(())),
        (policy(true, &[]), "http://0x7f000001/", Ok(())),
        (policy(true, &[]), "http://localhost:3000/", Ok(())),
        (policy(true, &[]), "http://localhost./", Ok(())),
        (policy(true, &[]), "http://mcp.localhost/", Ok(())),
        (policy(true, &[]), "https://localhost/", Ok(())),
        (policy(false, &[]), "https://localhost/", Err(forbidden("localhost", "127.0.0.1", "loopback"))),
        // Loopback permission does not extend to other classes.
        (policy(true, &[]), "https://10.0.0.1/", Err(forbidden("10.0.0.1", "10.0.0.1", "private"))),
        (policy(true, &[]), "http://0.0.0.0:8080/", Err(forbidden("0.0.0.0", "0.0.0.0", "unspecified"))),
        (
            policy(true, &[]),
            "https://169.254.169.254/",
            Err(forbidden("169.254.169.254", "169.254.169.254", "metadata")),
        ),
        // An allowlisted address still needs https, unless it is loopback: allowlisting one
        // loopback address lets http reach it and nothing else on loopback.
        (policy(false, &["10.0.0.0/8"]), "http://10.0.0.1/", not_https("http://10.0.0.1")),
        (policy(false, &["127.0.0.1"]), "https://127.0.0.1/", Ok(())),
        (policy(false, &["127.0.0.1"]), "http://127.0.0.1:81/", Ok(())),
        (policy(false, &["127.0.0.1"]), "http://0x7f000002:81/", Err(forbidden("127.0.0.2", "127.0.0.2", "loopback"))),
        (policy(false, &["127.0.0.1"]), "https://127.0.0.2/", Err(forbidden("127.0.0.2", "127.0.0.2", "loopback"))),
    ];
    for (policy, url, want) in cases {
        assert_eq!(policy.check_url(url).map(|_| ()), want, "{url} with {policy:?}");
    }
}

#[test]
fn refuses_credentials_and_malformed_urls() {
    let cases = [
        ("https://user:secret@example.com/", "example.com"),
        ("https://user@example.com/", "example.com"),
        ("https://:secret@10.0.0.1/", "10.0.0.1"),
        ("http://user:pw@localhost/", "localhost"),
    ];
    for (url, host) in cases {
        let want = SsrfError::Credentials { host: host.to_owned() };
        assert_eq!(policy(true, &[]).check_url(url).map(|_| ()), Err(want), "{url}");
    }
    for url in [
        "",
        "example.com",
        "/relative/path",
        "https://",
        "https://1.2.3.4.5/",
        "https://256.1.1.1/",
        "https://1.2.65536/",
        "https://4294967296/",
        "https://08.0.0.1/",
        "https://foo.123/",
        "https://[::ffff:127.0.0.1/",
        "https://[fe80::1%25eth0]/",
        "https://exa mple.com/",
        "https://*.example.com/",
        "https://a..b/",
        "1https://example.com/",
    ] {
        assert!(bad_url(url), "{url}: {:?}", SsrfPolicy::default().check_url(url));
    }
}

#[test]
fn loose_ipv4_parser_reads_every_inet_aton_form() {
    let ip = |s: &str| Some(Some(s.parse::<Ipv4Addr>().unwrap()));
    let cases: [(&str, Option<Option<Ipv4Addr>>); 24] = [
        ("127.0.0.1", ip("127.0.0.1")),
        ("0177.0.0.1", ip("127.0.0.1")),
        ("0177.0000.0000.0001", ip("127.0.0.1")),
        ("017700000001", ip("127.0.0.1")),
        ("0x7f000002", ip("127.0.0.2")),
        ("0X7F000002", ip("127.0.0.2")),
        ("0x7f.0.0.2", ip("127.0.0.2")),
        ("0x7f.0x0.0x0.0x2", ip("127.0.0.2")),
        ("2130706434", ip("127.0.0.2")),
        ("127.1", ip("127.0.0.1")),
        ("127.0.1", ip("127.0.0.1")),
        ("10.1", ip("10.0.0.1")),
        ("167772161", ip("10.0.0.1")),
        ("012.0.0.1", ip("10.0.0.1")),
        ("0x", ip("0.0.0.0")),
        ("1.2.3.4.5", Some(None)),
        ("256.0.0.1", Some(None)),
        ("1.2.65536", Some(None)),
        ("4294967296", Some(None)),
        ("08.0.0.1", Some(None)),
        ("1..2", Some(None)),
        ("foo.123", Some(None)),
        ("example.com", None),
        ("1.2.3.x", None),
    ];
    for (host, want) in cases {
        assert_eq!(parse_ipv4_loose(host), want, "{host}");
    }
    // A hex part padded past u64 is still a bounded number, not an overflow panic.
    assert_eq!(parse_ipv4_loose("0x00000000000000000000007f000001"), ip("127.0.0.1"));
    assert_eq!(parse_ipv4_loose("0xffffffffffffffffffff"), Some(None));
}

#[test]
fn check_ip_judges_embedded_ipv4() {
    let cases = [
        ("8.8.8.8", None),
        ("2606:4700::1111", None),
        ("64:ff9b::808:808", None),
        ("2002:808:808::1", None),
        ("::ffff:10.0.0.1", Some(("10.0.0.1", "private"))),
        ("::ffff:0:10.0.0.1", Some(("10.0.0.1", "private"))),
        ("::10.0.0.1", Some(("10.0.0.1", "private"))),
        ("::2", Some(("0.0.0.2", "unspecified"))),
        ("64:ff9b::7f00:1", Some(("127.0.0.1", "loopback"))),
        ("2002:a9fe:a9fe::", Some(("169.254.169.254", "metadata"))),
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", Some(("2001:0:4136:e378:8000:63bf:3fff:fdd2", "reserved"))),
        ("100::1", Some(("100::1", "reserved"))),
        ("3fff::1", Some(("3fff::1", "documentation"))),
    ];
    for (ip, want) in cases {
        let ip: IpAddr = ip.parse().unwrap();
        let want = want.map_or(Ok(()), |(addr, why)| Err(forbidden(&ip.to_string(), addr, why)));
        assert_eq!(SsrfPolicy::default().check_ip(ip), want, "{ip}");
    }
}

#[test]
fn allowlist_by_cidr() {
    // (allow, url, allowed?)
    let cases = [
        (&["10.1.2.0/24"][..], "https://10.1.2.3/", true),
        (&["10.1.2.0/24"], "https://10.1.3.1/", false),
        (&["10.1.2.0/24"], "https://[::ffff:10.1.2.3]/", true),
        (&["10.1.2.0/24"], "https://[64:ff9b::10.1.2.3]/", true),
        (&["10.1.2.3"], "https://10.1.2.3/", true),
        (&["10.1.2.3"], "https://10.1.2.4/", false),
        (&["fd12:3456::/32"], "https://[fd12:3456::1]/", true),
        (&["fd12:3456::/32"], "https://[fd12:3457::1]/", false),
        (&["[fd12::1]"], "https://[fd12::1]/", true),
        (&["100.64.0.0/10"], "https://100.64.5.5/", true),
        (&["0.0.0.0/0"], "https://192.168.0.1/", true),
        // Bad entries are ignored, never widening anything.
        (&["10.0.0.0/33", "10.0.0.1/8", "not a host!"], "https://10.0.0.1/", false),
        // The metadata service needs its exact address.
        (&["169.254.0.0/16"], "https://169.254.1.1/", true),
        (&["169.254.0.0/16"], "https://169.254.169.254/", false),
        (&["0.0.0.0/0"], "https://169.254.169.254/", false),
        (&["169.254.169.254"], "https://169.254.169.254/", true),
        (&["169.254.169.254/32"], "https://169.254.169.254/", true),
        (&["fd00::/8"], "https://[fd00:ec2::254]/", false),
        (&["fd00:ec2::254"], "https://[fd00:ec2::254]/", true),
        // A host entry does not allow an address.
        (&["idp.corp.example"], "https://10.0.0.1/", false),
    ];
    for (allow, url, allowed) in cases {
        let got = policy(false, allow).check_url(url);
        assert_eq!(got.is_ok(), allowed, "{url} with {allow:?}: {got:?}");
        if let Err(e) = got {
            assert!(matches!(e, SsrfError::ForbiddenAddress { .. }), "{url}: {e:?}");
        }
    }
}

#[test]
fn allowlist_by_host_applies_to_resolved_addresses() {
    let sa = |s: &str| -> SocketAddr { s.parse().unwrap() };
    let corp = policy(false, &["IDP.Corp.Example."]);
    // (policy, name, resolved, expected)
    let cases = [
        (&corp, "idp.corp.example", vec![sa("10.0.0.5:443")], Ok(vec![sa("10.0.0.5:443")])),
        (&corp, "idp.corp.example", vec![sa("127.0.0.1:443")], Ok(vec![sa("127.0.0.1:443")])),
        (&corp, "idp.corp.example", vec![sa("[fd12::1]:443")], Ok(vec![sa("[fd12::1]:443")])),
        (
            &corp,
            "idp.corp.example",
            vec![sa("169.254.169.254:443")],
            Err(forbidden("idp.corp.example", "169.254.169.254", "metadata")),
        ),
        (
            &corp,
            "idp.corp.example",
            vec![sa("0.0.0.0:443")],
            Err(forbidden("idp.corp.example", "0.0.0.0", "unspecified")),
        ),
        (&corp, "evil.example", vec![sa("10.0.0.5:443")], Err(forbidden("evil.example", "10.0.0.5", "private"))),
        // Without an allowlist: one bad address refuses the whole answer (no fallback to it).
        (
            &corp,
            "mixed.example",
            vec![sa("8.8.8.8:443"), sa("10.0.0.1:443")],
            Err(forbidden("mixed.example", "10.0.0.1", "private")),
        ),
        (
            &corp,
            "mapped.example",
            vec![sa("[::ffff:127.0.0.1]:443")],
            Err(forbidden("mapped.example", "127.0.0.1", "loopback")),
        ),
        (&corp, "dup.example", vec![sa("8.8.8.8:443"), sa("8.8.8.8:443")], Ok(vec![sa("8.8.8.8:443")])),
        (
            &corp,
            "empty.example",
            vec![],
            Err(SsrfError::Resolve { host: "empty.example".to_owned(), why: "no addresses".to_owned() }),
        ),
    ];
    for (policy, name, resolved, want) in cases {
        assert_eq!(policy.check_addrs(name, name, resolved), want, "{name}");
    }
}

#[test]
fn validate_reports_bad_allow_entries() {
    assert_eq!(
        policy(false, &["10.1.2.0/24", "10.0.0.1", "fd00::/8", "[::1]", "[fd00::]/16", "idp.corp.example", "a.b."])
            .validate(),
        Ok(())
    );
    for entry in
        ["", "10.1.2.3/8", "10.0.0.0/33", "fd00::/129", "10.0.0.0/x", "x/8", "not a host!", "1.2.3.4.5", "0x7f.1"]
    {
        let got = policy(false, &[entry]).validate();
        assert!(matches!(&got, Err(SsrfError::BadAllowEntry { entry: e, .. }) if e == entry), "{entry:?}: {got:?}");
    }
}

#[test]
fn messages_name_the_host_and_say_what_to_do() {
    let cases = [
        (
            "https://user:s3cret@10.0.0.1/cb?code=abc",
            "refusing the url for 10.0.0.1: it carries a user name or password; remove them from the url",
        ),
        (
            "https://10.0.0.1/cb?code=abc",
            "refusing 10.0.0.1: private address 10.0.0.1; add it to `allow` in the server's [oauth] table if this is intended",
        ),
        (
            "https://169.254.169.254/latest/meta-data/iam?token=abc",
            "refusing 169.254.169.254: metadata address 169.254.169.254; add the exact address to `allow` in the server's \
             [oauth] table if this is intended",
        ),
        (
            "http://example.com:8080/cb?code=abc",
            "refusing http://example.com:8080: use https:// (plain http is allowed only to loopback addresses, when \
             they are allowed)",
        ),
        ("file:///etc/passwd", "refusing a url with the file scheme: only https:// urls may be fetched"),
    ];
    for (url, want) in cases {
        let msg = SsrfPolicy::default().check_url(url).unwrap_err().to_string();
        assert_eq!(msg, want, "{url}");
        assert!(!msg.contains("s3cret") && !msg.contains("code=") && !msg.contains("token"), "{msg}");
    }
    for url in ["https://1.2.3.4.5/", "not a url", "https://[::1/"] {
        let msg = SsrfPolicy::default().check_url(url).unwrap_err().to_string();
        assert!(msg.starts_with("invalid url: ") && msg.contains("https://"), "{msg}");
    }
}
