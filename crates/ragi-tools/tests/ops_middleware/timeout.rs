//! (to do)
