//! Loopback simulators of the vendor APIs Spoke connects to.
//!
//! Each vendor module serves the vendor's documented endpoints with
//! in-memory state, auth, errors, pagination and rate limits, plus a control
//! API under `/_control/` so tests and people can move time forward, trigger
//! vendor-side events and read how often a client broke the rules, and
//! `/_control/faults` to kill a client between a committed write and its
//! answer ([`faults`]).
//! Everything binds to 127.0.0.1 only.

pub mod clock;
pub mod faults;
pub mod limits;
pub mod sandbox;
pub mod serve;
pub mod shape;

pub mod cyclesoftware;
pub mod lagerkoll;
pub mod wics;

pub use clock::Clock;
pub use faults::{Fault, Faults};
pub use limits::RollingWindow;
pub use sandbox::{Ports, Sandbox};
