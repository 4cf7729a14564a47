//! Paginated listings (`*/list` with cursors), bounded against servers that page forever or
//! list without end; shared by the API's listings and the session's pinning of prompts and
//! resource templates.
use std::future::Future;

use rmcp::{model::PaginatedRequestParams, service::ServiceError};

/// Bounds on listings, against servers that page forever or list without end.
pub const MAX_PAGES: usize = 1000;
pub const MAX_ITEMS: usize = 10_000;

/// Follows cursors with the caps above.
pub async fn all_pages<T, F, Fut>(mut page: F) -> Result<Vec<T>, ServiceError>
where
    F: FnMut(Option<PaginatedRequestParams>) -> Fut,
    Fut: Future<Output = Result<(Vec<T>, Option<String>), ServiceError>>,
{
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let params = cursor.take().map(|c| PaginatedRequestParams::default().with_cursor(Some(c)));
        let (batch, next) = page(params).await?;
        items.extend(batch);
        if items.len() > MAX_ITEMS {
            return Err(ServiceError::McpError(rmcp::ErrorData::internal_error(
                format!("the server lists more than {MAX_ITEMS} items"),
                None,
            )));
        }
        match next {
            Some(c) if !c.is_empty() => cursor = Some(c),
            _ => return Ok(items),
        }
    }
    Err(ServiceError::McpError(rmcp::ErrorData::internal_error(
        format!("the listing did not end after {MAX_PAGES} pages"),
        None,
    )))
}
