//! The one place where errors become gRPC statuses, each with a stable code and a message a person can act on.
use tonic::{Code, Status};

use crate::{
    agent::AgentError,
    error::{CallError, ErrorKind},
    oauth::OAuthError,
    trust::TrustError,
};

/// The gRPC code of each error kind (the kinds are named after them).
pub(super) fn code(kind: ErrorKind) -> Code {
    match kind {
        ErrorKind::NotFound => Code::NotFound,
        ErrorKind::InvalidArgument => Code::InvalidArgument,
        ErrorKind::Unavailable => Code::Unavailable,
        ErrorKind::ResourceExhausted => Code::ResourceExhausted,
        ErrorKind::FailedPrecondition => Code::FailedPrecondition,
        ErrorKind::PermissionDenied => Code::PermissionDenied,
        ErrorKind::DeadlineExceeded => Code::DeadlineExceeded,
        ErrorKind::Cancelled => Code::Cancelled,
        ErrorKind::Internal => Code::Internal,
        ErrorKind::Unknown => Code::Unknown,
    }
}

impl From<CallError> for Status {
    fn from(e: CallError) -> Self {
        status(code(e.kind()), e.to_string())
    }
}

/// Every status message passes the known-secret redactor: errors quote URLs, arguments
/// and library messages.
fn status(code: Code, message: String) -> Status {
    Status::new(code, crate::known::scrub(&message).into_owned())
}

/// Errors of requests that are not calls (trust verbs, OAuth, agent runs, reads of the
/// store) that the handlers meet.
#[derive(Debug, thiserror::Error)]
pub(super) enum ApiError {
    #[error(transparent)]
    Call(#[from] CallError),
    #[error(transparent)]
    Trust(#[from] TrustError),
    #[error(transparent)]
    OAuth(#[from] OAuthError),
    #[error(transparent)]
    Agent(#[from] AgentError),
    #[error("no pipeline named {0:?}")]
    NoSuchPipeline(String),
    #[error("no tool named {0:?}")]
    NoSuchTool(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Internal(String),
}

impl From<ApiError> for Status {
    fn from(e: ApiError) -> Self {
        let code = match &e {
            ApiError::Call(c) => code(c.kind()),
            ApiError::Trust(TrustError::NoSuchServer(_) | TrustError::NoSuchTool { .. }) => Code::NotFound,
            ApiError::Trust(TrustError::PinnedByConfig(_)) => Code::FailedPrecondition,
            ApiError::Trust(TrustError::Store(_)) => Code::Unavailable,
            ApiError::OAuth(OAuthError::UnknownServer(_)) => Code::NotFound,
            ApiError::OAuth(OAuthError::NotOAuth(_)) => Code::FailedPrecondition,
            ApiError::OAuth(_) => Code::Unavailable,
            ApiError::Agent(AgentError::Cancelled) => Code::Cancelled,
            ApiError::Agent(AgentError::Llm(_)) => Code::Unavailable,
            ApiError::Agent(_) => Code::FailedPrecondition,
            ApiError::NoSuchPipeline(_) | ApiError::NoSuchTool(_) => Code::NotFound,
            ApiError::BadRequest(_) => Code::InvalidArgument,
            ApiError::Internal(_) => Code::Internal,
        };
        status(code, e.to_string())
    }
}

/// A not-found status for a server name (the same message everywhere).
pub(super) fn no_such_server(name: &str) -> Status {
    CallError::NoSuchServer(name.to_owned()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable() {
        let s: Status = CallError::NoSuchTool { name: "a.b".into(), suggestion: Some("a.c".into()) }.into();
        assert_eq!(s.code(), Code::NotFound);
        assert!(s.message().contains("did you mean \"a.c\""));
        let s: Status = CallError::Deadline { tool: "a.b".into(), timeout: std::time::Duration::from_secs(1) }.into();
        assert_eq!(s.code(), Code::DeadlineExceeded);
        let s: Status =
            CallError::Upstream { server: "a".into(), code: -32602, message: "bad".into(), data: None }.into();
        assert_eq!(s.code(), Code::InvalidArgument);
        let s: Status = ApiError::Trust(TrustError::PinnedByConfig("a.b".into())).into();
        assert_eq!(s.code(), Code::FailedPrecondition);
        let s: Status = ApiError::Agent(AgentError::Cancelled).into();
        assert_eq!(s.code(), Code::Cancelled);
    }

    #[test]
    fn kinds_are_named_like_grpc_codes() {
        // The audit log records kind names; they must read like the statuses apps see.
        for k in [
            ErrorKind::NotFound,
            ErrorKind::InvalidArgument,
            ErrorKind::Unavailable,
            ErrorKind::ResourceExhausted,
            ErrorKind::FailedPrecondition,
            ErrorKind::PermissionDenied,
            ErrorKind::DeadlineExceeded,
            ErrorKind::Cancelled,
            ErrorKind::Internal,
            ErrorKind::Unknown,
        ] {
            assert_eq!(format!("{:?}", code(k)), k.as_str());
        }
    }
}
