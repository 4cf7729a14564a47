//! Unit tests of the call core: result bounds, argument parsing, and the whole path against
//! a fake upstream.
use rmcp::model::{CallToolResult, ContentBlock};

use super::*;

#[test]
fn small_results_pass_untouched() {
    let r = CallToolResult::success(vec![ContentBlock::text("hello")]);
    let (out, cut, _) = bound_result(r.clone(), 1000);
    assert!(!cut);
    assert_eq!(out, r);
}

#[test]
fn big_results_are_cut_with_a_marker() {
    let r = CallToolResult::success(vec![ContentBlock::text("é".repeat(10_000))]);
    let (out, cut, original) = bound_result(r, 1000);
    assert!(cut);
    assert!(original > 20_000);
    let last = out.content.last().and_then(|c| c.as_text()).unwrap();
    assert!(last.text.contains(&original.to_string()), "{}", last.text);
    let first = out.content[0].as_text().unwrap();
    assert!(first.text.len() <= 1000);
}

#[test]
fn arguments_must_be_objects() {
    assert!(parse_arguments("").unwrap().is_empty());
    assert!(matches!(parse_arguments("[1]"), Err(CallError::BadJson(m)) if m.contains("array")));
    assert!(parse_arguments("{").is_err());
}

// --- the whole path against a fake upstream ---

use std::sync::{Arc, atomic::AtomicUsize};

use rmcp::service::{RoleClient, RunningService};
use tokio_util::sync::CancellationToken;

use crate::{
    error::ErrorKind,
    event::EventBus,
    registry::build_server_tools,
    state::Transition,
    store::Store,
    testing::{self, Seen},
    upstream::Upstream,
};

const CONFIG: &str = r#"
[servers.f]
command = "x"

[[pipelines]]
name = "twice"
[[pipelines.steps]]
id = "one"
tool = "f.echo"
args = { text = "one" }
[[pipelines.steps]]
id = "two"
tool = "f.echo"
args = { text = "{{steps.one.text}} two" }
"#;

/// A call core whose only server `f` is the fake upstream, trusted on first use, with an
/// audit log in a temporary store.
struct Fixture {
    core: CallCore,
    store: Store,
    seen: Arc<std::sync::Mutex<Seen>>,
    _service: RunningService<RoleClient, ()>,
    _dir: tempfile::TempDir,
}

impl Fixture {
    async fn new() -> Self {
        let cfg = testing::config(CONFIG);
        let (ctx, live) = testing::context(&cfg);
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let up = Arc::new(Upstream::new(Arc::new(cfg.servers["f"].clone()), EventBus::default()));
        let (service, seen) = testing::fake_upstream().await;
        up.set_peer(Some(service.peer().clone()));
        up.transition(Transition::Connected, |_| {});
        let (st, _) = build_server_tools("f", &up.identity, testing::fake_tools(), &up.config.tools, &[], false);
        assert!(ctx.trust.observe(&up, &st).await.is_empty());
        ctx.registry.publish("f", st);
        crate::pipeline::publish(&ctx.registry, &cfg).await;
        let supervisor =
            Arc::new(crate::supervisor::Supervisor::new(ctx.clone(), EventBus::default(), CancellationToken::new()));
        supervisor.adopt(up);
        let core = CallCore {
            registry: ctx.registry.clone(),
            supervisor,
            trust: ctx.trust.clone(),
            requests: ctx.requests.clone(),
            oauth: ctx.oauth.clone(),
            metrics: ctx.metrics.clone(),
            audit: Some(store.start_audit(Arc::new(AtomicUsize::new(1000)))),
            live,
        };
        Fixture { core, store, seen, _service: service, _dir: dir }
    }

    async fn call(&self, caller: &Caller, name: &str, args: &str) -> Result<CallOutcome, CallError> {
        let req = CallRequest { name, arguments_json: args, timeout: None, confirm: false };
        self.core.call(caller, req, None).await
    }

    /// Every audit record, oldest first (closing the writer flushes what is queued).
    async fn audit(&self) -> Vec<AuditEntry> {
        if let Some(a) = &self.core.audit {
            a.close(Duration::from_secs(5)).await;
        }
        let mut records = self.store.read_audit(1000, None).await.unwrap();
        records.reverse();
        records
    }

