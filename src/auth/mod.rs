//! Identity and access: who is on the other end, and which mailboxes they may open.

pub mod certificate;
