//! Lists every tool mcpd knows, then calls one: `cargo run -p mcpd-client --example list_and_call -- everything.echo '{"message":"hi"}'`.
use std::time::Duration;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut client = mcpd_client::Client::connect_default().await?;
    for tool in client.list_tools(None).await? {
        println!("{:40} {}", tool.qualified_name, tool.description.lines().next().unwrap_or(""));
    }
    if let Some(name) = args.next() {
        let arguments = args.next().unwrap_or_else(|| "{}".into());
        let result = client.call_tool(&name, &arguments, Some(Duration::from_secs(30))).await?;
        println!("is_error={} content={}", result.is_error, result.content_json);
    }
    Ok(())
}
