//! The SSRF guard for every URL a remote server hands mcpd during OAuth (resource and authorization-server
//! metadata, authorization/token/registration endpoints, JWKS, and every redirect hop on the way).
//!
//! A remote MCP server chooses these URLs, so without a guard it could point mcpd at the cloud metadata
//! service, an admin port on loopback or a host on the private network. The guard has three layers, and a
//! client needs all of them:
//! - [`SsrfPolicy::check_url`]: syntax and the literal host, without DNS. It returns the URL as the `url`
//!   crate parsed it (the same parser reqwest uses), so what was checked is exactly what gets fetched.
//! - [`SsrfPolicy::check_hop`]: re-checks every redirect hop the same way (the chain is capped at
//!   [`MAX_REDIRECTS`]).
//! - [`SsrfPolicy::pre_resolve`] then [`SsrfPolicy::check_addrs`]: judges a host before DNS (literal
//!   addresses, `localhost` names) and then *every* address a name resolved to. The addresses returned are
//!   the ones to connect to, so a DNS answer that changes afterwards (rebinding) cannot move the connection.
//!
//! This module is pure (no I/O, no runtime): the daemon's `ssrf` module does the DNS lookups and plugs
//! these checks into reqwest (a redirect policy and a resolver). A client assembled from them must also
//! disable proxies (`ClientBuilder::no_proxy`): a proxy resolves names itself, out of the guard's sight.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use url::Url;

/// Redirect hops followed before giving up; OAuth flows need one or two, and a long chain is a smell.
pub const MAX_REDIRECTS: usize = 5;

const METADATA: &str = "metadata";
const LOOPBACK: &str = "loopback";

/// Classes an allowlisted *name* still cannot reach: none is a real server's address, and a hijacked or
/// mistaken DNS record for a trusted name must not hand out the instance's cloud credentials.
const NEVER_VIA_NAME: [&str; 4] = [METADATA, "unspecified", "multicast", "broadcast"];

/// Special-purpose IPv4 ranges (IANA registry plus cloud metadata endpoints), most specific first.
const V4_RANGES: &[(Ipv4Addr, u8, &str)] = &[
    (Ipv4Addr::new(169, 254, 169, 254), 32, METADATA), // AWS, GCP, Azure, OCI, DigitalOcean...
    (Ipv4Addr::new(169, 254, 170, 2), 32, METADATA),   // AWS ECS task metadata
    (Ipv4Addr::new(100, 100, 100, 200), 32, METADATA), // Alibaba Cloud
    (Ipv4Addr::new(168, 63, 129, 16), 32, METADATA),   // Azure WireServer
    (Ipv4Addr::new(192, 0, 0, 192), 32, METADATA),     // Oracle Cloud Classic
    (Ipv4Addr::new(255, 255, 255, 255), 32, "broadcast"),
    (Ipv4Addr::new(0, 0, 0, 0), 8, "unspecified"), // Linux connects 0.0.0.0 to the local host
    (Ipv4Addr::new(10, 0, 0, 0), 8, "private"),
    (Ipv4Addr::new(100, 64, 0, 0), 10, "carrier-grade NAT"),
    (Ipv4Addr::new(127, 0, 0, 0), 8, LOOPBACK),
    (Ipv4Addr::new(169, 254, 0, 0), 16, "link-local"),
    (Ipv4Addr::new(172, 16, 0, 0), 12, "private"),
    (Ipv4Addr::new(192, 0, 0, 0), 24, "reserved"), // IETF protocol assignments
    (Ipv4Addr::new(192, 0, 2, 0), 24, "documentation"),
    (Ipv4Addr::new(192, 88, 99, 0), 24, "reserved"), // former 6to4 relay anycast
    (Ipv4Addr::new(192, 168, 0, 0), 16, "private"),
    (Ipv4Addr::new(198, 18, 0, 0), 15, "reserved"), // benchmarking
    (Ipv4Addr::new(198, 51, 100, 0), 24, "documentation"),
    (Ipv4Addr::new(203, 0, 113, 0), 24, "documentation"),
    (Ipv4Addr::new(224, 0, 0, 0), 4, "multicast"),
    (Ipv4Addr::new(240, 0, 0, 0), 4, "reserved"),
];

