//! LLM providers (OpenAI-compatible chat completions and the Anthropic Messages API) over reqwest.
