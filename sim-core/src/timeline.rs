//! When work on a simulated GPU's streams starts and ends. (in progress)
