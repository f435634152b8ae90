//! Simulator: wics (to be written).
