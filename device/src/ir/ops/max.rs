//! Max: element-wise maximum; a constant operand of any broadcastable shape floors a tensor per channel,
//! say.
//!
//! A Relu/Clip reading it requantizes Max's rounded result, as after Min (measured on Min, host/tests/qnn_ops.rs).

binary_op!(Max, act_reads_exact: false);
