//! Simulator: cyclesoftware (to be written).