/// Special-purpose IPv6 ranges, most specific first. Addresses that embed an IPv4 address (mapped,
/// compatible, NAT64, 6to4) never get here: they are judged as that IPv4 address.
const V6_RANGES: &[(Ipv6Addr, u8, &str)] = &[
    (Ipv6Addr::UNSPECIFIED, 128, "unspecified"),
    (Ipv6Addr::LOCALHOST, 128, LOOPBACK),
    (Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254), 128, METADATA), // AWS IMDS over IPv6
    (Ipv6Addr::new(0x64, 0xff9b, 1, 0, 0, 0, 0, 0), 48, "private"),      // local-use NAT64
    (Ipv6Addr::new(0x100, 0, 0, 0, 0, 0, 0, 0), 64, "reserved"),         // discard-only
    (Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0), 32, "documentation"),
    (Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0), 20, "documentation"),
    (Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0), 23, "reserved"), // IETF assignments, Teredo
    (Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0), 7, "private"),   // unique local
    (Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 0), 10, "private"),  // deprecated site-local
    (Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10, "link-local"),
    (Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0), 8, "multicast"),
];

/// What may be fetched.
#[derive(Debug, Clone, Default)]
pub struct SsrfPolicy {
    /// Allow loopback addresses, and http:// to them (servers and IdPs on this machine).
    pub allow_loopback: bool,
    /// Hosts or CIDR ranges the admin allowlisted (e.g. "10.1.2.0/24", "idp.corp.example").
    pub allow: Vec<String>,
}

/// Why a URL or address was refused. Messages name the host only: never a path, query or credentials,
/// which may carry codes and tokens.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SsrfError {
    #[error("refusing {url}: use https:// (plain http is allowed only to loopback addresses, when they are allowed)")]
    NotHttps {
        /// Scheme, host and port only.
        url: String,
    },
    #[error("invalid url: {why}")]
    BadUrl { why: String },
    #[error("refusing {host}: {why} address {addr}; {}", hint(.why))]
    ForbiddenAddress {
        host: String,
        /// The address judged (for IPv6 forms that embed IPv4, the embedded IPv4 address).
        addr: IpAddr,
        why: &'static str,
    },
    #[error("refusing a url with the {scheme} scheme: only https:// urls may be fetched")]
    Scheme { scheme: String },
    #[error("refusing the url for {host}: it carries a user name or password; remove them from the url")]
    Credentials { host: String },
    #[error("cannot resolve {host}: {why}; check the host name and DNS")]
    Resolve { host: String, why: String },
    #[error("refusing the redirect to {host}: more than {MAX_REDIRECTS} redirects; configure the final url instead")]
    TooManyRedirects { host: String },
    #[error("invalid `allow` entry {entry:?}: {why}")]
    BadAllowEntry { entry: String, why: String },
}

fn hint(why: &str) -> &'static str {
    if why == METADATA {
        // A broad range never unlocks the metadata service (see `Allow::covers`), so say what does.
        "add the exact address to `allow` in the server's [oauth] table if this is intended"
    } else {
        "add it to `allow` in the server's [oauth] table if this is intended"
    }
}

/// A host after strict parsing.
#[derive(Debug, PartialEq, Eq)]
enum HostKind {
    Ip(IpAddr),
    /// A DNS name: lowercase, without the trailing dot.
    Name(String),
}

/// One parsed `allow` entry.
#[derive(Debug, PartialEq, Eq)]
enum Allow {
    Net { addr: IpAddr, prefix: u8 },
    Host(String),
}

/// What [`SsrfPolicy::pre_resolve`] made of a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PreResolved {
    /// The addresses to connect to, judged already.
    Addrs(Vec<SocketAddr>),
    /// A DNS name (normalised) to look up; judge the answer with [`SsrfPolicy::check_addrs`].
    Lookup(String),
}

// === impl SsrfPolicy ===

