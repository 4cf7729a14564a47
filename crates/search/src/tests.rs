//! Unit tests: splitting, stemming, the thesaurus, incremental updates and visibility.

use super::*;

fn doc(server: &str, name: &str, desc: &str) -> ToolDoc {
    ToolDoc { server: server.into(), name: name.into(), description: desc.into(), ..Default::default() }
}

fn names(hits: &[Hit]) -> Vec<String> {
    hits.iter().map(|h| format!("{}.{}", h.server, h.name)).collect()
}

const ALL: &dyn Fn(&str, &str) -> bool = &|_, _| true;

#[test]
fn words_split_on_every_case_style() {
    assert_eq!(split_words("getFileInfo"), ["get", "file", "info"]);
    assert_eq!(split_words("list_directory-with sizes"), ["list", "directory", "with", "sizes"]);
    assert_eq!(split_words("HTTPServer v2api"), ["http", "server", "v", "2", "api"]);
}

#[test]
fn stems_and_case_split_names_match_prose() {
    let mut ix = Index::new();
    ix.replace_server("fs", [doc("fs", "createDirectory", "Make a folder"), doc("fs", "read_file", "Read a file")]);
    let hits = ix.search("creating directories", 5, ALL);
    assert_eq!(names(&hits)[0], "fs.createDirectory");
    assert!(hits[0].matched.contains(&Field::Name));
}

#[test]
fn thesaurus_reaches_tools_the_query_does_not_name() {
    let mut ix = Index::new();
    ix.replace_server(
        "m",
        [doc("m", "delete_entities", "Delete entities from the graph"), doc("m", "create_entities", "Create entities")],
    );
    assert_eq!(names(&ix.search("forget about Bob", 5, ALL))[0], "m.delete_entities");
    // Plain BM25 has no way there.
    let mut plain = Index::plain_bm25();
    plain.replace_server("m", [doc("m", "delete_entities", "Delete entities from the graph")]);
    assert!(plain.search("forget about Bob", 5, ALL).is_empty());
}

#[test]
fn replacing_a_server_drops_its_old_tools_and_keeps_the_others() {
    let mut ix = Index::new();
    ix.replace_server("a", [doc("a", "send_mail", "Send an email")]);
    ix.replace_server("b", [doc("b", "send_sms", "Send a text message")]);
    assert_eq!(ix.len(), 2);
    ix.replace_server("a", [doc("a", "read_mail", "Read email")]);
    assert_eq!(ix.len(), 2);
    assert_eq!(names(&ix.search("send", 5, ALL)), ["b.send_sms"]);
    ix.replace_server("b", []);
    assert_eq!(names(&ix.search("send mail", 5, ALL)), ["a.read_mail"]);
    assert_eq!(ix.len(), 1);
}

#[test]
fn hidden_tools_are_never_returned_and_k_is_kept() {
    let mut ix = Index::new();
    ix.replace_server("a", (0..20).map(|i| doc("a", &format!("tool_{i}"), "search the web")));
    let hits = ix.search("web search", 3, &|_, n| n != "tool_0" && n != "tool_1");
    assert_eq!(hits.len(), 3);
    assert!(hits.iter().all(|h| h.name != "tool_0" && h.name != "tool_1"));
    assert!(ix.search("web", 0, ALL).is_empty());
    assert!(ix.search("", 5, ALL).is_empty());
}

#[test]
fn parameters_and_server_names_count() {
    let mut ix = Index::new();
    let mut t = doc("github", "create_issue", "Open a ticket");
    t.params = vec![("labels".into(), "Labels to attach".into())];
    ix.replace_server("github", [t, doc("jira", "create", "Create something")]);
    let hits = ix.search("github ticket with labels", 5, ALL);
    assert_eq!(hits[0].name, "create_issue");
    assert!(hits[0].matched.contains(&Field::Params) && hits[0].matched.contains(&Field::Server));
}

#[test]
fn a_task_of_two_steps_finds_both_tools() {
    let a = Analyzer::new();
    assert_eq!(steps(&a, "what do 17 and 25 add up to"), ["what do 17 and 25 add up to"]);
    assert_eq!(steps(&a, "find the file and then mail it to Bob"), ["find the file", "mail it to Bob"]);
    let mut ix = Index::new();
    let many = (0..8).map(|i| doc("fs", &format!("search_files_{i}"), "Search for files by name"));
    ix.replace_server("fs", many.chain([doc("fs", "send_mail", "Send an email to someone")]));
    let hits = ix.search("search for the report files and then send an email to Bob", 3, ALL);
    assert!(hits.iter().any(|h| h.name == "send_mail"), "{hits:?}");
}

#[test]
fn the_window_widens_when_the_filter_hides_the_best() {
    let mut ix = Index::new();
    // The hidden tools mention the query twice, so they outrank every visible one.
    let hidden = (0..100).map(|i| doc("h", &format!("web_{i}"), "search the web, search the web"));
    ix.replace_server("h", hidden);
    ix.replace_server("v", (0..10).map(|i| doc("v", &format!("web_{i}"), "search the web")));
    let hits = ix.search("search", 5, &|s, _| s == "v");
    assert_eq!(hits.len(), 5);
    assert!(hits.iter().all(|h| h.server == "v"));
    let names: Vec<&str> = hits.iter().map(|h| h.name.as_str()).collect();
    assert_eq!(names, ["web_0", "web_1", "web_2", "web_3", "web_4"], "ties broken by name");
}
