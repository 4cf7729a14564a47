//! Command-line parsing and the client verbs. Verbs talk to the daemon only through `mcpd-client`.
use std::{path::PathBuf, process::ExitCode, time::Duration};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use mcpd::config::{self, EXIT_CONFIG, LogFormat};
use mcpd_client::Client;

mod mcp;
mod render;
mod store;

/// Exit codes (documented in README.md).
const EXIT_FAILURE: u8 = 1;
const EXIT_USAGE: u8 = 64;
const EXIT_UNAVAILABLE: u8 = 69;
const EXIT_SOFTWARE: u8 = 70;

#[derive(Parser, Debug)]
#[command(name = "mcpd", version, about = "One MCP client for the whole machine")]
struct Cli {
    /// The daemon's socket (client verbs) or where to bind it (serve).
    #[arg(long, global = true, env = "MCPD_SOCKET")]
    socket: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the daemon.
    Serve {
        /// Config file.
        #[arg(long, short, env = "MCPD_CONFIG")]
        config: Option<PathBuf>,
        /// State directory (sled store), overriding the config.
        #[arg(long, env = "MCPD_STATE_DIR")]
        state_dir: Option<PathBuf>,
    },
    /// Config file tools.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// The state store, offline (stop the daemon first): verify it, or reset trust.
    Store {
        #[command(subcommand)]
        command: store::StoreCommand,
    },
    /// Show every server's state, protocol, tools, last error and next retry.
    Status {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
        /// Redraw every SECS seconds until interrupted (default 2).
        #[arg(long, short, value_name = "SECS", num_args = 0..=1, default_missing_value = "2")]
        watch: Option<f64>,
        /// First wait (at most SECS seconds, default 60) until no server is `starting`, so the
        /// table shows where each server settled.
        #[arg(long, value_name = "SECS", num_args = 0..=1, default_missing_value = "60", conflicts_with = "watch")]
        settle: Option<f64>,
    },
    /// List tools (of one server, or all), or search them: `mcpd tools --search "post to chat"`.
    Tools {
        server: Option<String>,
        #[arg(long)]
        json: bool,
        /// Rank tools against a task in words instead of listing them (quarantined and
        /// app-only tools are left out).
        #[arg(long, value_name = "QUERY")]
        search: Option<String>,
        /// How many search results.
        #[arg(short = 'k', long = "top", default_value_t = 10, requires = "search")]
        k: u32,
    },
    /// Call a tool: `mcpd call server.tool '{"arg": 1}'`.
    Call {
        name: String,
        /// JSON object of arguments (default `{}`; `-` reads standard input).
        arguments: Option<String>,
        /// Deadline in seconds (default: the server's call_timeout).
        #[arg(long)]
        timeout: Option<f64>,
        /// Print the whole result as JSON.
        #[arg(long)]
        json: bool,
        /// Confirm a tool annotated destructive (needed where the server sets confirm_destructive).
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Run a bounded agent loop: `mcpd agent "summarise the open issues"`.
    Agent {
        task: String,
        /// `[llm.NAME]` (default: the first configured provider).
        #[arg(long)]
        provider: Option<String>,
        /// Override the provider's model.
        #[arg(long)]
        model: Option<String>,
        /// Only tools of this server (repeatable).
        #[arg(long = "server")]
        servers: Vec<String>,
        /// Only tools matching this `server.tool` glob (repeatable).
        #[arg(long = "tool")]
        tools: Vec<String>,
        #[arg(long, default_value_t = 10)]
        max_iterations: u32,
        #[arg(long, default_value_t = 50)]
        max_tool_calls: u32,
        /// Token budget over the whole run (0 = none).
        #[arg(long, default_value_t = 0)]
        max_tokens: u64,
        /// Deadline in seconds.
        #[arg(long, default_value_t = 300.0)]
        deadline: f64,
        /// How the model gets the tools: "auto" (all of them up to the provider's
        /// `max_tools`, else search), "full" or "search" (only search_tools, describe_tool
        /// and call_tool).
        #[arg(long, default_value = "auto", value_parser = ["auto", "full", "search"])]
        discovery: String,
        /// One JSON event per line.
        #[arg(long)]
        json: bool,
    },
    /// Tool trust: list fingerprints and quarantines, diff, approve, revoke.
    Trust {
        #[command(subcommand)]
        command: TrustCommand,
    },
    /// OAuth for remote servers: log in, show status, log out. Tokens stay in the daemon.
    Auth {
        #[command(subcommand)]
        command: AuthCommand,
    },
    /// The audit log: every call with app (and the agent or pipeline run it was a step of), tool, argument hash, outcome and duration.
    Audit {
        /// Only calls to this server.
        server: Option<String>,
        /// How many records (newest first).
        #[arg(long, short = 'n', default_value_t = 50)]
        limit: u32,
        #[arg(long)]
        json: bool,
    },
    /// List resources (of one server, or all); `--templates` lists resource templates too.
    Resources {
        server: Option<String>,
        #[arg(long)]
        templates: bool,
        #[arg(long)]
        json: bool,
    },
    /// Read a resource: `mcpd read SERVER URI` (served from mcpd's cache while fresh).
    Read {
        server: String,
        uri: String,
        /// Skip the cache.
        #[arg(long)]
        fresh: bool,
        #[arg(long)]
        json: bool,
    },
    /// List prompts (of one server, or all).
    Prompts {
        server: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Get a prompt: `mcpd prompt server.prompt [NAME=VALUE ...]`.
    Prompt {
        name: String,
        /// Arguments as NAME=VALUE.
        arguments: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// Re-read the config file and apply changes (only changed servers restart).
    Reload {
        #[arg(long)]
        json: bool,
    },
    /// Show what a stdio server wrote to stderr (the last lines mcpd kept).
    Logs {
        server: String,
        /// How many lines (0 = all kept).
        #[arg(long, short = 'n', default_value_t = 50)]
        lines: u32,
        /// One JSON array of lines.
        #[arg(long)]
        json: bool,
    },
    /// Stream daemon events (state changes, tool list changes, errors).
    Events {
        server: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Serve MCP on stdin/stdout for a host that launches `mcpd mcp` (Claude Desktop, Claude
    /// Code, Cursor, VS Code, the Inspector): bridged to the running daemon, never a daemon
    /// of its own. `mcpd config snippet HOST` prints the host's config entry.
    Mcp {
        /// The `[profiles.NAME]` deciding what the host sees (default: `default`).
        #[arg(long)]
        profile: Option<String>,
    },
    /// Print a shell completion script: `mcpd completions bash > /etc/bash_completion.d/mcpd`.
    Completions { shell: clap_complete::Shell },
}

#[derive(Subcommand, Debug)]
enum TrustCommand {
    /// Every tool's trust state, fingerprint and pin (or one server's).
    List {
        server: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// The approved definition of `server.tool` against what the server sends now.
    Diff {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Approve the current definition of `server.tool`, or of every tool of `server`.
    Approve { target: String },
    /// Revoke trust in `server.tool`, or in every tool of `server`.
    Revoke { target: String },
}

#[derive(Subcommand, Debug)]
enum AuthCommand {
    /// Log in to SERVER: prints the URL to open; mcpd takes the redirect on 127.0.0.1.
    Login {
        server: String,
        /// Open the URL with this program (e.g. `xdg-open`; for headless runs any program
        /// that follows the redirects, like `curl -sSfL -o /dev/null`); split on spaces.
        #[arg(long)]
        browser: Option<String>,
        /// One JSON event per line.
        #[arg(long)]
        json: bool,
    },
    /// Who is logged in where, which scopes, when tokens expire (never the tokens).
    Status {
        server: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Forget SERVER's tokens and client registration.
    Logout { server: String },
    /// Print the client ID metadata document to host at URL (the `client_metadata_url`
    /// of a server's [oauth]); needs no daemon.
    ClientMetadata {
        /// Where the document will be served (https, with a path): it is also the client ID.
        url: String,
        /// `client_name` shown on consent screens.
        #[arg(long, default_value = "mcpd")]
        name: String,
        /// The `redirect_port` configured, if any (loopback redirects may use any port otherwise).
        #[arg(long, default_value_t = 0)]
        port: u16,
    },
}

#[derive(Subcommand, Debug)]
enum ConfigCommand {
    /// Validate config files without starting anything; lists every problem.
    Check {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Convert another client's MCP servers (Claude Desktop, Claude Code, Cursor, VS Code) to mcpd TOML.
    Import {
        /// The client's JSON config file (`-` reads standard input).
        file: PathBuf,
        /// The input format (default: detected from the file's shape).
        #[arg(long, value_parser = clap::builder::TypedValueParser::try_map(
            clap::builder::PossibleValuesParser::new(mcpd::import::Format::NAMES),
            |s| s.parse::<mcpd::import::Format>(),
        ))]
        format: Option<mcpd::import::Format>,
        /// Write the TOML to this file instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// Overwrite --output if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Print the entry that makes a host launch `mcpd mcp`, to paste into its config.
    Snippet {
        #[arg(value_enum)]
        host: mcp::Host,
        /// The profile the host gets.
        #[arg(long)]
        profile: Option<String>,
    },
}

pub(crate) fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { ExitCode::from(EXIT_USAGE) } else { ExitCode::SUCCESS };
        }
    };
    match cli.command {
        Command::Serve { config, state_dir } => serve(cli.socket, config, state_dir),
        Command::Config { command: ConfigCommand::Check { files } } => config_check(&files),
        Command::Config { command: ConfigCommand::Import { file, format, output, force } } => {
            config_import(&file, format, output.as_deref(), force)
        }
        Command::Auth { command: AuthCommand::ClientMetadata { url, name, port } } => {
            match mcpd::oauth::client_metadata_document(&url, &name, port) {
                Ok(doc) => {
                    println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("mcpd: {e}");
                    ExitCode::from(EXIT_USAGE)
                }
            }
        }
        Command::Config { command: ConfigCommand::Snippet { host, profile } } => {
            mcp::snippet(host, cli.socket, profile)
        }
        Command::Mcp { profile } => mcp::bridge(cli.socket, profile),
        Command::Store { command } => store::run(command),
        Command::Completions { shell } => {
            use clap::CommandFactory as _;
            clap_complete::generate(shell, &mut Cli::command(), "mcpd", &mut std::io::stdout());
            ExitCode::SUCCESS
        }
        other => client_verb(cli.socket, other),
    }
}

pub(crate) fn default_config_path() -> PathBuf {
    if let Some(dir) = std::env::var_os("XDG_CONFIG_HOME").filter(|d| !d.is_empty()) {
        let p = PathBuf::from(dir).join("mcpd/mcpd.toml");
        if p.exists() {
            return p;
        }
    }
    if let Some(home) = std::env::var_os("HOME") {
        let p = PathBuf::from(home).join(".config/mcpd/mcpd.toml");
        if p.exists() {
            return p;
        }
    }
    PathBuf::from("/etc/mcpd/mcpd.toml")
}

fn serve(socket: Option<PathBuf>, config_path: Option<PathBuf>, state_dir: Option<PathBuf>) -> ExitCode {
    let config_path = config_path.unwrap_or_else(default_config_path);
    let cfg = match config::load(&config_path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("mcpd: the config has {} problem(s):\n{e}", e.problems.len());
            return ExitCode::from(EXIT_CONFIG as u8);
        }
    };
    init_tracing(cfg.daemon.log_format, &cfg.daemon.log_level);
    let opts = mcpd::serve::ServeOptions {
        config_path: config_path.canonicalize().unwrap_or(config_path),
        socket: socket.unwrap_or_else(|| cfg.socket_path()),
        state_dir: state_dir.unwrap_or_else(|| cfg.state_dir()),
        reaper_exe: std::env::current_exe().ok(),
    };
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    // TOKIO_WORKER_THREADS, when set, is tokio's to read; an explicit count would hide it.
    if std::env::var_os("TOKIO_WORKER_THREADS").is_none_or(|v| v.is_empty()) {
        builder.worker_threads(mcpd::serve::worker_threads(cfg.daemon.worker_threads));
    }
    let rt = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mcpd: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_SOFTWARE);
        }
    };
    match rt.block_on(mcpd::serve::serve(cfg, opts)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("mcpd: {e}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

fn init_tracing(format: LogFormat, level: &str) {
    use tracing_subscriber::EnvFilter;
    // RUST_LOG wins over the config so an operator can turn up logging without editing it.
    // rmcp logs every handshake at info with the server's whole instructions text; keep
    // it at warn unless the operator asks for it by name.
    let directives = if level.contains("rmcp") { level.to_owned() } else { format!("{level},rmcp=warn") };
    let chosen = std::env::var("RUST_LOG").ok().filter(|v| !v.trim().is_empty()).unwrap_or(directives);
    let mut filter = EnvFilter::new(&chosen);
    // rmcp's OAuth code logs authorization codes at debug: never below info unless that
    // target is asked for by name (`rmcp=debug` alone does not reach it).
    if !chosen.contains("rmcp::transport::auth")
        && let Ok(cap) = "rmcp::transport::auth=info".parse()
    {
        filter = filter.add_directive(cap);
    }
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| mcpd::util::Scrubbed(std::io::stderr()))
        .with_ansi(ansi);
    // Under systemd the journal adds its own timestamps.
    let under_journal = std::env::var_os("JOURNAL_STREAM").is_some();
    let _ = match (format, under_journal) {
        (LogFormat::Json, _) => builder.json().try_init(),
        (LogFormat::Text, true) => builder.without_time().try_init(),
        (LogFormat::Text, false) => builder.try_init(),
    };
}

fn config_check(files: &[PathBuf]) -> ExitCode {
    let mut bad = 0;
    for f in files {
        match config::load(f) {
            Ok(cfg) => println!("{}: ok ({} servers)", f.display(), cfg.servers.len()),
            Err(e) => {
                bad += 1;
                eprintln!("{}: {} problem(s)\n{e}", f.display(), e.problems.len());
            }
        }
    }
    if bad > 0 { ExitCode::from(EXIT_CONFIG as u8) } else { ExitCode::SUCCESS }
}

fn client_verb(socket: Option<PathBuf>, cmd: Command) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mcpd: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_SOFTWARE);
        }
    };
    match rt.block_on(run_verb(socket, cmd)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("mcpd: {e:#}");
            match e.downcast_ref::<mcpd_client::ClientError>() {
                Some(mcpd_client::ClientError::Connect { .. }) => ExitCode::from(EXIT_UNAVAILABLE),
                _ => ExitCode::from(EXIT_FAILURE),
            }
        }
    }
}