impl SsrfPolicy {
    /// Checks a URL's syntax and literal host (no DNS): scheme (https, or http only for loopback when
    /// allowed), no userinfo, host parsed strictly. Returns the parsed URL: fetch that, not the string.
    pub fn check_url(&self, url: &str) -> Result<Url, SsrfError> {
        // Judge the scheme before parsing so `data:`, `javascript:` and friends get a message naming
        // the scheme rather than whatever the parser makes of the rest.
        match scheme_of(url)? {
            scheme if scheme == "https" || scheme == "http" => {}
            scheme => return Err(SsrfError::Scheme { scheme }),
        }
        let parsed = Url::parse(url)
            .map_err(|e| SsrfError::BadUrl { why: format!("{e}; expected an absolute https:// url") })?;
        self.check_hop(&parsed)?;
        Ok(parsed)
    }

    /// Whether one IP address may be contacted under this policy.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), SsrfError> {
        self.check_ip_for(&ip.to_string(), ip)
    }

    /// Checks every `allow` entry, for config validation (a bad entry is otherwise ignored: it never widens
    /// what may be fetched).
    pub fn validate(&self) -> Result<(), SsrfError> {
        for entry in &self.allow {
            parse_allow(entry).map_err(|why| SsrfError::BadAllowEntry { entry: entry.clone(), why })?;
        }
        Ok(())
    }

    /// Everything `check_url` checks after parsing; also what every redirect hop gets.
    pub fn check_hop(&self, url: &Url) -> Result<(), SsrfError> {
        let scheme = url.scheme();
        if scheme != "https" && scheme != "http" {
            return Err(SsrfError::Scheme { scheme: scheme.to_owned() });
        }
        let host = url.host_str().ok_or_else(no_host)?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(SsrfError::Credentials { host: host.to_owned() });
        }
        // The address class is the more useful complaint, so it comes before the scheme rule.
        let loopback = match classify_host(host)? {
            HostKind::Ip(ip) => {
                self.check_ip_for(host, ip)?;
                classify_ip(ip).1 == Some(LOOPBACK)
            }
            HostKind::Name(name) if is_localhost_name(&name) => {
                self.localhost_addrs(host, &name, 0)?;
                true
            }
            // Names are judged by what they resolve to, in `resolve` / `SsrfResolver`.
            HostKind::Name(_) => false,
        };
        // Plain http only to loopback that passed the checks above (allowed wholesale or
        // allowlisted): nothing on the way can read it there.
        if scheme == "http" && !loopback {
            let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
            return Err(SsrfError::NotHttps { url: format!("http://{host}{port}") });
        }
        Ok(())
    }

    /// Judges a host as it appears in a URL or as reqwest hands it to a resolver (which, unlike the `url`
    /// crate, has not canonicalised forms like `0x7f000001`), before any DNS: literal addresses and
    /// `localhost` names are answered here; other names must be looked up and the answer passed to
    /// [`SsrfPolicy::check_addrs`].
    pub fn pre_resolve(&self, host: &str, port: u16) -> Result<PreResolved, SsrfError> {
        match classify_host(host)? {
            HostKind::Ip(ip) => {
                self.check_ip_for(host, ip)?;
                Ok(PreResolved::Addrs(vec![SocketAddr::new(ip, port)]))
            }
            // RFC 6761: these names are loopback. Answer without DNS, so /etc/hosts or a resolver cannot
            // point them elsewhere.
            HostKind::Name(name) if is_localhost_name(&name) => {
                self.localhost_addrs(host, &name, port).map(PreResolved::Addrs)
            }
            HostKind::Name(name) => Ok(PreResolved::Lookup(name)),
        }
    }

    /// Checks every address `host` (normalised to `name` by [`SsrfPolicy::pre_resolve`]) resolved to: one
    /// forbidden address refuses the whole answer, since a client falling back from the good address to the
    /// bad one would be the attack.
    pub fn check_addrs(
        &self,
        host: &str,
        name: &str,
        addrs: impl IntoIterator<Item = SocketAddr>,
    ) -> Result<Vec<SocketAddr>, SsrfError> {
        let name_allowed = self.host_allowed(name);
        let mut out: Vec<SocketAddr> = Vec::new();
        for addr in addrs {
            self.check_resolved(host, addr.ip(), name_allowed)?;
            if !out.contains(&addr) {
                out.push(addr);
            }
        }
        if out.is_empty() {
            return Err(SsrfError::Resolve { host: host.to_owned(), why: "no addresses".to_owned() });
        }
        Ok(out)
    }

    /// One resolved address; an allowlisted name may reach private addresses (that is what allowlisting an
    /// internal IdP is for) but not the classes in [`NEVER_VIA_NAME`].
    fn check_resolved(&self, host: &str, ip: IpAddr, name_allowed: bool) -> Result<(), SsrfError> {
        if name_allowed && classify_ip(ip).1.is_none_or(|why| !NEVER_VIA_NAME.contains(&why)) {
            return Ok(());
        }
        self.check_ip_for(host, ip)
    }

    /// The loopback addresses a `localhost` name stands for, those this policy allows.
    fn localhost_addrs(&self, host: &str, name: &str, port: u16) -> Result<Vec<SocketAddr>, SsrfError> {
        let v4 = SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port);
        let v6 = SocketAddr::new(Ipv6Addr::LOCALHOST.into(), port);
        if self.allow_loopback || self.host_allowed(name) {
            return Ok(vec![v4, v6]);
        }
        // Only part of loopback may be allowlisted by CIDR; report the IPv4 address if nothing is.
        let allowed: Vec<_> = [v4, v6].into_iter().filter(|a| self.check_ip_for(host, a.ip()).is_ok()).collect();
        if allowed.is_empty() {
            self.check_ip_for(host, v4.ip())?;
        }
        Ok(allowed)
    }

    fn check_ip_for(&self, host: &str, ip: IpAddr) -> Result<(), SsrfError> {
        let (judged, class) = classify_ip(ip);
        let Some(why) = class else { return Ok(()) };
        if why == LOOPBACK && self.allow_loopback {
            return Ok(());
        }
        let exact_only = why == METADATA;
        if self.allows().any(|a| a.covers(ip, judged, exact_only)) {
            return Ok(());
        }
        Err(SsrfError::ForbiddenAddress { host: host.to_owned(), addr: judged, why })
    }

    fn host_allowed(&self, name: &str) -> bool {
        self.allows().any(|a| matches!(a, Allow::Host(h) if h == name))
    }

    /// The valid entries; parsed per check, as the policy is plain data and checks are rare (a few per
    /// OAuth flow).
    fn allows(&self) -> impl Iterator<Item = Allow> + '_ {
        self.allow.iter().filter_map(|e| parse_allow(e).ok())
    }
}

