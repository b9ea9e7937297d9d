//! The one error every evaluator returns, whatever the backend or transport: its kind says what the search
//! and the device pool do about it, so neither needs to know a backend's own error types.

use serde::{Deserialize, Serialize};

/// What a failed evaluation means for the search.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ErrorKind {
    /// The config cannot run there (an op or data-type combination the backend refuses): prune it, journal
    /// it, go on.
    Unsupported,
    /// The transport or the agent is gone: reconnect once, then drop the device and requeue its job.
    DeviceLost,
    /// This config failed for a reason that will repeat: journal it with its message; never drop a device
    /// for it.
    Failed,
    /// The run cannot go on, whatever the config or the device (the user's metric command fails): stop,
    /// journal nothing for it, keep every device; a rerun after the fix repeats nothing that succeeded.
    Halt,
}

impl ErrorKind {
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::DeviceLost => "device lost",
            ErrorKind::Failed => "failed",
            ErrorKind::Halt => "halt",
        }
    }
}

/// An evaluation that did not give a value, and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct EvalError {
    pub kind: ErrorKind,
    /// Leads with what is at fault: the node, the device.
    pub message: String,
}

impl EvalError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> EvalError {
        EvalError {
            kind,
            message: message.into(),
        }
    }

    pub fn unsupported(message: impl Into<String>) -> EvalError {
        EvalError::new(ErrorKind::Unsupported, message)
    }

    pub fn device_lost(message: impl Into<String>) -> EvalError {
        EvalError::new(ErrorKind::DeviceLost, message)
    }

    pub fn failed(message: impl Into<String>) -> EvalError {
        EvalError::new(ErrorKind::Failed, message)
    }

    pub fn halt(message: impl Into<String>) -> EvalError {
        EvalError::new(ErrorKind::Halt, message)
    }

    /// The kind of any error: that of the outermost [`EvalError`] in its chain, else [`ErrorKind::Failed`]
    /// (an error nobody classified is a failure of this config, not a lost device).
    pub fn kind_of(e: &anyhow::Error) -> ErrorKind {
        e.chain()
            .find_map(|c| c.downcast_ref::<EvalError>())
            .map_or(ErrorKind::Failed, |e| e.kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn the_kind_survives_context_and_defaults_to_failed() {
        let e: anyhow::Result<()> = Err(EvalError::unsupported("Conv \"c\": a8w16").into());
        let e = e.context("evaluating a16w8").unwrap_err();
        assert_eq!(EvalError::kind_of(&e), ErrorKind::Unsupported);
        let plain = anyhow::anyhow!("something else");
        assert_eq!(EvalError::kind_of(&plain), ErrorKind::Failed);
    }
}
