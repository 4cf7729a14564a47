//! The MCP front end's settings: `[daemon] mcp_*` (the Streamable HTTP endpoint) and
//! `[profiles.NAME]` (what each host sees).

use std::collections::BTreeMap;
use std::ops::Range;

use super::model::{DaemonConfig, Discovery, McpAuth, NameStyle, ProfileConfig, ServerConfig, TlsFiles, ToolFilter};
use super::pipeline::PIPELINE_SERVER;
use super::reader::{FileCtx, Val};

pub(crate) const MCP_DAEMON_KEYS: &[&str] =
    &["mcp_listen", "mcp_auth", "mcp_token", "mcp_origins", "mcp_hosts", "mcp_tls_cert", "mcp_tls_key"];
const PROFILE_KEYS: &[&str] = &["servers", "tools", "names", "discovery"];
const PROFILE_TOOLS_KEYS: &[&str] = &["allow", "deny"];

/// Reads one `mcp_*` key of `[daemon]`; `false` if `key` is not one of them.
pub(crate) fn daemon_key(ctx: &mut FileCtx<'_>, d: &mut DaemonConfig, key: &str, v: &Val<'_>) -> bool {
    let m = &mut d.mcp;
    match key {
        "mcp_listen" => {
            if let Some(text) = ctx.string(key, v) {
                match text.parse::<std::net::SocketAddr>() {
                    Ok(addr) => m.listen = Some(addr),
                    Err(_) => ctx.report(
                        v.span(),
                        format!(
                            "\"mcp_listen\" must be an address with a port, e.g. \"127.0.0.1:8765\", found {text:?}"
                        ),
                    ),
                }
            }
        }
        "mcp_auth" => {
            if let Some(a) = ctx.choice(key, v, &[("token", McpAuth::Token), ("none", McpAuth::None)]) {
                m.auth = a;
            }
        }
        "mcp_token" => {
            // Only a file reference: the token is written there on first start, and a token
            // spelled out in the config would sit in every backup of it.
            if let Some(text) = ctx.string(key, v) {
                match text.strip_prefix("${file:").and_then(|r| r.strip_suffix('}')) {
                    Some(path) if !path.is_empty() && !path.contains("${") => {
                        m.token_file = Some(ctx.dir.join(path));
                    }
                    _ => ctx.report(
                        v.span(),
                        "\"mcp_token\" must be \"${file:PATH}\": the file holding the token (written, mode 0600, on first start if absent)",
                    ),
                }
            }
        }
        "mcp_origins" => {
            let check = |o: &str| {
                let ok = (o.starts_with("http://") || o.starts_with("https://")) && o.len() > "https://".len();
                (!ok).then(|| {
                    format!("invalid origin \"{o}\" in \"mcp_origins\", expected e.g. \"http://localhost:6274\"")
                })
            };
            if let Some(list) = ctx.strings(key, v, false, &check) {
                m.origins = list;
            }
        }
        "mcp_hosts" => {
            let check = |h: &str| {
                let ok = !h.is_empty()
                    && h.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
                (!ok).then(|| format!("invalid host \"{h}\" in \"mcp_hosts\", expected a name or name:port"))
            };
            if let Some(list) = ctx.strings(key, v, false, &check) {
                m.hosts = list;
            }
        }
        "mcp_tls_cert" => {
            if let Some(p) = ctx.path(key, v) {
                let key_path = m.tls.as_ref().map(|t| t.key.clone()).unwrap_or_default();
                m.tls = Some(TlsFiles { cert: p, key: key_path });
            }
        }
        "mcp_tls_key" => {
            if let Some(p) = ctx.path(key, v) {
                let cert = m.tls.as_ref().map(|t| t.cert.clone()).unwrap_or_default();
                m.tls = Some(TlsFiles { cert, key: p });
            }
        }
        _ => return false,
    }
    true
}

/// The rules that join several `mcp_*` keys, reported at the `[daemon]` table.
pub(crate) fn check_daemon(ctx: &mut FileCtx<'_>, d: &DaemonConfig, at: Range<usize>) {
    let m = &d.mcp;
    if let Some(t) = &m.tls
        && (t.cert.as_os_str().is_empty() || t.key.as_os_str().is_empty())
    {
        ctx.report(at.clone(), "\"mcp_tls_cert\" and \"mcp_tls_key\" go together: set both or neither");
    }
    let Some(addr) = m.listen else { return };
    if addr.ip().is_loopback() {
        return;
    }
    if m.auth == McpAuth::None {
        ctx.report(
            at.clone(),
            format!("\"mcp_auth = \\\"none\\\"\" is for a loopback \"mcp_listen\" only, found {addr}"),
        );
    }
    if m.tls.is_none() {
        ctx.report(
            at,
            format!("a non-loopback \"mcp_listen\" ({addr}) needs TLS: set \"mcp_tls_cert\" and \"mcp_tls_key\""),
        );
    }
}