    /// Waits (bounded) until the fake upstream has seen `method`.
    async fn saw(&self, method: &str) -> bool {
        for _ in 0..200 {
            if self.seen.lock().unwrap().methods.iter().any(|m| m == method) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        false
    }
}

fn app() -> Caller {
    Caller::app("uid:1000 pid:42")
}

#[tokio::test]
async fn a_call_is_sent_audited_with_its_caller_and_counted() {
    let f = Fixture::new().await;
    let agent = app().in_run("agent", "0123");
    let o = f.call(&agent, "f.echo", r#"{"text":"hi"}"#).await.unwrap();
    assert_eq!(o.result.content[0].as_text().unwrap().text, "hi");
    assert_eq!(f.seen.lock().unwrap().calls[0]["arguments"]["text"], "hi");
    let m = f.core.metrics.tool("f", "echo").unwrap();
    assert_eq!((m.calls, m.errors), (1, 0));

    let records = f.audit().await;
    assert_eq!(records.len(), 1, "{records:?}");
    let r = &records[0];
    assert_eq!((r.tool.as_str(), r.app.as_str(), r.outcome.as_str()), ("f.echo", "uid:1000 pid:42", "ok"));
    assert_eq!((r.via.as_str(), r.run_id.as_str()), ("agent", "0123"));
    assert!(r.arguments_sha256.starts_with("sha256:"));
}

#[tokio::test]
async fn refusals_are_audited_and_unknown_names_make_no_metric_series() {
    let f = Fixture::new().await;
    let e = f.call(&app(), "f.nosuch", "{}").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    let e = f.call(&app(), "f.echo", r#"{"text":5}"#).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    let e = f.call(&app(), "nosuch.echo", "{}").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(f.seen.lock().unwrap().calls.is_empty(), "nothing refused reached the server");
    assert!(f.core.metrics.tool("f", "nosuch").is_none());
    assert_eq!(f.core.metrics.tool("f", "echo").map(|m| m.errors), Some(1));

    let outcomes: Vec<String> = f.audit().await.into_iter().map(|r| r.outcome).collect();
    assert_eq!(outcomes, ["NotFound", "InvalidArgument", "NotFound"]);
}

#[tokio::test(start_paused = true)]
async fn a_deadline_fails_the_call_and_cancels_it_upstream() {
    let f = Fixture::new().await;
    let req =
        CallRequest { name: "f.hang", arguments_json: "{}", timeout: Some(Duration::from_secs(30)), confirm: false };
    // Paused time: the 30 s pass as soon as nothing else can run.
    let e = f.core.call(&app(), req, None).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::DeadlineExceeded, "{e}");
    assert!(f.saw("notifications/cancelled").await, "{:?}", f.seen.lock().unwrap().methods);
    // The audit writer is a thread on the real clock: with time paused, closing it would time
    // out at once (nothing else runs) before it wrote.
    tokio::time::resume();
    let records = f.audit().await;
    assert_eq!(records[0].outcome, "DeadlineExceeded");
}

#[tokio::test]
async fn an_abandoned_call_is_audited_as_cancelled_and_cancelled_upstream() {
    let f = Fixture::new().await;
    let caller = app();
    let call = f.call(&caller, "f.hang", "{}");
    // The caller goes away while the server works.
    assert!(tokio::time::timeout(Duration::from_millis(200), call).await.is_err());
    assert!(f.saw("notifications/cancelled").await, "{:?}", f.seen.lock().unwrap().methods);
    let records = f.audit().await;
    assert_eq!(records.len(), 1);
    assert_eq!((records[0].tool.as_str(), records[0].outcome.as_str()), ("f.hang", "Cancelled"));
}

#[tokio::test]
async fn a_pipeline_is_one_call_and_each_step_another_under_one_run() {
    let f = Fixture::new().await;
    let o = f.call(&app(), "pipeline.twice", "{}").await.unwrap();
    assert_eq!(o.result.is_error, Some(false), "{:?}", o.result);
    assert_eq!(o.result.content[0].as_text().unwrap().text, "one two");
    let records = f.audit().await;
    let seen: Vec<(&str, &str)> = records.iter().map(|r| (r.tool.as_str(), r.via.as_str())).collect();
    assert_eq!(seen, [("f.echo", "pipeline.twice"), ("f.echo", "pipeline.twice"), ("pipeline.twice", "")]);
    assert_eq!(records[0].run_id, records[1].run_id);
    assert_eq!(records[0].run_id.len(), 32);
    assert!(records[2].run_id.is_empty());
    assert_eq!(f.core.metrics.tool("f", "echo").map(|m| m.calls), Some(2));
}
