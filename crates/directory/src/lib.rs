//! The consortium's directory (DESIGN §5): customers, Pix keys and each customer's accounts as
//! the state machine of a Raft group of the banks. Filled in by the commits that follow.