fn no_host() -> SsrfError {
    SsrfError::BadUrl { why: "the url has no host; expected an absolute https:// url".to_owned() }
}

/// The scheme as the WHATWG parser would see it (leading spaces and controls dropped, lowercased).
fn scheme_of(url: &str) -> Result<String, SsrfError> {
    let url = url.trim_start_matches(|c: char| c <= ' ');
    let bad = || SsrfError::BadUrl { why: "not an absolute url; expected https://host/...".to_owned() };
    let (scheme, _) = url.split_once(':').ok_or_else(bad)?;
    let mut chars = scheme.chars();
    let starts_alpha = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    // The length cap keeps a hostile "scheme" from filling the error message.
    if !starts_alpha || scheme.len() > 32 || !chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) {
        return Err(bad());
    }
    Ok(scheme.to_ascii_lowercase())
}

fn is_localhost_name(name: &str) -> bool {
    name == "localhost" || name.ends_with(".localhost")
}

/// Parses a host strictly: bracketed or bare IPv6, every IPv4 spelling `inet_aton` and browsers accept,
/// or a plain DNS name. Anything else is refused rather than handed to a resolver to interpret.
fn classify_host(host: &str) -> Result<HostKind, SsrfError> {
    let bad = |why: &str| SsrfError::BadUrl { why: format!("host {host} {why}") };
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return inner.parse::<Ipv6Addr>().map(|ip| HostKind::Ip(ip.into())).map_err(|_| bad("is not an ipv6 address"));
    }
    if let Ok(ip) = host.parse::<Ipv6Addr>() {
        return Ok(HostKind::Ip(ip.into()));
    }
    let name = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
    if let Some(v4) = parse_ipv4_loose(&name) {
        return v4
            .map(|ip| HostKind::Ip(ip.into()))
            .ok_or_else(|| bad("looks like an ip address but is not a valid one"));
    }
    if !is_dns_name(&name) {
        return Err(bad("is not a valid dns name"));
    }
    Ok(HostKind::Name(name))
}