/// `[profiles]`: each `[profiles.NAME]` table. Server names are checked later
/// ([`check_profiles`]), once included files have added their servers.
pub(crate) fn parse_profiles(ctx: &mut FileCtx<'_>, v: &Val<'_>) -> BTreeMap<String, (ProfileConfig, Range<usize>)> {
    let mut out = BTreeMap::new();
    let Some(table) = ctx.table("profiles", v) else { return out };
    for (k, v) in table.iter() {
        let name = k.get_ref().as_ref();
        let valid = !name.is_empty()
            && name.len() <= 32
            && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_'));
        if !valid {
            ctx.report(k.span(), format!("invalid profile name \"{name}\", use 1-32 of a-z, 0-9, \"-\" and \"_\""));
            continue;
        }
        if let Some(p) = parse_profile(ctx, name, v) {
            out.insert(name.to_owned(), (p, k.span()));
        }
    }
    out
}

fn parse_profile(ctx: &mut FileCtx<'_>, name: &str, v: &Val<'_>) -> Option<ProfileConfig> {
    let place = format!("in [profiles.{name}]");
    let table = ctx.table(&format!("profiles.{name}"), v)?;
    let mut p = ProfileConfig {
        name: name.to_owned(),
        servers: None,
        tools: ToolFilter::default(),
        names: NameStyle::Dotted,
        discovery: Discovery::List,
    };
    let mut ok = true;
    for (k, v) in table.iter() {
        let key = k.get_ref().as_ref();
        match key {
            "servers" => match ctx.strings(key, v, false, &|_| None) {
                Some(list) => p.servers = Some(list),
                None => ok = false,
            },
            "names" => {
                let options: Vec<_> = NameStyle::ALL.iter().map(|n| (n.as_str(), *n)).collect();
                match ctx.choice(key, v, &options) {
                    Some(n) => p.names = n,
                    None => ok = false,
                }
            }
            "discovery" => {
                let options: Vec<_> = Discovery::ALL.iter().map(|d| (d.as_str(), *d)).collect();
                match ctx.choice(key, v, &options) {
                    Some(d) => p.discovery = d,
                    None => ok = false,
                }
            }
            "tools" => {
                let Some(t) = ctx.table("tools", v) else {
                    ok = false;
                    continue;
                };
                for (tk, tv) in t.iter() {
                    let tkey = tk.get_ref().as_ref();
                    if !matches!(tkey, "allow" | "deny") {
                        ctx.unknown_key(tk, PROFILE_TOOLS_KEYS, &format!("in [profiles.{name}.tools]"));
                        ok = false;
                        continue;
                    }
                    let path = format!("tools.{tkey}");
                    let check = |g: &str| {
                        let valid = !g.is_empty()
                            && g.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '*' | '?' | '-'));
                        (!valid).then(|| format!("invalid tool pattern \"{g}\" in \"{path}\", use only letters, digits, \"_\", \".\", \"-\", \"*\" and \"?\""))
                    };
                    match ctx.strings(&path, tv, false, &check) {
                        Some(globs) if tkey == "allow" => p.tools.allow = globs,
                        Some(globs) => p.tools.deny = globs,
                        None => ok = false,
                    }
                }
            }
            _ => {
                ctx.unknown_key(k, PROFILE_KEYS, &place);
                ok = false;
            }
        }
    }
    ok.then_some(p)
}

/// Every profile names only configured servers (or `pipeline`), and a `bare` profile
/// serves exactly one, so its names cannot collide.
pub(crate) fn check_profiles(
    ctx: &mut FileCtx<'_>,
    profiles: BTreeMap<String, (ProfileConfig, Range<usize>)>,
    servers: &BTreeMap<String, ServerConfig>,
) -> BTreeMap<String, ProfileConfig> {
    let mut out = BTreeMap::new();
    for (name, (p, span)) in profiles {
        let mut ok = true;
        for s in p.servers.iter().flatten() {
            if s != PIPELINE_SERVER && !servers.contains_key(s) {
                ctx.report(span.clone(), format!("profile \"{name}\" names server \"{s}\", which is not configured"));
                ok = false;
            }
        }
        if p.names == NameStyle::Bare && p.servers.as_ref().is_none_or(|s| s.len() != 1) {
            ctx.report(
                span.clone(),
                format!("profile \"{name}\" has names = \"bare\", which needs exactly one server in \"servers\""),
            );
            ok = false;
        }
        if ok {
            out.insert(name, p);
        }
    }
    out
}
