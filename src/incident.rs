//! Internal failures as a client sees them: a short fixed text and a reference to the
//! log entry that holds the detail. Database messages name tables, columns and paths;
//! they are for the operator, not for whoever is on the other end of the connection.

use crate::store::StoreError;

/// One failure, logged once; its reference is what the client is told.
#[derive(Debug, Clone)]
pub struct Incident {
    reference: String,
    transient: bool,
    out_of_space: bool,
}

impl Incident {
    /// Logs `error` under a fresh reference. `during` says what the server was doing.
    pub fn store(during: &str, error: &StoreError) -> Self {
        let reference = format!("{:08x}", rand::random::<u32>());
        tracing::error!(%reference, error = %error, "{during}");
        Incident {
            reference,
            transient: error.is_transient(),
            out_of_space: error.is_out_of_space(),
        }
    }

    /// Whether trying again later may work (the database was busy, full, closing...), as
    /// opposed to a fault that will repeat.
    pub fn transient(&self) -> bool {
        self.transient
    }

    /// The file system holding the store is full: temporary, and worth saying so.
    pub fn out_of_space(&self) -> bool {
        self.out_of_space
    }

    pub fn reference(&self) -> &str {
        &self.reference
    }

    /// The text for the client: the same whatever went wrong, with the reference.
    pub fn text(&self) -> String {
        if self.out_of_space {
            format!("Insufficient storage, reference {}", self.reference)
        } else {
            format!("Internal error, reference {}", self.reference)
        }
    }
}