/// Letters, digits, `-` and `_` in non-empty labels of at most 63 bytes, at most 253 bytes in all
/// (the `url` crate has already turned international names into `xn--` labels).
fn is_dns_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        })
}

/// IPv4 the way `inet_aton` and the WHATWG URL standard read it: one to four parts, each decimal, octal
/// (leading `0`) or hex (`0x`), the last filling the remaining bytes (`127.1`, `2130706434`).
/// `None` when the host does not end in a number (so it is a name); `Some(None)` when it does but is
/// not a valid address (WHATWG refuses those hosts; so do we, rather than let DNS guess).
/// The caller strips one trailing dot first.
fn parse_ipv4_loose(host: &str) -> Option<Option<Ipv4Addr>> {
    let last = host.rsplit('.').next().unwrap_or(host);
    let numeric = |p: &str| match p.strip_prefix("0x").or_else(|| p.strip_prefix("0X")) {
        Some(hex) => hex.bytes().all(|b| b.is_ascii_hexdigit()),
        None => !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()),
    };
    if !numeric(last) {
        return None;
    }
    let parts: Vec<&str> = host.split('.').collect();
    if parts.len() > 4 {
        return Some(None);
    }
    let mut values = Vec::with_capacity(parts.len());
    for part in &parts {
        match parse_ipv4_part(part) {
            Some(v) => values.push(v),
            None => return Some(None),
        }
    }
    let (last, init) = values.split_last()?;
    if init.iter().any(|&v| v > 255) {
        return Some(None);
    }
    // The last part fills the bytes the earlier parts left: 4 parts → 1 byte, 1 part → 4 bytes.
    let last_bits = 8 * (5 - values.len() as u32);
    if *last >= 1u64 << last_bits {
        return Some(None);
    }
    let mut addr = *last;
    for (i, &v) in init.iter().enumerate() {
        addr |= v << (24 - 8 * i as u32);
    }
    Some(u32::try_from(addr).ok().map(Ipv4Addr::from))
}

/// One part of a loose IPv4 address; `None` when it is empty, not a number in its radix, or overflows.
fn parse_ipv4_part(part: &str) -> Option<u64> {
    if part.is_empty() {
        return None;
    }
    let (digits, radix) = if let Some(hex) = part.strip_prefix("0x").or_else(|| part.strip_prefix("0X")) {
        (hex, 16)
    } else if part.len() > 1 && part.starts_with('0') {
        (&part[1..], 8)
    } else {
        (part, 10)
    };
    // WHATWG reads a bare "0x" as zero.
    if digits.is_empty() {
        return Some(0);
    }
    // from_str_radix would also take a leading '+'.
    if !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    u64::from_str_radix(digits, radix).ok()
}

/// The address to judge (an IPv6 address embedding IPv4 is judged as that IPv4 address, since that is
/// where the packets go) and its special-purpose class, if any.
fn classify_ip(ip: IpAddr) -> (IpAddr, Option<&'static str>) {
    match ip {
        IpAddr::V4(v4) => (ip, classify_v4(v4)),
        IpAddr::V6(v6) => match embedded_v4(v6) {
            Some(v4) => (v4.into(), classify_v4(v4)),
            None => (ip, classify_v6(v6)),
        },
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<&'static str> {
    V4_RANGES.iter().find(|(net, prefix, _)| in_v4(ip, *net, *prefix)).map(|(_, _, why)| *why)
}

fn classify_v6(ip: Ipv6Addr) -> Option<&'static str> {
    if let Some((_, _, why)) = V6_RANGES.iter().find(|(net, prefix, _)| in_v6(ip, *net, *prefix)) {
        return Some(why);
    }
    // Only 2000::/3 is allocated for global unicast; the rest is unassigned or special.
    if !in_v6(ip, Ipv6Addr::new(0x2000, 0, 0, 0, 0, 0, 0, 0), 3) {
        return Some("reserved");
    }
    None
}

