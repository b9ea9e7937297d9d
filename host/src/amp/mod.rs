//! Automatic mixed precision: quantizer groups, the evaluator interface, the search phases, the journal,
//! results and export.

pub mod cost;
pub mod evaluator;
pub mod export;
pub mod groups;
pub mod journal;
pub mod lock;
pub mod metric;
pub mod qdq;
pub mod remote;
pub mod report;
pub mod search;
pub mod tune;
