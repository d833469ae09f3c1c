//! The rows of `body_structure` as both backends read them.

use super::error::{StoreError, stored};
use crate::structure::Structure;

/// (uid, body id, version, envelope, body, bodystructure): a message of a folder and, by
/// a left join, its body's stored structure.
pub(crate) type StructureRow = (
    i64,
    i64,
    Option<i64>,
    Option<Vec<u8>>,
    Option<Vec<u8>>,
    Option<Vec<u8>>,
);

/// The columns `StructureRow` reads, for a folder's messages `m` and the table `s`.
pub(crate) const COLUMNS: &str = "m.uid, m.body_id, s.version, s.envelope, s.body, s.bodystructure";

/// (uid, body id, structure), the structure `None` unless stored by rules `version`.
pub(crate) fn from_row(
    (uid, body_id, stored_version, envelope, body, bodystructure): StructureRow,
    version: i64,
) -> Result<(u32, i64, Option<Structure>), StoreError> {
    let structure = match (stored_version, envelope, body, bodystructure) {
        (Some(v), Some(envelope), Some(body), Some(bodystructure)) if v == version => {
            Some(Structure {
                envelope,
                body,
                bodystructure,
            })
        }
        _ => None,
    };
    Ok((stored(uid, "uid")?, body_id, structure))
}
