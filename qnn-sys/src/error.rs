//! QNN's errors as one typed error: a load or interface failure, a failed call with QNN's own message and
//! what it logged, or a node the backend refuses.

/// Errors of loading QNN and of its calls.
#[derive(Debug, thiserror::Error)]
pub enum QnnError {
    #[error("cannot load {path}: {msg}")]
    Load { path: String, msg: String },
    #[error("{path}: {msg}")]
    Interface { path: String, msg: String },
    #[error("qnn {call}: error {code}: {message}{}", if .log.is_empty() { String::new() } else { format!(" (log: {})", .log) })]
    Call {
        call: &'static str,
        code: u64,
        message: String,
        log: String,
    },
    /// The backend refused a node (`backendValidateOpConfig`, or `graphAddNode` with an invalid op config):
    /// this op, at these data types, does not run there. The message leads with the node.
    #[error("qnn {call} rejected the node: error {code}: {message}{}", if .log.is_empty() { String::new() } else { format!(" (log: {})", .log) })]
    Rejected {
        call: &'static str,
        code: u64,
        message: String,
        log: String,
    },
    #[error("{0}")]
    Invalid(String),
}

/// `graphAddNode`'s code for an op config the backend does not support (QNN_GRAPH_ERROR_INVALID_OP_CONFIG).
const GRAPH_ERROR_INVALID_OP_CONFIG: u64 = 6005;

/// A failed node call as the backend's refusal of the node, when it is one.
pub(crate) fn rejected(e: QnnError, node: &str) -> QnnError {
    match with_context(e, node) {
        QnnError::Call {
            call,
            code,
            message,
            log,
        } if call == "backendValidateOpConfig" || code == GRAPH_ERROR_INVALID_OP_CONFIG => {
            QnnError::Rejected {
                call,
                code,
                message,
                log,
            }
        }
        other => other,
    }
}

pub type Result<T> = std::result::Result<T, QnnError>;

pub(crate) fn with_context(e: QnnError, what: &str) -> QnnError {
    match e {
        QnnError::Call {
            call,
            code,
            message,
            log,
        } => QnnError::Call {
            call,
            code,
            message: format!("{what}: {message}"),
            log,
        },
        other => other,
    }
}
