//! Errors of the state transition. Each variant says whether the input (a block, an
//! operation, a state from outside) is at fault or the node failed.

/// Why a transition step failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    /// A spec `assert` failed: the block or operation is invalid.
    #[error("check failed: {0}")]
    Check(String),
    /// An index from the input points outside a list of the state.
    #[error("{what} index {index} out of range (length {len})")]
    IndexOutOfRange {
        what: &'static str,
        index: u64,
        len: usize,
    },
    /// Checked arithmetic overflowed or underflowed (a uint64 error in the spec).
    #[error("arithmetic overflow in {0}")]
    Overflow(&'static str),
    /// A signature (or a key it needs) is invalid.
    #[error("invalid signature: {what}: {reason}")]
    Signature { what: &'static str, reason: String },
    /// A list would grow past its SSZ bound.
    #[error("list {0} is full")]
    ListFull(&'static str),
    /// Hashing or encoding failed: the node's fault, not the input's.
    #[error("internal error: {0}")]
    Internal(String),
}

impl TransitionError {
    /// Whether the input (block, operation, state) is to blame; `false` means the node failed.
    pub fn is_input_fault(&self) -> bool {
        !matches!(self, TransitionError::Internal(_))
    }
}

/// `assert` of the spec: returns [`TransitionError::Check`] with the message when false.
#[macro_export]
#[doc(hidden)]
macro_rules! transition_ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err($crate::transition::TransitionError::Check(format!($($msg)+)));
        }
    };
}
