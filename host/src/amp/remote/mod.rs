//! Evaluation through `amp-agent`s: how an agent is reached ([`transport`]: stdio to a child, TCP to a
//! serving agent, adb to a phone, in [`adb`]), one agent as an evaluator ([`agent`]: model, statistics and
//! data go once as content-addressed blobs; each evaluation sends a per-tensor bit plan), and several as a
//! pool ([`pool`]).

pub mod adb;
pub mod agent;
pub mod pool;
pub mod transport;

pub use agent::{AgentEvaluator, Connector};
pub use pool::PoolEvaluator;
pub use transport::{find_agent, DeviceSpec, Link, Transport};
