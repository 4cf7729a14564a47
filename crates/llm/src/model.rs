//! The provider-neutral chat model: what callers build and what every provider answers with.
//!
//! It mirrors the intersection of MCP sampling, the OpenAI chat-completions API and the Anthropic
//! Messages API, so that mapping to either wire format is mechanical and loses nothing callers use.
use serde_json::Value;

/// One chat completion request, independent of the wire format.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatRequest {
    /// Model to ask for; `None` uses the provider's `default_model`.
    pub model: Option<String>,
    /// System prompt (OpenAI: a leading `system` message; Anthropic: the top-level `system`).
    pub system: Option<String>,
    pub messages: Vec<Message>,
    /// Tools the model may call. Empty means no `tools` (and no `tool_choice`) is sent at all,
    /// because both APIs reject a `tool_choice` without tools.
    pub tools: Vec<ToolSpec>,
    pub tool_choice: ToolChoice,
    pub max_tokens: u32,
    pub temperature: Option<f32>,
    /// Stop sequences; empty sends none.
    pub stop: Vec<String>,
}

impl ChatRequest {
    /// A request with no tools, no system prompt and default sampling parameters.
    pub fn new(messages: Vec<Message>, max_tokens: u32) -> Self {
        Self {
            model: None,
            system: None,
            messages,
            tools: Vec::new(),
            tool_choice: ToolChoice::Auto,
            max_tokens,
            temperature: None,
            stop: Vec::new(),
        }
    }
}

/// A tool offered to the model.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    /// JSON Schema of the tool's arguments (an object schema).
    pub input_schema: Value,
}

/// Whether and which tools the model may call.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ToolChoice {
    /// The model decides.
    #[default]
    Auto,
    /// The model must not call tools (e.g. the last iteration of an agent loop).
    None,
    /// The model must call at least one tool.
    Required,
    /// The model must call this tool.
    Tool(String),
}

/// Who said a message. System prompts travel in [`ChatRequest::system`], not as messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    User,
    Assistant,
}

/// One turn of the conversation.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub role: Role,
    pub content: Vec<Part>,
}

impl Message {
    /// A user message holding one text part.
    pub fn user_text(text: impl Into<String>) -> Self {
        Self { role: Role::User, content: vec![Part::Text(text.into())] }
    }

    /// An assistant message holding one text part.
    pub fn assistant_text(text: impl Into<String>) -> Self {
        Self { role: Role::Assistant, content: vec![Part::Text(text.into())] }
    }
}

/// One content block of a message.
#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    Text(String),
    /// An inline image; `data_base64` is the base64 payload without a `data:` prefix.
    Image {
        mime: String,
        data_base64: String,
    },
    /// A tool call made by the assistant (only valid in assistant messages).
    ToolUse {
        id: String,
        name: String,
        input: Value,
    },
    /// The result of a tool call (only valid in user messages). `content` holds only
    /// [`Part::Text`] and [`Part::Image`]; anything else is rejected with
    /// [`LlmError::InvalidRequest`](super::LlmError::InvalidRequest).
    ToolResult {
        tool_use_id: String,
        content: Vec<Part>,
        is_error: bool,
    },
}

/// Why the model stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReason {
    EndTurn,
    MaxTokens,
    StopSequence,
    ToolUse,
    /// A reason this model does not know (e.g. `content_filter`, `refusal`), verbatim.
    Other(String),
}

/// Token accounting as reported by the provider (zero when it reports none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
}

/// The model's answer: text and tool uses, in the order the provider sent them.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatResponse {
    /// The model that answered, as reported by the provider (falls back to the requested one).
    pub model: String,
    /// Only [`Part::Text`] and [`Part::ToolUse`].
    pub content: Vec<Part>,
    pub stop_reason: StopReason,
    pub usage: Usage,
}

impl ChatResponse {
    /// All text parts joined with newlines.
    pub fn text(&self) -> String {
        let texts: Vec<&str> = self
            .content
            .iter()
            .filter_map(|p| match p {
                Part::Text(t) => Some(t.as_str()),
                _ => None,
            })
            .collect();
        texts.join("\n")
    }

    /// The tool uses as `(id, name, input)`.
    pub fn tool_uses(&self) -> impl Iterator<Item = (&str, &str, &Value)> {
        self.content.iter().filter_map(|p| match p {
            Part::ToolUse { id, name, input } => Some((id.as_str(), name.as_str(), input)),
            _ => None,
        })
    }
}
