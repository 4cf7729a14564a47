//! The one place where errors become gRPC statuses, each with a stable code and a message a person can act on.
use tonic::{Code, Status};

use crate::error::CallError;

impl From<CallError> for Status {
    fn from(e: CallError) -> Self {
        Status::new(code(&e), e.to_string())
    }
}

/// The one mapping of call-path errors to gRPC codes (also named in the audit log).
pub(super) fn code(e: &CallError) -> Code {
    match e {
        CallError::NoSuchTool { .. } | CallError::NoSuchServer(_) => Code::NotFound,
        CallError::Unqualified(_)
        | CallError::BadJson(_)
        | CallError::InvalidArguments { .. }
        | CallError::BadRequest(_) => Code::InvalidArgument,
        CallError::Unavailable { .. } | CallError::ConnectionLost { .. } => Code::Unavailable,
        CallError::Busy { .. } => Code::ResourceExhausted,
        CallError::Unsupported { .. } | CallError::Quarantined { .. } | CallError::Unauthorized { .. } => {
            Code::FailedPrecondition
        }
        CallError::Denied { .. } | CallError::InputRefused { .. } => Code::PermissionDenied,
        CallError::RateLimited { .. } => Code::ResourceExhausted,
        CallError::Deadline { .. } => Code::DeadlineExceeded,
        // The server answered, but with a JSON-RPC error: invalid params is the
        // caller's to fix; anything else is the server's.
        CallError::Upstream { code, .. } if *code == -32602 => Code::InvalidArgument,
        CallError::Upstream { code, .. } if *code == -32601 => Code::NotFound,
        CallError::Upstream { .. } | CallError::Protocol { .. } => Code::Unknown,
    }
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
        let s: Status = CallError::Upstream { server: "a".into(), code: -32602, message: "bad".into() }.into();
        assert_eq!(s.code(), Code::InvalidArgument);
    }
}