async fn run_verb(socket: Option<PathBuf>, cmd: Command) -> anyhow::Result<ExitCode> {
    let mut client = match socket {
        Some(p) => Client::connect_unix(p).await?,
        None => Client::connect_default().await?,
    };
    match cmd {
        Command::Status { json, watch, settle } => {
            let every = match watch {
                Some(t) if t.is_finite() && t >= 0.1 => Some(Duration::from_secs_f64(t)),
                Some(_) => anyhow::bail!("--watch takes a number of seconds, at least 0.1"),
                None => None,
            };
            match settle {
                Some(t) if t.is_finite() && t >= 0.0 => {
                    let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(t);
                    loop {
                        let st = client.status().await?;
                        let starting: Vec<&str> = st
                            .servers
                            .iter()
                            .filter(|s| s.state == mcpd_client::proto::ServerState::Starting as i32)
                            .map(|s| s.name.as_str())
                            .collect();
                        if starting.is_empty() {
                            break;
                        }
                        if tokio::time::Instant::now() >= deadline {
                            eprintln!("still starting after {t}s: {}", starting.join(", "));
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
                Some(_) => anyhow::bail!("--settle takes a number of seconds"),
                None => {}
            }
            loop {
                let st = client.status().await?;
                if json {
                    // One JSON document per line when watching, so scripts can stream it.
                    let v = render::status_json(&st);
                    if every.is_some() {
                        println!("{}", serde_json::to_string(&v)?);
                    } else {
                        println!("{}", serde_json::to_string_pretty(&v)?);
                    }
                } else {
                    if every.is_some() && std::io::IsTerminal::is_terminal(&std::io::stdout()) {
                        // Clear the screen and home the cursor, like watch(1).
                        print!("\x1b[2J\x1b[H");
                    }
                    print!("{}", render::status_table(&st));
                }
                let Some(every) = every else { break };
                std::io::Write::flush(&mut std::io::stdout())?;
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = tokio::signal::ctrl_c() => break,
                }
            }
        }
        Command::Agent {
            task,
            provider,
            model,
            servers,
            tools,
            max_iterations,
            max_tool_calls,
            max_tokens,
            deadline,
            discovery,
            json,
        } => {
            if !(deadline.is_finite() && deadline > 0.0) {
                anyhow::bail!("--deadline must be a positive number of seconds");
            }
            let req = mcpd_client::proto::RunAgentRequest {
                task,
                provider: provider.unwrap_or_default(),
                model: model.unwrap_or_default(),
                servers,
                tools,
                max_iterations,
                max_tool_calls,
                max_tokens,
                deadline_ms: (deadline * 1000.0) as u64,
                discovery: match discovery.as_str() {
                    "full" => mcpd_client::proto::AgentDiscovery::Full,
                    "search" => mcpd_client::proto::AgentDiscovery::Search,
                    _ => mcpd_client::proto::AgentDiscovery::Auto,
                } as i32,
                ..Default::default()
            };
            let mut stream = client.run_agent(req).await?;
            let mut answer = None;
            while let Some(ev) = stream.message().await? {
                if json {
                    println!("{}", render::agent_json(&ev));
                    continue;
                }
                match render::agent_line(&ev) {
                    render::AgentLine::Progress(line) => eprintln!("{line}"),
                    render::AgentLine::Answer(text) => answer = Some(text),
                }
            }
            if let Some(text) = answer {
                println!("{text}");
            }
        }
        Command::Trust { command } => match command {
            TrustCommand::List { server, json } => {
                let entries = client.trust_list(server.as_deref()).await?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&render::trust_json(&entries))?);
                } else {
                    print!("{}", render::trust_table(&entries));
                }
            }
            TrustCommand::Diff { name, json } => {
                let d = client.trust_diff(&name).await?;
                if json {
                    let v = serde_json::json!({
                        "old": d.old_json, "new": d.new_json, "diff": d.diff, "changed_fields": d.changed_fields,
                    });
                    println!("{}", serde_json::to_string_pretty(&v)?);
                } else if d.old_json.is_empty() {
                    println!("{} has no approved definition; it is now:", render::safe(&name));
                    println!("{}", render::safe_block(&d.new_json));
                } else if d.diff.is_empty() || d.old_json == d.new_json {
                    println!("{} is unchanged since it was approved", render::safe(&name));
                } else {
                    println!("changed: {}", d.changed_fields.join(", "));
                    print!("{}", render::safe_block(&d.diff));
                }
            }
            TrustCommand::Approve { target } => {
                let changed = client.trust_approve(&target).await?;
                println!("approved {} tool(s): {}", changed.len(), changed.join(", "));
            }
            TrustCommand::Revoke { target } => {
                let changed = client.trust_revoke(&target).await?;
                println!("revoked {} tool(s): {}", changed.len(), changed.join(", "));
            }
        },
        Command::Auth { command } => auth(&mut client, command).await?,
        Command::Audit { server, limit, json } => {
            let records = client.audit(limit, server.as_deref()).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&render::audit_json(&records))?);
            } else {
                print!("{}", render::audit_table(&records));
            }
        }
        Command::Resources { server, templates, json } => {
            let r = client.list_resources(server.as_deref()).await?;
            let t = if templates { Some(client.list_resource_templates(server.as_deref()).await?) } else { None };
            if json {
                println!("{}", serde_json::to_string_pretty(&render::resources_json(&r, t.as_ref()))?);
            } else {
                print!("{}", render::resources_table(&r));
                if let Some(t) = &t {
                    println!();
                    print!("{}", render::templates_table(t));
                }
            }
        }
        Command::Read { server, uri, fresh, json } => {
            let r = client.read_resource(&server, &uri, fresh).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&render::read_json(&r))?);
            } else {
                print!("{}", render::read_text(&r));
            }
        }
        Command::Prompts { server, json } => {
            let r = client.list_prompts(server.as_deref()).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&render::prompts_json(&r))?);
            } else {
                print!("{}", render::prompts_table(&r));
            }
        }
        Command::Prompt { name, arguments, json } => {
            let mut args = Vec::new();
            for a in arguments {
                let Some((k, v)) = a.split_once('=') else {
                    eprintln!("mcpd: prompt arguments are NAME=VALUE, got {:?}", render::safe(&a));
                    return Ok(ExitCode::from(EXIT_USAGE));
                };
                args.push((k.to_owned(), v.to_owned()));
            }
            let r = client.get_prompt(&name, args).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&render::prompt_json(&r))?);
            } else {
                print!("{}", render::prompt_text(&r));
            }
        }
        Command::Tools { server, json, search: Some(query), k } => {
            let servers: Vec<String> = server.into_iter().collect();
            let hits = client.search_tools(&query, k, &servers).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&render::hits_json(&hits))?);
            } else {
                print!("{}", render::hits_table(&hits));
            }
        }
        Command::Tools { server, json, search: None, .. } => {
            let tools = client.list_tools(server.as_deref()).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&render::tools_json(&tools))?);
            } else {
                print!("{}", render::tools_table(&tools));
            }
        }
        Command::Call { name, arguments, timeout, json, yes } => {
            let args = match arguments.as_deref() {
                Some("-") => {
                    std::io::read_to_string(std::io::stdin()).context("reading arguments from standard input")?
                }
                Some(a) => a.to_owned(),
                None => "{}".to_owned(),
            };
            let timeout = match timeout {
                Some(t) if t.is_finite() && t > 0.0 => Some(Duration::from_secs_f64(t)),
                Some(_) => anyhow::bail!("--timeout must be a positive number of seconds"),
                None => None,
            };
            let interactive = !json && std::io::IsTerminal::is_terminal(&std::io::stderr());
            let req = mcpd_client::proto::CallToolRequest {
                name: name.clone(),
                arguments_json: args,
                timeout_ms: timeout.map(|t| t.as_millis() as u64).unwrap_or(0),
                confirm: yes,
            };
            let result = client
                .call_with_progress(req, |p| {
                    if interactive {
                        eprintln!("{}", render::progress_line(&p));
                    }
                })
                .await?;
            if result.redactions > 0 && !json {
                eprintln!("mcpd: {} secret(s) were redacted from this result", result.redactions);
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&render::call_json(&result))?);
            } else {
                print!("{}", render::call_text(&result));
            }
            if result.is_error {
                return Ok(ExitCode::from(EXIT_FAILURE));
            }
        }
        Command::Reload { json } => {
            let r = client.reload().await?;
            if json {
                let v = serde_json::json!({
                    "applied": r.applied, "problems": r.problems, "added": r.added, "changed": r.changed,
                    "removed": r.removed, "needs_restart": r.needs_restart,
                });
                println!("{}", serde_json::to_string_pretty(&v)?);
                let code = if r.applied { ExitCode::SUCCESS } else { ExitCode::from(EXIT_CONFIG as u8) };
                return Ok(code);
            }
            if !r.applied {
                eprintln!("mcpd: the new config has {} problem(s); nothing changed:", r.problems.len());
                for p in &r.problems {
                    eprintln!("{}", render::safe(p));
                }
                return Ok(ExitCode::from(EXIT_CONFIG as u8));
            }
            println!("reloaded: {} added, {} changed, {} removed", r.added.len(), r.changed.len(), r.removed.len());
            for (what, names) in [("added", &r.added), ("changed", &r.changed), ("removed", &r.removed)] {
                if !names.is_empty() {
                    println!("  {what}: {}", names.join(", "));
                }
            }
            if !r.needs_restart.is_empty() {
                println!("  needs a restart to take effect: {}", r.needs_restart.join(", "));
            }
        }
        Command::Logs { server, lines, json } => {
            let lines = client.logs(&server, lines).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&lines)?);
            } else {
                for line in lines {
                    println!("{}", render::safe(&line));
                }
            }
        }
        Command::Events { server, json } => {
            let mut stream = client.watch_events(server.as_deref()).await?;
            while let Some(ev) = stream.message().await? {
                println!("{}", render::event_line(&ev, json));
            }
        }
        Command::Serve { .. }
        | Command::Config { .. }
        | Command::Store { .. }
        | Command::Completions { .. }
        | Command::Mcp { .. } => {
            return Ok(ExitCode::from(EXIT_USAGE));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `mcpd config import FILE`: the TOML goes to standard output (or `--output`),
/// the report (renames, inline secrets, unmapped keys, skipped servers) to
/// standard error, so `mcpd config import x.json > mcpd.toml` keeps them apart.
fn config_import(
    file: &std::path::Path,
    format: Option<mcpd::import::Format>,
    output: Option<&std::path::Path>,
    force: bool,
) -> ExitCode {
    use std::io::{Read as _, Write as _};
    let from_stdin = file.as_os_str() == "-";
    let origin = if from_stdin { "standard input".to_owned() } else { file.display().to_string() };
    let read = if from_stdin {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s).map(|_| s)
    } else {
        std::fs::read_to_string(file)
    };
    let src = match read {
        Ok(s) => s,
        Err(e) => {
            eprintln!("mcpd: cannot read {origin}: {e}");
            return ExitCode::from(EXIT_CONFIG as u8);
        }
    };
    let imported = match mcpd::import::import_from(&src, format, Some(&origin)) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("mcpd: {origin}: {e}");
            return ExitCode::from(if e.is_internal() { EXIT_SOFTWARE } else { EXIT_CONFIG as u8 });
        }
    };
    // Notes escape everything taken from the file, so they are safe to print.
    for note in &imported.report {
        eprintln!("{note}");
    }
    if imported.servers.is_empty() {
        eprintln!("mcpd: nothing to import from {origin} ({} format)", imported.format.label());
        return ExitCode::from(EXIT_CONFIG as u8);
    }
    let written = match output {
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(imported.toml.as_bytes()).and_then(|()| out.flush())
        }
        Some(path) => {
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true);
            // create_new refuses an existing file without a check-then-write race.
            if force {
                opts.create(true).truncate(true);
            } else {
                opts.create_new(true);
            }
            match opts.open(path) {
                Ok(mut f) => f.write_all(imported.toml.as_bytes()),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    eprintln!("mcpd: {} already exists; use --force to overwrite it", path.display());
                    return ExitCode::from(EXIT_USAGE);
                }
                Err(e) => Err(e),
            }
        }
    };
    if let Err(e) = written {
        eprintln!("mcpd: cannot write the config: {e}");
        return ExitCode::from(EXIT_FAILURE);
    }
    let into = output.map(|p| format!(" into {}", p.display())).unwrap_or_default();
    eprintln!(
        "mcpd: imported {} server(s) from {origin} ({} format){into}; check it with `mcpd config check`",
        imported.servers.len(),
        imported.format.label()
    );
    ExitCode::SUCCESS
}

