//! `mcpd config import`: turns other clients' `mcpServers` JSON into mcpd TOML.