/// The IPv4 address inside IPv4-mapped (`::ffff:a.b.c.d`), SIIT-translated (`::ffff:0:a.b.c.d`),
/// IPv4-compatible (`::a.b.c.d`, deprecated but still routed by some stacks), NAT64 well-known prefix
/// (`64:ff9b::a.b.c.d`) and 6to4 (`2002:AABB:CCDD::`) addresses.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let low = Ipv4Addr::from((u32::from(s[6]) << 16) | u32::from(s[7]));
    match s {
        [0, 0, 0, 0, 0, 0xffff, _, _] | [0, 0, 0, 0, 0xffff, 0, _, _] | [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(low),
        // `::` and `::1` are IPv6's own unspecified and loopback addresses.
        [0, 0, 0, 0, 0, 0, hi, lo] if hi != 0 || lo > 1 => Some(low),
        [0x2002, hi, lo, ..] => Some(Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo))),
        _ => None,
    }
}

fn in_v4(ip: Ipv4Addr, net: Ipv4Addr, prefix: u8) -> bool {
    let mask = u32::MAX.checked_shl(32 - u32::from(prefix.min(32))).unwrap_or(0);
    u32::from(ip) & mask == u32::from(net) & mask
}

fn in_v6(ip: Ipv6Addr, net: Ipv6Addr, prefix: u8) -> bool {
    let mask = u128::MAX.checked_shl(128 - u32::from(prefix.min(128))).unwrap_or(0);
    u128::from(ip) & mask == u128::from(net) & mask
}

/// Parses an `allow` entry: `ADDR/PREFIX`, a bare address (IPv6 optionally in brackets) or a DNS name.
fn parse_allow(entry: &str) -> Result<Allow, String> {
    let entry = entry.trim();
    let ip = |s: &str| s.strip_prefix('[').and_then(|s| s.strip_suffix(']')).unwrap_or(s).parse::<IpAddr>();
    if let Some((addr, prefix)) = entry.split_once('/') {
        let addr = ip(addr).map_err(|_| format!("{addr:?} is not an ip address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| *p <= max)
            .ok_or_else(|| format!("the prefix length must be a number from 0 to {max}"))?;
        // Host bits set usually means a typo ("10.1.2.3/8"), which would allow far more than meant.
        let aligned = match addr {
            IpAddr::V4(a) => u32::from(a) & !u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0) == 0,
            IpAddr::V6(a) => u128::from(a) & !u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0) == 0,
        };
        if !aligned {
            return Err(format!("{addr} has bits set beyond the /{prefix} prefix; write the network address"));
        }
        return Ok(Allow::Net { addr, prefix });
    }
    if let Ok(addr) = ip(entry) {
        return Ok(Allow::Net { addr, prefix: if addr.is_ipv4() { 32 } else { 128 } });
    }
    let name = entry.strip_suffix('.').unwrap_or(entry).to_ascii_lowercase();
    if parse_ipv4_loose(&name).is_some() || !is_dns_name(&name) {
        return Err("expected a host name, an ip address or a CIDR range like 10.1.2.0/24".to_owned());
    }
    Ok(Allow::Host(name))
}

// === impl Allow ===

impl Allow {
    /// Whether this entry allows `ip` (judged as `judged`). The metadata service is only unlocked by an
    /// entry naming its exact address, so allowlisting a link-local range does not expose credentials.
    fn covers(&self, ip: IpAddr, judged: IpAddr, exact_only: bool) -> bool {
        let Allow::Net { addr, prefix } = *self else { return false };
        match addr {
            IpAddr::V4(net) => {
                let IpAddr::V4(v4) = judged else { return false };
                (!exact_only || prefix == 32) && in_v4(v4, net, prefix)
            }
            IpAddr::V6(net) => {
                let hit = |a: IpAddr| matches!(a, IpAddr::V6(v6) if in_v6(v6, net, prefix));
                (!exact_only || prefix == 128) && (hit(ip) || hit(judged))
            }
        }
    }
}

#[cfg(test)]
mod tests;