async fn auth(client: &mut mcpd_client::Client, command: AuthCommand) -> anyhow::Result<()> {
    use mcpd_client::proto::auth_login_event::Event;
    match command {
        AuthCommand::Login { server, browser, json } => {
            let mut stream = client.auth_login(&server).await?;
            while let Some(ev) = stream.message().await? {
                match ev.event {
                    Some(Event::AuthorizationUrl(url)) => {
                        if json {
                            println!("{}", serde_json::json!({ "authorization_url": url }));
                        } else {
                            eprintln!("Open this URL to authorize mcpd for {}:", render::safe(&server));
                            println!("{url}");
                            eprintln!("Waiting for the redirect to 127.0.0.1 ...");
                        }
                        if let Some(cmd) = &browser {
                            open_with(cmd, &url)?;
                        }
                    }
                    Some(Event::Done(_)) => {
                        if json {
                            println!("{}", serde_json::json!({ "done": true }));
                        } else {
                            eprintln!("Logged in to {}.", render::safe(&server));
                        }
                        return Ok(());
                    }
                    Some(Event::Failed(why)) => {
                        if json {
                            println!("{}", serde_json::json!({ "failed": why }));
                        }
                        anyhow::bail!("login to {} failed: {}", render::safe(&server), render::safe(&why));
                    }
                    None => {}
                }
            }
            anyhow::bail!("the daemon ended the login without an outcome");
        }
        AuthCommand::Status { server, json } => {
            let servers = client.auth_status(server.as_deref()).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&render::auth_json(&servers))?);
            } else {
                print!("{}", render::auth_table(&servers));
            }
        }
        // Answered in `main`, without a daemon.
        AuthCommand::ClientMetadata { .. } => {}
        AuthCommand::Logout { server } => {
            let r = client.auth_logout(&server).await?;
            if r.removed {
                println!("logged out of {} ({})", render::safe(&server), render::safe(&r.revocation));
            } else {
                println!("{} had no stored credentials", render::safe(&server));
            }
        }
    }
    Ok(())
}

/// Runs `cmd URL` and waits for it: a browser opener returns at once, a headless follower
/// when it has delivered the redirect.
fn open_with(cmd: &str, url: &str) -> anyhow::Result<()> {
    let mut parts = cmd.split_whitespace();
    let program = parts.next().ok_or_else(|| anyhow::anyhow!("--browser is empty"))?;
    let status = std::process::Command::new(program)
        .args(parts)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .status()
        .map_err(|e| anyhow::anyhow!("cannot run {program}: {e}"))?;
    if !status.success() {
        eprintln!("{program} exited with {status}");
    }
    Ok(())
}
