//! The one shape of mail address the store keeps, whatever the backend.

use super::error::StoreError;

/// Checks the address shape the store relies on: one `@`, a domain with a dot.
pub fn normalise_address(address: &str) -> Result<String, StoreError> {
    let a = address.trim();
    let (local, domain) = a
        .rsplit_once('@')
        .ok_or_else(|| StoreError::BadAddress(a.to_owned()))?;
    if local.is_empty()
        || domain.is_empty()
        || !domain.contains('.')
        || a.chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '<' || c == '>')
    {
        return Err(StoreError::BadAddress(a.to_owned()));
    }
    Ok(format!("{local}@{}", domain.to_ascii_lowercase()))
}
