//! Call policy: rate limits per calling app, per server and per tool, and the confirmation
//! step for destructive tools. Rebuilt from the config on every (re)load; checked on every call.
use std::{collections::HashMap, time::Duration};

use crate::{
    config::Config,
    limit::{Limiter, Rate},
};

/// Why a call was refused by policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Over a rate limit: which one, its rate, and when to retry.
    RateLimited { scope: String, rate: Rate, retry_after: Duration },
}

struct Limited {
    rate: Rate,
    limiter: Limiter,
}

impl Limited {
    fn new(rate: Rate) -> Self {
        Self { rate, limiter: Limiter::new(rate) }
    }
}

/// Limits built from one config.
#[derive(Default)]
pub struct Policy {
    app: Option<Limited>,
    servers: HashMap<String, Limited>,
    /// Keyed `server.tool`.
    tools: HashMap<String, Limited>,
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policy")
            .field("servers", &self.servers.len())
            .field("tools", &self.tools.len())
            .finish_non_exhaustive()
    }
}

// === impl Policy ===

impl Policy {
    pub fn from_config(cfg: &Config) -> Self {
        let mut p = Policy { app: cfg.daemon.app_rate_limit.map(Limited::new), ..Default::default() };
        for (name, s) in &cfg.servers {
            if let Some(r) = s.rate_limit {
                p.servers.insert(name.clone(), Limited::new(r));
            }
            for (tool, r) in &s.tool_rate_limits {
                p.tools.insert(format!("{name}.{tool}"), Limited::new(*r));
            }
        }
        p
    }

    /// Checks (and counts) one call of `server.tool` by `app`. Checked narrowest first so a
    /// refused call does not use up the wider budgets.
    pub fn check(&self, app: &str, server: &str, qualified: &str) -> Result<(), Refusal> {
        if let Some(l) = self.tools.get(qualified) {
            l.limiter.check("").map_err(|retry_after| Refusal::RateLimited {
                scope: format!("tool {qualified}"),
                rate: l.rate,
                retry_after,
            })?;
        }
        if let Some(l) = self.servers.get(server) {
            l.limiter.check("").map_err(|retry_after| Refusal::RateLimited {
                scope: format!("server {server}"),
                rate: l.rate,
                retry_after,
            })?;
        }
        if let Some(l) = &self.app {
            l.limiter.check(app).map_err(|retry_after| Refusal::RateLimited {
                scope: format!("app {app}"),
                rate: l.rate,
                retry_after,
            })?;
        }
        Ok(())
    }

    /// Drops idle per-app buckets so many short-lived apps cannot grow memory.
    pub fn retain_recent(&self) {
        if let Some(l) = &self.app {
            l.limiter.retain_recent();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(text: &str) -> Config {
        crate::config::load_str(text, std::path::Path::new("t.toml"), &|_| None).expect("valid config")
    }

    #[test]
    fn narrowest_limit_is_named() {
        let c = cfg(
            "[daemon]\napp_rate_limit = \"100/s\"\n[servers.a]\ncommand = \"x\"\nrate_limit = \"50/s\"\ntool_rate_limits = { echo = \"2/s\" }\n",
        );
        let p = Policy::from_config(&c);
        assert!(p.check("app1", "a", "a.echo").is_ok());
        assert!(p.check("app1", "a", "a.echo").is_ok());
        match p.check("app1", "a", "a.echo") {
            Err(Refusal::RateLimited { scope, rate, retry_after }) => {
                assert_eq!(scope, "tool a.echo");
                assert_eq!(rate.to_string(), "2/s");
                assert!(retry_after > Duration::ZERO && retry_after <= Duration::from_secs(1));
            }
            other => panic!("{other:?}"),
        }
        // Other tools of the server are still under the server's limit.
        assert!(p.check("app1", "a", "a.other").is_ok());
    }

    #[test]
    fn apps_are_limited_separately() {
        let c = cfg("[daemon]\napp_rate_limit = \"1/m\"\n[servers.a]\ncommand = \"x\"\n");
        let p = Policy::from_config(&c);
        assert!(p.check("uid:1 pid:1", "a", "a.t").is_ok());
        assert!(
            matches!(p.check("uid:1 pid:1", "a", "a.t"), Err(Refusal::RateLimited { scope, .. }) if scope == "app uid:1 pid:1")
        );
        assert!(p.check("uid:1 pid:2", "a", "a.t").is_ok());
    }
}
